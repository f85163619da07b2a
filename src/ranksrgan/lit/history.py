"""Validation history of a stage (the data of the paper's convergence curves, Fig. 17 / Fig. 22).

:class:`ValidationHistory` is a Lightning callback: after every validation it appends one entry
to a JSON file (a list, oldest first)::

    [{"step": 500, "global_step": 1000, "val/niqe": 5.1, "val/psnr": 24.3, "val/ssim": 0.71}, ...]

* ``step``: generator updates (the module's ``iteration``) for the SR/GAN module, Lightning's
  ``global_step`` otherwise (Rankers); ``global_step`` is always stored too.
* every scalar the module logged under ``val/`` at that validation (NaN is written as ``NaN``,
  which Python's ``json`` reads back).

The file is rewritten atomically on global rank 0 only. A resumed fit (``ckpt_path`` given)
starts from the file, and each new entry replaces any entry at the same or a later step, so a
stage killed and resumed from its last checkpoint has each step once; a fresh fit starts empty.
:func:`format_curves` prints the curves of several recipes as text.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from ranksrgan.io import atomic_write_bytes

__all__ = ["HISTORY_FILE", "ValidationHistory", "load_history", "format_curves"]

#: File name of the history in a stage's work folder (the pipeline's convention).
HISTORY_FILE = "val_history.json"


def load_history(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Entries of a history file (oldest first); ``[]`` when the file does not exist.

    Raises:
        ValueError: the file is not a JSON list of objects with an integer ``step``.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a validation history (invalid JSON: {err})") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) and isinstance(e.get("step"), int) for e in data):
        raise ValueError(f"{path}: not a validation history (expected a list of {{'step': int, ...}} objects)")
    return data


class ValidationHistory(pl.Callback):
    """Append ``{"step", "global_step", <every val/* scalar>}`` to ``path`` after each validation.

    Args:
        path: the JSON file (conventionally ``<stage work folder>/`` :data:`HISTORY_FILE`).
        prefix: logged names to keep (default ``"val/"``).

    Attributes:
        entries: the history so far (what the file holds).
    """

    def __init__(self, path: str | os.PathLike, prefix: str = "val/") -> None:
        super().__init__()
        self.path = Path(path)
        self.prefix = prefix
        self.entries: list[dict[str, Any]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Resuming: continue the stage's history; a fresh fit starts a new one (a file left by an
        # earlier fit of the same folder is overwritten at the first validation).
        self.entries = load_history(self.path) if trainer.ckpt_path else []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        iteration = getattr(pl_module, "iteration", None)
        step = int(iteration) if iteration is not None else int(trainer.global_step)
        entry: dict[str, Any] = {"step": step, "global_step": int(trainer.global_step)}
        for name, value in sorted(trainer.callback_metrics.items()):
            if not name.startswith(self.prefix):
                continue
            try:
                if value.numel() != 1:
                    continue
                entry[name] = float(value)
            except AttributeError:  # a plain number
                entry[name] = float(value)
        # entries at this step or later come from a run killed after them and resumed earlier
        self.entries = [e for e in self.entries if e["step"] < step] + [entry]
        atomic_write_bytes(self.path, json.dumps(self.entries, indent=1).encode("utf-8"))


def _cell(value: float | None, digits: int) -> str:
    if value is None:
        return "·"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def format_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    metrics: Sequence[str] = ("val/niqe", "val/psnr"),
    digits: int = 2,
) -> str:
    """Curves of several recipes as text tables, one per metric (the panels of Fig. 22).

    Args:
        histories: ``{recipe name: entries}`` (:func:`load_history`), in column order.
        metrics: logged names to print (``val/<id>``; the polarity comes from
            :data:`ranksrgan.metrics.registry.METRICS` when ``<id>`` is there).
        digits: decimals.

    Returns:
        For each metric a table: a row per validation step (the union of all recipes' steps,
        ``·`` where a recipe has no value), a column per recipe, then a ``best`` row (the best
        value over the steps, by the metric's polarity) and a ``last`` row.
    """
    from ranksrgan.metrics.registry import METRICS

    names = list(histories)
    blocks = []
    for metric in metrics:
        key = metric.split("/", 1)[1] if "/" in metric else metric
        spec = METRICS.get(key)
        by_recipe = {
            n: {int(e["step"]): float(e[metric]) for e in histories[n] if metric in e and e[metric] is not None} for n in names
        }
        steps = sorted({s for values in by_recipe.values() for s in values})
        arrow = f" {spec.arrow}" if spec is not None else ""
        label = spec.label if spec is not None else metric
        header = ["iteration"] + names
        body = [[str(s)] + [_cell(by_recipe[n].get(s), digits) for n in names] for s in steps]
        summary = []
        if steps:
            best_row, last_row = ["best"], ["last"]
            for n in names:
                values = [v for _, v in sorted(by_recipe[n].items()) if not math.isnan(v)]
                best = (spec.best(values) if spec is not None else None) if values else None
                best_row.append(_cell(best, digits))
                last = sorted(by_recipe[n].items())[-1][1] if by_recipe[n] else None
                last_row.append(_cell(last, digits))
            summary = [best_row, last_row]
        widths = [max(len(r[i]) for r in [header] + body + summary) for i in range(len(header))]

        def line(row: Sequence[str], widths: list[int] = widths) -> str:
            return "  ".join(c.rjust(widths[i]) for i, c in enumerate(row))

        rule = "  ".join("-" * w for w in widths)
        lines = [f"{label}{arrow} ({metric}) over iterations", line(header), rule] + [line(r) for r in body]
        if not steps:
            lines.append("(no validation yet)")
        else:
            lines += [rule] + [line(r) for r in summary]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
