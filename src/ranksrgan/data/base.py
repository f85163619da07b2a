"""What every data module of the library shares: building the demo images on request and the
standard training / validation DataLoaders."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ranksrgan.data.sampling import EpochSampler, ResumableLoader

__all__ = ["ImageFolderDataModule", "ignore_interrupts"]


def ignore_interrupts(worker_id: int) -> None:
    """A DataLoader worker's start: ignore Ctrl-C, which reaches the whole process group while the
    main process handles it (finishes the step, saves, then stops the workers; a worker killed by it
    would fail the fetch in progress first); then Lightning's worker seeding, as
    ``pl.seed_everything(workers=True)`` would have added it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ.get("PL_SEED_WORKERS") == "1":
        from lightning_fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)


class ImageFolderDataModule(pl.LightningDataModule):
    """Base LightningDataModule.

    Subclasses set ``build_demo``, ``demo_root``, ``batch_size``, ``num_workers``,
    ``train_set`` and ``val_set``. With ``build_demo``, ``prepare_data`` writes the built-in demo
    images (:func:`ranksrgan.data.demo.build_demo_dataset`) to ``demo_root`` first.

    Training items are a pure function of the seed, the epoch and the index
    (:mod:`ranksrgan.data.sampling`): the seed is torch's (``torch.initial_seed()``, which
    ``pl.seed_everything`` sets) when the training loader is made, and a resumed fit continues
    at the batch where its checkpoint was saved.
    """

    build_demo: bool = False
    demo_root: str | None = None
    batch_size: int
    num_workers: int
    train_set: Dataset | None = None
    val_set: Dataset | None = None

    def prepare_data(self) -> None:
        if self.build_demo:
            from ranksrgan.data.demo import build_demo_dataset

            if not self.demo_root:
                raise ValueError("build_demo=True needs demo_root")
            build_demo_dataset(self.demo_root)

    @staticmethod
    def sampling_seed() -> int:
        """The seed of the training samples: torch's seed now."""
        return torch.initial_seed()

    def batches_trained(self) -> int:
        """Batches of the current epoch the attached trainer has trained (0 without one)."""
        trainer = self.trainer
        return 0 if trainer is None else int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)

    def train_dataloader(self) -> DataLoader:
        """Shuffled by epoch (:class:`~ranksrgan.data.sampling.EpochSampler`), ``drop_last``
        (static shapes) unless the set is smaller than a batch, persistent workers, pinned memory
        on CUDA; resumable mid-epoch (:class:`~ranksrgan.data.sampling.ResumableLoader`)."""
        seed = self.sampling_seed()
        return ResumableLoader(
            self.train_set,
            self.batches_trained,
            sampler=EpochSampler(len(self.train_set), seed),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) >= self.batch_size,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(seed),  # worker seeds; the global RNG stays untouched
            worker_init_fn=ignore_interrupts,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(
            self.val_set,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=min(self.num_workers, 1),
            generator=torch.Generator().manual_seed(0),  # a DataLoader without one draws from the global RNG
            worker_init_fn=ignore_interrupts,
        )

    @property
    def val_batch_size(self) -> int:
        """Validation batch size (the training one unless a subclass needs otherwise)."""
        return self.batch_size
