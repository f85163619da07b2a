"""``last.ckpt`` after every validation and at the end of training, written atomically.

Lightning's ``ModelCheckpoint(save_last=True)`` (2.6) refreshes ``last.ckpt`` only when a top-k
checkpoint was saved at the same step, so a stage whose validation metric stopped improving
would resume, after a kill, from the last improvement rather than the last validation. This
callback writes the full training state (weights, optimisers, LR schedulers, loop counters) to a
temporary file and renames it over ``last.ckpt``: a kill while writing leaves the previous one.

It is a Lightning ``Checkpoint``: Lightning runs those after every other callback, in the order
given, so that ``last.ckpt`` written after a validation holds the ``ModelCheckpoint`` state of that
validation (its best score and file) when the ``ModelCheckpoint`` comes first. Written before it,
a resumed run would forget the best of that validation and could publish another network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

__all__ = ["LastCheckpoint"]


class LastCheckpoint(Checkpoint):
    """Keep ``<dirpath>/last.ckpt`` at the latest validated (or final) step.

    Args:
        dirpath: checkpoint folder (created if needed).
    """

    def __init__(self, dirpath: str | os.PathLike) -> None:
        self.path = Path(dirpath) / "last.ckpt"
        self._saved_step = -1

    def save(self, trainer: pl.Trainer) -> None:
        """Write the full training state at the current step (once per step; every rank calls it)."""
        if trainer.sanity_checking or trainer.global_step == self._saved_step:
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        trainer.strategy.barrier("LastCheckpoint")
        self._saved_step = trainer.global_step

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)
