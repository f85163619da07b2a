"""One summary table after a Hydra multirun (a sweep over loss weights, an Optuna study).

Each job of ``python train.py -m ...`` writes ``ranksrgan_result.json`` into its own output folder
(:func:`write_job_result`: its overrides, the monitored metric and its polarity, the final
stage's metrics). :class:`SweepSummary`, a Hydra callback registered in ``conf/hydra/default.yaml``,
reads them when the multirun ends, wherever the jobs ran (local or a cluster launcher: the
folders are on the shared sweep directory), and prints one table, best job first, also written
to ``<sweep dir>/sweep_summary.md``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ranksrgan.io import atomic_write_bytes

__all__ = ["RESULT_FILE", "SweepSummary", "format_sweep", "write_job_result"]

RESULT_FILE = "ranksrgan_result.json"
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
