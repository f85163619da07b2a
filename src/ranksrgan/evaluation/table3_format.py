"""The paper's Table 3 and the comparison of Fig. 22, presented: an
:class:`~ranksrgan.evaluation.table3.Evaluation` as a Markdown table (:func:`format_markdown`), as
plain-text tables per dataset (:func:`format_comparison`) and as files (:func:`write_evaluation`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ranksrgan.evaluation.csvformat import write_csv, write_per_image_csv
from ranksrgan.evaluation.scoring import metric_spec
from ranksrgan.evaluation.table3 import Evaluation
from ranksrgan.io import atomic_write_bytes
from ranksrgan.metrics.registry import METRICS, MetricInfo

__all__ = ["format_markdown", "format_comparison", "write_evaluation"]


def format_markdown(ev: Evaluation) -> str:
    """Markdown table in the layout of the paper's Table 3 (dataset × metric rows, one column per
    method, best value per row in bold), followed by the protocol and any notes."""
    lines = ["| Dataset | Metric | " + " | ".join(ev.methods) + " |", "|---|---|" + "---|" * len(ev.methods)]
    for d in ev.datasets:
        for j, m in enumerate(ev.metrics):
            spec = metric_spec(m)
            vals = [ev.mean(d, meth, m) for meth in ev.methods]
            best = _best(spec, vals, ev.methods, ev.reference)
            cells = []
            for v, meth in zip(vals, ev.methods):
                text = f"{v:.{spec.digits}f}"
                cells.append(f"**{text}**" if best is not None and v == best and meth != ev.reference else text)
            label = f"{spec.label} {spec.arrow}"
            lines.append(f"| {d if j == 0 else ''} | {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(_protocol(ev))
    for note in ev.notes:
        lines.append("")
        lines.append(f"Note: {note}.")
    return "\n".join(lines) + "\n"


def _best(spec: MetricInfo, values: Sequence[float], methods: Sequence[str], reference: str | None) -> float | None:
    """Best value among the methods other than the ``reference`` (finite values only); None when
    fewer than two methods compete."""
    if sum(meth != reference for meth in methods) < 2:
        return None
    finite = [v for v, meth in zip(values, methods) if meth != reference and math.isfinite(v)]
    return spec.best(finite)


def _protocol(ev: Evaluation) -> str:
    specs = [metric_spec(m) for m in ev.metrics]
    y_ids = [s.label for s in specs if s.name in METRICS and not s.rgb]
    rgb_ids = [s.label for s in specs if s.name in METRICS and s.rgb]
    where = f"{'/'.join(y_ids)} on the MATLAB Y channel" if y_ids else ""
    if rgb_ids:
        where += ("; " if where else "") + f"{'/'.join(rgb_ids)} on RGB"
    lower = [s.label for s in specs if s.ideal is None and not s.higher_is_better]
    higher = [s.label for s in specs if s.ideal is None and s.higher_is_better]
    ideal = [f"{s.label} best at {s.ideal:g}" for s in specs if s.ideal is not None]
    polarity = [f"{'/'.join(lower)} lower is better"] if lower else []
    polarity += [f"{'/'.join(higher)} higher is better"] if higher else []
    polarity += ideal
    return (
        f"x{ev.scale}; LR = MATLAB bicubic of the mod-cropped HR; all metrics on the 8-bit outputs with "
        f"{ev.scale} px shaved per side{'; ' + where if where else ''}; {'; '.join(polarity)}; best in bold."
    )


def format_comparison(ev: Evaluation, dataset: str | None = None) -> str:
    """Methods as rows, metrics as columns (the layout of the comparison under Fig. 22): one
    plain-text table per dataset (or only ``dataset``), each column headed by its label and
    polarity (``↑`` higher is better, ``↓`` lower is better, ``→1`` best at 1), the best value of
    each column marked with ``*`` (the ``HR`` reference row, when present, is not a candidate),
    followed by the protocol and the notes.
    """
    datasets = ev.datasets if dataset is None else [dataset]
    unknown = [d for d in datasets if d not in ev.datasets]
    if unknown:
        raise ValueError(f"unknown dataset {unknown[0]!r}; the evaluation has {', '.join(ev.datasets)}")
    specs = [metric_spec(m) for m in ev.metrics]
    blocks = []
    for d in datasets:
        header = ["method"] + [f"{s.label} {s.arrow}" for s in specs]
        means = {meth: [ev.mean(d, meth, m) for m in ev.metrics] for meth in ev.methods}
        best = [_best(s, [means[meth][i] for meth in ev.methods], ev.methods, ev.reference) for i, s in enumerate(specs)]
        body = []
        for meth in ev.methods:
            row = [meth]
            for i, s in enumerate(specs):
                v = means[meth][i]
                mark = "*" if best[i] is not None and v == best[i] and meth != ev.reference else " "
                row.append(f"{v:.{s.digits}f}{mark}")
            body.append(row)
        widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

        def line(row: Sequence[str], widths: list[int] = widths) -> str:
            return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        title = f"{d} (mean over {len({r['image'] for r in ev.records if r['dataset'] == d})} images)"
        blocks.append("\n".join([title, line(header), rule] + [line(r) for r in body]))
    text = "\n\n".join(blocks) + "\n\n" + _protocol(ev).replace("best in bold", "best marked *")
    for note in ev.notes:
        text += f"\nNote: {note}."
    return text + "\n"


def write_evaluation(ev: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``table3.md``, ``summary.csv`` (``dataset,metric,<method>...`` with the means) and
    ``per_image.csv`` (per-image format, key columns ``dataset,method,image``) atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "table3.md", "summary": out_dir / "summary.csv", "per_image": out_dir / "per_image.csv"}
    atomic_write_bytes(paths["markdown"], format_markdown(ev).encode("utf-8"))
    write_csv(
        paths["summary"],
        ["dataset", "metric"] + ev.methods,
        [[d, m] + [ev.mean(d, meth, m) for meth in ev.methods] for d in ev.datasets for m in ev.metrics],
    )
    write_per_image_csv(
        paths["per_image"], ev.records, ["dataset", "method", "image"], ev.metrics, group_by=["dataset", "method"]
    )
    return paths
