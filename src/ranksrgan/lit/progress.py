"""Progress of one pipeline stage, counted in the stage's own units.

Lightning's bar counts optimiser steps within an epoch (``Epoch 0/-2``, no total with
``max_steps``), and a GAN makes two optimiser steps per iteration. This callback counts what the
configs count: Ranker steps, or generator iterations (generator updates), against the stage's
total, with its position in the plan, rate and ETA:

* on a terminal: one tqdm bar per stage;
* otherwise (a log file, CI, or a terminal of unknown size, 0×0, where a bar shows nothing): one line every ``every_n`` units or ``every_s`` seconds, whichever
  comes first, and a line after each validation with its metrics.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from typing import Any, TextIO

import pytorch_lightning as pl

__all__ = ["StageProgress", "terminal_columns"]


def terminal_columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to; 0 when it is not a terminal or its size is
    unknown (0×0: tqdm would then print empty lines)."""
    try:
        if not stream.isatty():
            return 0
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def _eta(seconds: float) -> str:
    return str(timedelta(seconds=int(max(0.0, seconds))))


class StageProgress(pl.Callback):
    """Print a stage's progress (rank 0 only).

    Args:
        label: shown first, e.g. ``"stage 2/5 generator srresnet"``.
        total: the stage's units (Ranker steps or generator iterations).
        unit: "step" or "it".
        steps_per_unit: Lightning optimiser steps per unit (2 for a GAN iteration with a discriminator).
        every_s: seconds between lines when the output is not a terminal.
        every_n: units between lines when the output is not a terminal (None: total / 10).
        stream: where to write (standard error by default).
        tty: force the terminal (bar) or line mode; None: a bar when ``stream`` is a terminal
            with a known width (:func:`terminal_columns`).
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "step",
        steps_per_unit: int = 1,
        every_s: float = 30.0,
        every_n: int | None = None,
        stream: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        self.label, self.total, self.unit, self.steps_per_unit = label, int(total), unit, max(1, int(steps_per_unit))
        self.every_s = every_s
        self.every_n = every_n if every_n is not None else max(1, self.total // 10)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = tty if tty is not None else terminal_columns(self.stream) > 0
        self._bar: Any = None
        self._start_unit = 0
        self._t0 = self._last_print = 0.0
        self._last_unit = -1

    def _unit(self, trainer: pl.Trainer) -> int:
        return trainer.global_step // self.steps_per_unit

    def _line(self, done: int) -> str:
        elapsed = time.monotonic() - self._t0
        rate = (done - self._start_unit) / elapsed if elapsed > 0 else 0.0
        eta = _eta((self.total - done) / rate) if rate > 0 else "?"
        pct = 100.0 * done / self.total if self.total else 100.0
        return f"[{self.label}] {done}/{self.total} {self.unit} ({pct:.0f}%), {rate:.2f} {self.unit}/s, ETA {eta}"

    def _write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._start_unit = self._last_unit = self._unit(trainer)
        self._t0 = self._last_print = time.monotonic()
        resumed = f", resumed at {self._start_unit}" if self._start_unit else ""
        if self.tty:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self._start_unit,
                desc=f"[{self.label}]",
                unit=self.unit,
                file=self.stream,
                dynamic_ncols=True,
            )
        else:
            self._write(f"[{self.label}] {self.total} {self.unit}{resumed}")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        if not trainer.is_global_zero:
            return
        done = self._unit(trainer)
        if done == self._last_unit:
            return  # the discriminator's optimiser step of the same iteration
        if self._bar is not None:
            self._bar.update(done - self._last_unit)
        else:
            now = time.monotonic()
            if done % self.every_n == 0 or now - self._last_print >= self.every_s or done == self.total:
                self._write(self._line(done))
                self._last_print = now
        self._last_unit = done

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
        shown = ", ".join(f"{k[4:]}={v:.4g}" for k, v in sorted(metrics.items()) if k.count("/") == 1)
        text = f"[{self.label}] validation at {self._unit(trainer)}: {shown}"
        if self._bar is not None:
            self._bar.write(text)
        else:
            self._write(text)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif trainer.is_global_zero:
            elapsed = time.monotonic() - self._t0
            self._write(f"[{self.label}] done: {self._unit(trainer)}/{self.total} {self.unit} in {_eta(elapsed)}")
