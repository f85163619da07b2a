"""The HR-folder base of the rank families made from HR images alone (blur / noise, interp,
albumentations degradations): train / validation images, random training windows with a level
pair, fixed validation windows, and the data module that serves them.

Items carry an integer ``seed`` below :data:`MAX_SEED` (drawn from the training item's key,
:mod:`ranksrgan.data.sampling`; a fixed function of the index for validation) from which a family
makes its random degradations.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ranksrgan.data.base import ImageFolderDataModule
from ranksrgan.data.rank import (
    DecodedImage,
    apply_flips,
    image_names,
    load_folders,
    random_flips,
    random_window,
    sample_level_pair,
    split_by_image,
    val_windows,
)
from ranksrgan.data.sampling import SampleKey, key_generator
from ranksrgan.io import to_tensor

log = logging.getLogger(__name__)

__all__ = ["MAX_SEED", "HRPatchDataset", "HRWindowDataset", "HRRankDataModule"]

#: item seeds are drawn from ``[0, MAX_SEED)``
MAX_SEED = 2**40


class HRPatchDataset(Dataset):
    """Training items ``{"hr": 3×p×p, "level1", "level2", "seed"}``: images round-robin, a random
    window, random flips, a random level pair (the blur / noise family distorts them after transfer).

    Args:
        images: decoded HR arrays ``H×W×3``.
        num_levels: number of levels.
        patch_size: patch side.
        length: items per epoch.
        augment: random flips and transpose.
        min_sharpness: skip windows flatter than this (see :func:`ranksrgan.data.rank.random_window`).
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        num_levels: int,
        patch_size: int,
        length: int,
        augment: bool = True,
        min_sharpness: float = 0.0,
    ) -> None:
        self.images, self.num_levels, self.patch_size, self.length, self.augment = (
            list(images),
            num_levels,
            patch_size,
            length,
            augment,
        )
        self.min_sharpness = min_sharpness

    def __len__(self) -> int:
        return self.length

    def draw(self, key: int | SampleKey) -> tuple[np.ndarray, int, int, int]:
        """A training item before any degradation, drawn from ``key`` (an index, or ``(index,
        item seed)``, :mod:`ranksrgan.data.sampling`) in this order: the window, the flips, the
        level pair, the item seed. Returns the clean ``p×p×3`` HR patch (flipped when augmenting),
        the two levels and the seed (below :data:`MAX_SEED`)."""
        index, gen = key_generator(key)
        img = self.images[index % len(self.images)]
        p = self.patch_size
        y, x = random_window(img, p, self.min_sharpness, generator=gen)
        hr = img[y : y + p, x : x + p]
        if self.augment:
            hr = apply_flips(hr, random_flips(gen))
        k1, k2 = sample_level_pair(self.num_levels, gen)
        return np.ascontiguousarray(hr), k1, k2, int(torch.randint(MAX_SEED, (), generator=gen))

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        """``key``: an index, or ``(index, item seed)`` (:mod:`ranksrgan.data.sampling`)."""
        hr, k1, k2, seed = self.draw(key)
        return {"hr": to_tensor(hr), "level1": torch.tensor(k1), "level2": torch.tensor(k2), "seed": torch.tensor(seed)}


class HRWindowDataset(Dataset):
    """Validation items ``{"hr": 3×p×p, "seed"}`` at fixed windows (seed = fixed function of index).

    Args:
        images: decoded HR arrays.
        patch_size: patch side.
        windows_per_image: at most this many non-overlapping windows per image (seeded subset).
        seed: seed of the windows and of the noise.
        min_sharpness: leave out windows flatter than this.
    """

    def __init__(
        self, images: Sequence[np.ndarray], patch_size: int, windows_per_image: int, seed: int = 0, min_sharpness: float = 0.0
    ) -> None:
        self.images, self.patch_size, self.seed = list(images), patch_size, seed
        self.items = [
            (i, y, x)
            for i, img in enumerate(self.images)
            for (y, x) in val_windows(img, patch_size, windows_per_image, seed + i, min_sharpness)
        ]
        if not self.items:
            raise ValueError(f"no validation window of {patch_size}x{patch_size} fits the validation images")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, y, x = self.items[index]
        p = self.patch_size
        hr = to_tensor(np.ascontiguousarray(self.images[i][y : y + p, x : x + p]))
        return {"hr": hr, "seed": torch.tensor(self.window_seed(index))}

    def window_seed(self, index: int) -> int:
        """The fixed seed of validation item ``index`` (a function of :attr:`seed` and the index)."""
        return (self.seed * 1_000_003 + index) % MAX_SEED


