"""Exact resume and an interruption that says what it saved.

* :class:`RandomState` stores the global random generators (torch CPU and CUDA, numpy, Python)
  in every checkpoint and puts them back when a fit resumes, so that anything drawing from them
  after the resume point (dropout, random layers, user code) draws what the uninterrupted run
  drew. The training data do not depend on them (:mod:`ranksrgan.data.sampling`).
* :class:`Interruption` turns SIGINT (Ctrl-C) and SIGTERM during a stage into a checkpoint at the
  CURRENT step (written atomically as ``last.ckpt`` by
  :class:`~ranksrgan.lit.last_checkpoint.LastCheckpoint`), one line saying what was saved and the
  command that resumes, and :class:`StageInterrupted`. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import random
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from ranksrgan.lit.last_checkpoint import LastCheckpoint

__all__ = ["RandomState", "StageInterrupted", "Interruption", "resume_command"]


class RandomState(pl.Callback):
    """Save the global random states in checkpoints; restore them when training resumes.

    They are captured when a checkpoint is written and put back at the start of the resumed
    training loop (after the loaders are made, so that the data seed, ``torch.initial_seed()``,
    is the run's own).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        # plain containers and tensors only: checkpoints are read without arbitrary unpickling
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        numpy_state = [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        state, self._pending = self._pending, None
        if not state:
            return
        torch.set_rng_state(state["torch"])
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


class StageInterrupted(BaseException):
    """A stage stopped by a signal after saving its current step (a ``BaseException``, like
    ``KeyboardInterrupt``: ``except Exception`` must not swallow it).

    Attributes: ``signum``, ``step`` (optimiser steps done), ``path`` (the checkpoint written).
    """

    def __init__(self, message: str, signum: int, step: int, path: str) -> None:
        super().__init__(message)
        self.signum, self.step, self.path = signum, step, path

    @property
    def exit_code(self) -> int:
        """The shell's status for a process ended by the signal: 128 + its number (130 for Ctrl-C)."""
        return 128 + int(self.signum)


def resume_command(argv: Sequence[str] | None = None) -> str:
    """The command line that started this process (``sys.argv``), shell-quoted; a script named
    ``*.py`` is prefixed with ``python``."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(".py"):
        argv = ["python", *argv]
    return shlex.join(argv)


class Interruption(Checkpoint):
    """On SIGINT or SIGTERM during training: finish the current step, save it, say so, stop.

    The signal only sets a flag; at the end of the running training step (or validation) the
    full training state goes to ``last.ckpt`` through ``last`` and one line goes to ``stream``::

        [stage 2/5 generator srresnet] interrupted by SIGINT at 750/2000 it (step 1500): saved
        .../checkpoints/last.ckpt; resume with: python train.py experiment=demo

    then :class:`StageInterrupted` is raised. A second SIGINT raises ``KeyboardInterrupt`` at once.
    A Lightning ``Checkpoint`` (run after the other callbacks); place it after the ``LastCheckpoint``
    and any ``ModelCheckpoint``. Handlers are installed for the training loop only, in the main thread of a single process
    (a distributed run keeps Lightning's handling).

    Args:
        last: the stage's :class:`~ranksrgan.lit.last_checkpoint.LastCheckpoint`.
        label: the stage, as progress lines name it.
        total: the stage's units (Ranker steps or generator iterations); ``unit``: "step" or "it".
        steps_per_unit: optimiser steps per unit (2 for a GAN iteration with a discriminator).
        command: the command that resumes (default: :func:`resume_command`).
        stream: where the line goes (standard error by default).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(
        self,
        last: LastCheckpoint,
        label: str,
        total: int,
        unit: str = "step",
        steps_per_unit: int = 1,
        command: str | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.last, self.label, self.total, self.unit = last, label, int(total), unit
        self.steps_per_unit = max(1, int(steps_per_unit))
        self.command = command
        self.stream = stream
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # pressed twice: stop now
        self.received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.received = None
        if trainer.world_size != 1 or threading.current_thread() is not threading.main_thread():
            return
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _stop_if_asked(self, trainer: pl.Trainer) -> None:
        if self.received is None:
            return
        signum, self.received = self.received, None
        self.last.save(trainer)
        step = trainer.global_step
        name = signal.Signals(signum).name
        command = self.command if self.command is not None else resume_command()
        line = (
            f"[{self.label}] interrupted by {name} at {step // self.steps_per_unit}/{self.total} {self.unit}"
            + (f" (step {step})" if self.steps_per_unit > 1 else "")
            + f": saved {self.last.path}; resume with: {command}"
        )
        if trainer.is_global_zero:
            print(line, file=self.stream if self.stream is not None else sys.stderr, flush=True)
        self._restore_handlers()
        raise StageInterrupted(line, signum, step, str(self.last.path))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        every = trainer.val_check_batch
        validates = isinstance(every, int) and every > 0 and (trainer.fit_loop.total_batch_idx + 1) % every == 0
        if not (validates and trainer.enable_validation):  # else stop after this step's validation, so that no validation is lost
            self._stop_if_asked(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._stop_if_asked(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._restore_handlers()
