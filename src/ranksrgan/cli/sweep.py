"""One summary table after a Hydra multirun (a sweep over loss weights, an Optuna study).

Each job of ``python train.py -m ...`` writes ``ranksrgan_result.json`` into its own output folder
(:func:`write_job_result`: its overrides, the monitored metric and its polarity, the final
stage's metrics). :class:`SweepSummary`, a Hydra callback registered in ``conf/hydra/default.yaml``,
reads them when the multirun ends, wherever the jobs ran (local or a cluster launcher: the
folders are on the shared sweep directory), and prints one table, best job first, also written
to ``<sweep dir>/sweep_summary.md``.

Before any job trains, :class:`SweepCheck` (registered beside it) plans every job of a basic-sweeper
multirun and stops the sweep with one line when a job's values do not reach its stages
(:func:`ranksrgan.pipeline.unreached_overrides`) or when two jobs with different values plan the
same stages, i.e. the sweep would train one configuration several times. Jobs of other sweepers
(Optuna) are checked as they start, against the jobs before them (:func:`check_job`).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ranksrgan.io import atomic_write_bytes

__all__ = [
    "PLAN_FILE",
    "RESULT_FILE",
    "SweepCheck",
    "SweepSummary",
    "check_job",
    "check_jobs",
    "format_sweep",
    "sweep_jobs",
    "write_job_result",
]

RESULT_FILE = "ranksrgan_result.json"
#: Written by each job of a sweep that :class:`SweepCheck` cannot plan in advance: its overrides and stage keys.
PLAN_FILE = "ranksrgan_plan.json"
#: Where a sweep's keys are explained.
SWEEP_DOC = "docs/sweeps.md"
#: Metrics shown for every job (when the final stage logged them), after the monitored one.
SHOWN = ("val/niqe", "val/psnr", "val/ssim", "val/chroma", "val/srocc")


def write_job_result(
    folder: str | os.PathLike,
    overrides: Sequence[str],
    monitor: str,
    mode: str,
    value: float | None,
    metrics: Mapping[str, float],
    table: Mapping[str, Any] | None = None,
) -> Path:
    """Write one job's result (``mode``: "min" or "max", the monitored metric's polarity;
    ``metrics``: the final stage's published weights; ``table``: the final table's numbers)."""
    path = Path(folder) / RESULT_FILE
    record = {"overrides": list(overrides), "monitor": monitor, "mode": mode, "value": value, "metrics": dict(metrics)}
    if table is not None:
        record["table"] = dict(table)
    atomic_write_bytes(path, json.dumps(record, indent=2, default=str).encode())
    return path


def format_sweep(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table: rank, each job's overrides, the monitored value, then :data:`SHOWN` metrics;
    sorted best first (a NaN or missing value last)."""
    if not results:
        return "sweep summary: no job wrote a result"
    monitor, mode = results[0]["monitor"], results[0].get("mode", "max")

    def key(r: Mapping[str, Any]) -> float:
        v = r.get("value")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return math.inf
        return float(v) if mode == "min" else -float(v)

    ordered = sorted(results, key=key)
    shown = [m for m in SHOWN if any(m in (r.get("metrics") or {}) for r in results) and m != monitor]
    arrow = "↓" if mode == "min" else "↑"
    lines = [
        f"Sweep summary ({len(results)} jobs, best first by {monitor} {arrow})",
        "",
        "| # | overrides | " + " | ".join([monitor, *shown]) + " |",
        "|---|---|" + "---|" * (1 + len(shown)),
    ]
    for i, r in enumerate(ordered, 1):
        metrics = r.get("metrics") or {}
        value = r.get("value")
        cells = [f"{value:.4g}" if isinstance(value, (int, float)) else "-"]
        cells += [f"{metrics[m]:.4g}" if m in metrics else "-" for m in shown]
        lines.append(f"| {i} | {' '.join(r.get('overrides') or []) or '(none)'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class SweepSummary(Callback):
    """Hydra callback: after a multirun, print and save the table of every job's result."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        root = Path(config.hydra.sweep.dir)
        results = []
        for path in sorted(root.rglob(RESULT_FILE)):
            try:
                results.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        if not results:
            return
        text = format_sweep(results)
        path = root / "sweep_summary.md"
        atomic_write_bytes(path, (text + "\n").encode())
        print(f"\n{text}\n\nWritten: {path}")


def sweep_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job of a multirun with Hydra's basic sweeper (its expansion of
    ``a=1,2 b=x,y``, with ``hydra.sweeper.params``), or None for another sweeper."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    if not _is_basic(sweeper):
        return None
    arguments = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()] + list(config.hydra.overrides.task)
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(arguments), None)
    return [list(job) for batch in batches for job in batch]


def _is_basic(sweeper: DictConfig) -> bool:
    """Whether ``hydra.sweeper`` is Hydra's basic sweeper (every job known before the first starts)."""
    return sweeper.get("_target_") == "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _asked_stages(cfg: DictConfig, stages: Sequence[Any]) -> list[Any]:
    """The stages the command names: its ``gan`` recipe, the ``compare`` recipes and its Ranker."""
    wanted = {("generator", str(n)) for n in cfg.get("compare") or []}
    for kind, group in (("generator", "gan"), ("ranker", "ranker")):
        if cfg.get(group) is not None:
            wanted.add((kind, cfg[group].name))
    return [s for s in stages if (s.kind, s.name) in wanted]


def _signature(cfg: DictConfig, overrides: Sequence[str]) -> list[str]:
    """``["generator rankrbri <key>", ...]`` of the stages the job's command names; raises
    :class:`~ranksrgan.pipeline.PlanError` for a job that cannot run."""
    from ranksrgan.pipeline import Planner

    return [f"{s.kind} {s.name} {s.key}" for s in _asked_stages(cfg, Planner(cfg, list(overrides)).plan())]


def _same_stages(a: tuple[int, Sequence[str]], b: tuple[int, Sequence[str]], stages: Sequence[str]) -> str:
    """One line: jobs ``a`` and ``b`` (``(number, overrides)``) plan the same ``stages``."""
    swept = lambda mine, theirs: " ".join(o for o in mine if o not in theirs) or "no override of its own"  # noqa: E731
    return (
        f"sweep jobs #{a[0]} ({swept(a[1], b[1])}) and #{b[0]} ({swept(b[1], a[1])}) plan the same stages "
        f"({', '.join(stages)}): the swept values do not change them; see {SWEEP_DOC} for the keys a sweep should name"
    )


def check_jobs(jobs: Sequence[Sequence[str]]) -> list[str]:
    """Plan every job (composed from ``conf/config.yaml`` with its overrides); the problems of the
    first job that cannot run, else one line per pair of jobs that plan the same stages."""
    from hydra import compose

    from ranksrgan.pipeline import PlanError

    seen: dict[tuple[str, ...], tuple[int, Sequence[str]]] = {}
    problems = []
    for number, overrides in enumerate(jobs):
        try:
            signature = tuple(_signature(compose(config_name="config", overrides=list(overrides)), overrides))
        except PlanError as err:
            return [f"sweep job #{number}: {p}" for p in err.problems]
        if signature in seen and list(seen[signature][1]) != list(overrides):
            problems.append(_same_stages(seen[signature], (number, overrides), signature))
        seen.setdefault(signature, (number, overrides))
    return problems


def check_job(hydra: DictConfig, cfg: DictConfig, overrides: Sequence[str]) -> None:
    """For a job of a multirun whose sweeper chooses values as it goes (Optuna; :class:`SweepCheck`
    plans basic-sweeper jobs in advance): record its planned stages in its output folder and raise
    PlanError when an earlier job of the sweep planned the same ones with other overrides.
    ``hydra``: the job's Hydra config (``HydraConfig.get()``)."""
    from hydra.types import RunMode

    from ranksrgan.pipeline import PlanError

    if hydra.mode != RunMode.MULTIRUN or _is_basic(hydra.sweeper):
        return
    number, signature = int(hydra.job.num), _signature(cfg, overrides)
    for path in sorted(Path(hydra.sweep.dir).rglob(PLAN_FILE)):
        try:
            other = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if other.get("stages") == signature and other.get("overrides") != list(overrides):
            raise PlanError([_same_stages((other.get("job"), other["overrides"]), (number, overrides), signature)])
    record = {"job": number, "overrides": list(overrides), "stages": signature}
    atomic_write_bytes(Path(hydra.runtime.output_dir) / PLAN_FILE, json.dumps(record, indent=2).encode())


class SweepCheck(Callback):
    """Hydra callback: before a basic-sweeper multirun starts, plan every job (:func:`check_jobs`);
    any problem is printed as one line each and the sweep stops with status 2."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        jobs = sweep_jobs(config)
        problems = check_jobs(jobs) if jobs and len(jobs) > 1 else []
        for line in problems:
            print(f"ranksrgan-train: error: {line}", file=sys.stderr)
        if problems:
            raise SystemExit(2)