class HRRankDataModule(ImageFolderDataModule):
    """What the rank data modules made from HR folders alone share: train / validation images
    (split by folder, or one pool split by image), patch and batch sizes, validation windows, the
    sharpness filter, flips and the seed. Subclasses give the level count (:attr:`num_levels`), a
    :attr:`label` for the log and the two datasets (:meth:`make_train_set`, :meth:`make_val_set`).

    Args (the HR-folder settings; subclasses take them as keyword arguments):
        train_hr / val_hr: HR folders. With ``val_fraction`` 0 the split is by folder (no image on
            both sides); otherwise ``train_hr`` is the pool that is split and ``val_hr`` must be empty.
        val_fraction: share of the pool's IMAGES held out for validation (paper §5.1: 0.1 of
            DIV2K train + Flickr2K), chosen by :func:`ranksrgan.data.rank.split_by_image`
            (names ``"<folder name>/<file stem>"``); 0: split by folder.
        split_seed: seed of that split (the same seed and images give the same split).
        patch_size: patch side.
        batch_size: pairs per training batch; validation batches hold ``batch_size`` windows.
        num_workers: DataLoader workers.
        patches_per_epoch: training items per epoch (steps are what count: ``max_steps``).
        val_windows_per_image: at most this many validation windows per image.
        min_sharpness: training and validation windows whose clean HR patch is flatter than this
            (mean Y gradient magnitude, 0-255; :func:`ranksrgan.data.rank.patch_scores.sharpness`) are
            avoided: flat sky or walls look the same at every level. 0: no filter.
        augment: random flips / transpose.
        seed: seed of the validation windows (and of the noise, where there is one).
        build_demo / demo_root: create the built-in demo images in ``prepare_data``.
    """

    label = "rank"

    def __init__(
        self,
        train_hr: Sequence[str],
        val_hr: Sequence[str],
        patch_size: int = 296,
        batch_size: int = 16,
        num_workers: int = 2,
        patches_per_epoch: int = 16000,
        val_windows_per_image: int = 8,
        min_sharpness: float = 0.0,
        augment: bool = True,
        seed: int = 0,
        build_demo: bool = False,
        demo_root: str | None = None,
        val_fraction: float = 0.0,
        split_seed: int = 0,
    ) -> None:
        super().__init__()
        self.train_hr = [str(d) for d in ([train_hr] if isinstance(train_hr, (str, os.PathLike)) else train_hr or [])]
        self.val_hr = [str(d) for d in ([val_hr] if isinstance(val_hr, (str, os.PathLike)) else val_hr or [])]
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if val_fraction > 0 and self.val_hr:
            raise ValueError(
                f"val_fraction={val_fraction} splits train_hr by image; val_hr must then be empty, got {self.val_hr}"
            )
        if val_fraction == 0 and not self.val_hr:
            raise ValueError("val_hr is empty: give validation folders, or val_fraction > 0 to split train_hr by image")
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self.patch_size, self.batch_size, self.num_workers = patch_size, batch_size, num_workers
        self.patches_per_epoch, self.val_windows_per_image = patches_per_epoch, val_windows_per_image
        self.augment, self.seed, self.min_sharpness = augment, seed, min_sharpness
        self.build_demo, self.demo_root = build_demo, demo_root
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def num_levels(self) -> int:
        return len(self.levels)

    def make_train_set(self, images: list[np.ndarray]) -> Dataset:
        return HRPatchDataset(images, self.num_levels, self.patch_size, self.patches_per_epoch, self.augment, self.min_sharpness)

    def make_val_set(self, images: list[np.ndarray]) -> Dataset:
        return HRWindowDataset(images, self.patch_size, self.val_windows_per_image, self.seed, self.min_sharpness)

    def split(self) -> tuple[set[str], set[str]] | None:
        """``(train names, val names)`` of the pool split by image, or None (split by folder)."""
        if self.val_fraction == 0:
            return None
        return split_by_image(list(image_names(self.train_hr)), self.val_fraction, self.split_seed)

    def load_images(self) -> tuple[list[DecodedImage], list[DecodedImage]]:
        """The decoded (train, validation) images (training images at least a patch on each side)."""
        split = self.split()
        if split is None:
            return load_folders(self.train_hr, min_size=self.patch_size), load_folders(self.val_hr)
        train_names, val_names = split
        return (
            load_folders(self.train_hr, min_size=self.patch_size, only=train_names),
            load_folders(self.train_hr, only=val_names),
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_images, val_images = self.load_images()
        train, val = [img.array for img in train_images], [img.array for img in val_images]
        self.train_set = self.make_train_set(train)
        self.val_set = self.make_val_set(val)
        log.info(
            "%s rank set: %d train images, %d validation windows, levels %s",
            self.label,
            len(train),
            len(self.val_set),
            self.levels,
        )
