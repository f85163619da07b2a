"""The final table of a run: each method over its seeds, paired differences between methods, and
the Ranker-against-HR alarm.

A *method* is one row (``srgan``); its *runs* are the trained networks of that method, one per
seed (``srgan@1``, ``srgan@2``...), each a method of an :class:`~ranksrgan.evaluation.Evaluation`.
A cell is the mean over seeds of each run's mean over the images, ± the sample standard deviation
over seeds (n - 1 in the denominator; no ± for a single seed).

A paired difference ``a − b`` takes, for every seed both methods have, the run of ``a`` minus the
run of ``b`` (each a mean over the images) and reports their mean ± sample std; the difference is
*beyond the seed spread* when |mean| > std.

The alarm: a Ranker's score is lower for a better image, and no output should beat the HR image
itself. A cell ``rank/<name>`` whose mean is below the HR row's by more than ``hr_margin`` is
marked ``!`` and named in a footnote (the generator may have learnt what that Ranker rewards
rather than what makes an image natural).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranksrgan.evaluation.csvformat import write_csv
from ranksrgan.evaluation.scoring import RANK_PREFIX, metric_spec
from ranksrgan.evaluation.table3 import Evaluation
from ranksrgan.io import atomic_write_bytes

__all__ = [
    "ALARM",
    "Cell",
    "Difference",
    "Method",
    "SeedTable",
    "format_seed_table",
    "seed_table",
    "table_numbers",
    "write_seed_table",
]

#: Mark of a cell where a Ranker prefers a method's outputs to HR by more than the margin.
ALARM = "!"


@dataclass(frozen=True)
class Method:
    """One row: ``name``, its ``runs`` (Evaluation method names, one per seed), their ``seeds``
    (None: not a seeded run) and ``weights`` (which weights the runs use, e.g. ``last (it 300)``;
    empty for Bicubic and HR)."""

    name: str
    runs: tuple[str, ...]
    seeds: tuple[int | None, ...] = (None,)
    weights: str = ""


@dataclass(frozen=True)
class Cell:
    """``values``: one mean over the images per run (seed order); ``mean`` over them, ``std``
    (sample, None for one run)."""

    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def std(self) -> float | None:
        n = len(self.values)
        if n < 2:
            return None
        m = self.mean
        return math.sqrt(sum((v - m) ** 2 for v in self.values) / (n - 1))


@dataclass(frozen=True)
class Difference:
    """``a − b`` of ``metric`` over the ``seeds`` both have: per-seed ``cell`` values."""

    a: str
    b: str
    metric: str
    seeds: tuple[int | None, ...]
    cell: Cell

    @property
    def beyond_spread(self) -> bool | None:
        """|mean| > std (None with a single seed, no spread to compare with, or a NaN value)."""
        std = self.cell.std
        return None if std is None or math.isnan(std) else abs(self.cell.mean) > std


@dataclass
class SeedTable:
    """The final table (:func:`seed_table`)."""

    dataset: str
    images: list[str]
    metrics: list[str]
    methods: list[Method]
    cells: dict[tuple[str, str], Cell]
    differences: list[Difference]
    alarms: dict[tuple[str, str], float] = field(default_factory=dict)
    hr_margin: float = 0.0
    reference: str | None = "HR"
    notes: list[str] = field(default_factory=list)


def seed_table(
    ev: Evaluation,
    methods: Sequence[Method],
    dataset: str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
    hr_margin: float = 0.1,
) -> SeedTable:
    """Aggregate ``ev`` (one ``dataset``, default its first) into rows ``methods``.

    Args:
        ev: the evaluation of every run (its ``reference`` is the HR row, when present).
        methods: the rows, in order; every run must be a method of ``ev``.
        pairs: ``(a, b)`` method names whose paired per-seed differences ``a − b`` are reported.
        hr_margin: a ``rank/<name>`` cell is marked when its mean is below the HR row's by more
            than this (Ranker score units; lower = better).
    """
    dataset = dataset or ev.datasets[0]
    names = [m.name for m in methods]
    for m in methods:
        unknown = [r for r in m.runs if r not in ev.methods]
        if unknown or len(m.runs) != len(m.seeds):
            raise ValueError(f"method {m.name!r}: runs {list(m.runs)} do not match the evaluation or its seeds {list(m.seeds)}")
    cells = {(m.name, metric): Cell(tuple(ev.mean(dataset, r, metric) for r in m.runs)) for m in methods for metric in ev.metrics}
    by_name = {m.name: m for m in methods}
    differences = []
    for a, b in pairs:
        if a not in by_name or b not in by_name:
            raise ValueError(f"difference {a} - {b}: both must be rows of the table ({', '.join(names)})")
        seed_a = dict(zip(by_name[a].seeds, by_name[a].runs))
        seed_b = dict(zip(by_name[b].seeds, by_name[b].runs))
        shared = [s for s in by_name[a].seeds if s in seed_b]
        if not shared:
            continue
        for metric in ev.metrics:
            values = tuple(ev.mean(dataset, seed_a[s], metric) - ev.mean(dataset, seed_b[s], metric) for s in shared)
            differences.append(Difference(a, b, metric, tuple(shared), Cell(values)))
    alarms: dict[tuple[str, str], float] = {}
    reference = ev.reference if ev.reference in names else None
    if reference is not None:
        for metric in (c for c in ev.metrics if c.startswith(RANK_PREFIX)):
            hr = cells[(reference, metric)].mean
            for m in methods:
                gap = hr - cells[(m.name, metric)].mean
                if m.name != reference and gap > hr_margin:
                    alarms[(m.name, metric)] = gap
    images = sorted({r["image"] for r in ev.records if r["dataset"] == dataset})
    return SeedTable(
        dataset, images, list(ev.metrics), list(methods), cells, differences, alarms, hr_margin, reference, list(ev.notes)
    )


def _number(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _cell_text(cell: Cell, digits: int) -> str:
    std = cell.std
    return _number(cell.mean, digits) + ("" if std is None else f" ± {_number(std, digits)}")


def _seed_list(method: Method) -> str:
    seeds = [s for s in method.seeds if s is not None]
    return ", ".join(str(s) for s in seeds) if seeds else "-"


def format_seed_table(table: SeedTable, title: str = "") -> str:
    """Markdown: a row per method (seeds, weights, then each metric as mean ± std over seeds, the
    best mean per column in bold, ``!`` on alarms), the footnotes, then the paired differences."""
    specs = [metric_spec(m) for m in table.metrics]
    lines = [title] if title else []
    lines += [
        "| method | seeds | weights | " + " | ".join(f"{s.label} {s.arrow}" for s in specs) + " |",
        "|---|---|---|" + "---|" * len(specs),
    ]
    best = {}
    for metric, spec in zip(table.metrics, specs):
        values = [table.cells[(m.name, metric)].mean for m in table.methods if m.name != table.reference]
        finite = [v for v in values if math.isfinite(v)]
        best[metric] = spec.best(finite) if len(values) > 1 and finite else None
    for m in table.methods:
        cells = []
        for metric, spec in zip(table.metrics, specs):
            cell = table.cells[(m.name, metric)]
            text = _cell_text(cell, spec.digits)
            if best[metric] is not None and cell.mean == best[metric] and m.name != table.reference:
                text = f"**{text}**"
            if (m.name, metric) in table.alarms:
                text += f" {ALARM}"
            cells.append(text)
        lines.append(f"| {m.name} | {_seed_list(m)} | {m.weights or '-'} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Mean over the {len(table.images)} images of {table.dataset} ({', '.join(table.images)}) per trained network, "
        "then mean ± sample std over seeds (no ± for one seed); best mean per column in bold."
    )
    for (method, metric), gap in table.alarms.items():
        lines.append(
            f"{ALARM} {method}, {metric_spec(metric).label}: the Ranker {metric[len(RANK_PREFIX) :]} scores these outputs "
            f"better than HR by {gap:.3f} (> hr_margin {table.hr_margin:g}; lower = better): the generator may exploit "
            "that Ranker rather than look natural."
        )
    for note in table.notes:
        lines.append(f"Note: {note}.")
    if table.differences:
        lines += ["", "Paired differences over seeds (a − b per seed, then mean ± sample std):", ""]
        lines += ["| a − b | seeds | metric | mean ± std | beyond the seed spread |", "|---|---|---|---|---|"]
        for d in table.differences:
            spec = metric_spec(d.metric)
            if d.beyond_spread is None:
                verdict = "one seed: no spread" if len(d.seeds) < 2 else "undefined (NaN)"
            else:
                verdict = "yes (|mean| > std)" if d.beyond_spread else "no (|mean| ≤ std)"
            seeds = ", ".join("-" if s is None else str(s) for s in d.seeds)
            lines.append(
                f"| {d.a} − {d.b} | {seeds} | {spec.label} {spec.arrow} | {_cell_text(d.cell, spec.digits)} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def table_numbers(table: SeedTable) -> dict[str, Any]:
    """The table as plain data (for JSON): images, rows with per-metric mean/std/values, alarms,
    differences."""

    def cell(c: Cell) -> dict[str, Any]:
        return {"mean": c.mean, "std": c.std, "values": list(c.values)}

    return {
        "dataset": table.dataset,
        "images": table.images,
        "hr_margin": table.hr_margin,
        "rows": [
            {
                "method": m.name,
                "runs": list(m.runs),
                "seeds": list(m.seeds),
                "weights": m.weights,
                "metrics": {metric: cell(table.cells[(m.name, metric)]) for metric in table.metrics},
                "alarms": {metric: gap for (name, metric), gap in table.alarms.items() if name == m.name},
            }
            for m in table.methods
        ],
        "differences": [
            {"a": d.a, "b": d.b, "metric": d.metric, "seeds": list(d.seeds), **cell(d.cell), "beyond_spread": d.beyond_spread}
            for d in table.differences
        ],
    }


def write_seed_table(table: SeedTable, out_dir: str | Path, markdown: str | None = None) -> dict[str, Path]:
    """Write ``final_table.md`` (``markdown``, default :func:`format_seed_table`) and
    ``final_table.csv`` (a row per method and metric: mean, std, n, per-seed values, alarm; then
    the paired differences with ``method`` = ``a − b``) atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "final_table.md", "csv": out_dir / "final_table.csv"}
    atomic_write_bytes(paths["markdown"], (markdown or format_seed_table(table)).encode("utf-8"))
    rows: list[list[Any]] = []
    for m in table.methods:
        for metric in table.metrics:
            c = table.cells[(m.name, metric)]
            values = " ".join(f"{v:.6g}" for v in c.values)
            alarm = ALARM if (m.name, metric) in table.alarms else ""
            std = "" if c.std is None else c.std
            rows.append([table.dataset, m.name, _seed_list(m), m.weights, metric, c.mean, std, len(c.values), values, alarm])
    for d in table.differences:
        values = " ".join(f"{v:.6g}" for v in d.cell.values)
        seeds = ", ".join("-" if s is None else str(s) for s in d.seeds)
        verdict = "" if d.beyond_spread is None else "beyond spread" if d.beyond_spread else "within spread"
        std = "" if d.cell.std is None else d.cell.std
        rows.append([table.dataset, f"{d.a} - {d.b}", seeds, "", d.metric, d.cell.mean, std, len(d.cell.values), values, verdict])
    header = ["dataset", "method", "seeds", "weights", "metric", "mean", "std", "n", "values", "flag"]
    write_csv(paths["csv"], header, rows)
    return paths
