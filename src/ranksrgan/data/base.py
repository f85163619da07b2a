"""What every data module of the library shares: building the demo images on request and the
standard training / validation DataLoaders."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["ImageFolderDataModule"]


class ImageFolderDataModule(pl.LightningDataModule):
    """Base LightningDataModule.

    Subclasses set ``build_demo``, ``demo_root``, ``batch_size``, ``num_workers``,
    ``train_set`` and ``val_set``. With ``build_demo``, ``prepare_data`` writes the built-in demo
    images (:func:`ranksrgan.data.demo.build_demo_dataset`) to ``demo_root`` first.
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

    def train_dataloader(self) -> DataLoader:
        """Shuffled, ``drop_last`` (static shapes) unless the set is smaller than a batch,
        persistent workers, pinned memory on CUDA."""
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) >= self.batch_size,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.val_batch_size, shuffle=False, num_workers=min(self.num_workers, 1))

    @property
    def val_batch_size(self) -> int:
        """Validation batch size (the training one unless a subclass needs otherwise)."""
        return self.batch_size
