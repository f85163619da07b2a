"""Rank datasets from any albumentations degradation at fixed levels: JPEG, resizing, motion blur,
sensor noise ... (``ranker=jpeg | downscale | motion | sensor``; a new family is a config file).

A family is one albumentations transform class and an ordered list of LEVELS, best first. Level
``k`` is the transform built with ``fixed`` keyword arguments plus that level's:

* a number ``v`` sets the keyword ``param`` to the fixed range ``[v, v]`` (albumentations samples
  its parameters from ranges; a one-point range makes the level exact), e.g. ``param:
  quality_range`` and ``levels: [90, 50, 30, 10]`` for JPEG;
* a mapping gives the level's keyword arguments itself (a level that moves several parameters);
* ``null`` is the clean image (no degradation), e.g. as the best level.

``values`` (higher = worse, strictly increasing; default the level index) are the items'
``value`` labels, used by the regression ablation (``loss="mse"``) only.

Unlike the blur / noise family (:mod:`ranksrgan.data.rank.distortion`, batched on the training
device), these degradations run on the CPU in the DataLoader workers: albumentations works on
``H×W×3`` uint8 arrays (OpenCV / numpy). 16-bit images are rounded to 8 bits first; every
output is 8-bit, as a stored degraded image would be.

Reproducibility: every item carries an integer seed (drawn from the training item's key,
:mod:`ranksrgan.data.sampling`, a pure function of the run's seed, the epoch and the index; a
fixed function of the index for validation). Every level of an item is made by its transform after
``set_random_seed(seed)``: the same item, level and seed always give the same image, on any
machine, and the levels of one item share their random draws (motion direction, noise pattern),
so that they differ by the level alone.

Geometric augmentation (random flips and transpose, from the item's key as in every family) is
applied to the clean patch before it is degraded, so every level of a rank tuple has the same
geometry by construction. albumentations' multi-image targets would do the same on the degraded
images, but draw from their own RNG and would add one more object per item for what our
three-line :func:`ranksrgan.data.rank.apply_flips` does.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ranksrgan.configs import plain
from ranksrgan.data.rank import check_levels, pair_item
from ranksrgan.data.rank.hr_folder import HRPatchDataset, HRRankDataModule, HRWindowDataset
from ranksrgan.data.sampling import SampleKey
from ranksrgan.io import convert_depth, to_tensor

__all__ = ["Degradation", "DegradationPairDataset", "DegradationTupleDataset", "AlbumentationsRankDataModule"]


def _transform_class(name: str) -> type:
    """An albumentations transform class from ``"ImageCompression"`` or a dotted path."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no update check over the network
    import albumentations

    module_name, _, cls_name = name.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else albumentations
        cls = getattr(module, cls_name)
    except (ImportError, AttributeError):
        raise ValueError(f"transform {name!r}: no such albumentations transform (e.g. albumentations.ImageCompression)") from None
    if not isinstance(cls, type):
        raise ValueError(f"transform {name!r} is not a class")
    return cls


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    return convert_depth(arr, np.uint8)


class Degradation:
    """One albumentations transform at fixed levels (best first); ``degradation(img, k, seed)``.

    Args:
        transform: albumentations class name (``"ImageCompression"``) or dotted path.
        levels: per level a number (sets ``param`` to ``[v, v]``), a mapping of keyword arguments,
            or None (the clean image). At least two, all different.
        param: the keyword a numeric level sets.
        fixed: keyword arguments shared by every level (``p`` is always 1).
        values: labels, strictly increasing (higher = worse); default ``0, 1, ..., L-1``.
    """

    def __init__(
        self,
        transform: str,
        levels: Sequence[Any],
        param: str | None = None,
        fixed: Mapping[str, Any] | None = None,
        values: Sequence[float] | None = None,
    ) -> None:
        levels, fixed = list(plain(levels)), dict(plain(fixed) or {})
        if len(levels) < 2:
            raise ValueError(f"{transform}: need at least two levels, got {levels}")
        if any(a == b for i, a in enumerate(levels) for b in levels[i + 1 :]):
            raise ValueError(f"{transform}: levels must all differ, got {levels}")
        self.name = transform
        self.levels = levels
        self.values = check_levels(range(len(levels)) if values is None else plain(values), f"{transform} values")
        if len(self.values) != len(levels):
            raise ValueError(f"{transform}: {len(self.values)} values for {len(levels)} levels")
        cls = _transform_class(transform)
        self.transforms: list[Any] = []
        for level in levels:
            if level is None:
                self.transforms.append(None)
                continue
            if isinstance(level, Mapping):
                kwargs = {**fixed, **level}
            elif isinstance(level, (int, float)) and not isinstance(level, bool):
                if not param:
                    raise ValueError(f"{transform}: numeric level {level} needs `param` (the keyword it sets)")
                kwargs = {**fixed, param: (level, level)}
            else:
                raise ValueError(f"{transform}: a level is a number, a mapping of keyword arguments or null, got {level!r}")
            kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
            try:
                self.transforms.append(cls(**kwargs, p=1.0))
            except Exception as err:  # noqa: BLE001 - albumentations raises pydantic / type / value errors
                msg = (str(err).splitlines() or [type(err).__name__])[:3]
                raise ValueError(f"{transform}({kwargs}): {' '.join(m.strip() for m in msg)}") from None

    def __len__(self) -> int:
        return len(self.levels)

    def __call__(self, img: np.ndarray, level: int, seed: int) -> np.ndarray:
        """Level ``level`` of the ``H×W×3`` uint8 image, random draws from ``seed`` (the same for every level)."""
        t = self.transforms[level]
        if t is None:
            return img
        t.set_random_seed(int(seed))
        out = t(image=img)["image"]
        if out.shape != img.shape or out.dtype != np.uint8:
            raise ValueError(f"{self.name} level {level} changed the image from {img.shape} uint8 to {out.shape} {out.dtype}")
        return out

    def tensor(self, img: np.ndarray, level: int, seed: int) -> torch.Tensor:
        """:meth:`__call__` as a ``3×H×W`` float tensor in [0, 1]."""
        return to_tensor(np.ascontiguousarray(self(img, level, seed)))


class DegradationPairDataset(HRPatchDataset):
    """Training items in the pair format of :mod:`ranksrgan.data.rank`: the window, flips, level
    pair and seed of :class:`ranksrgan.data.rank.hr_folder.HRPatchDataset`, both levels made here
    (in the worker).

    Args:
        images: decoded HR arrays ``H×W×3`` (uint8 or uint16).
        degradation: the levels.
        patch_size, length, augment, min_sharpness: as :class:`ranksrgan.data.rank.hr_folder.HRPatchDataset`.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        degradation: Degradation,
        patch_size: int,
        length: int,
        augment: bool = True,
        min_sharpness: float = 0.0,
    ) -> None:
        super().__init__(images, len(degradation), patch_size, length, augment, min_sharpness)
        self.degradation = degradation

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        """``key``: an index, or ``(index, item seed)`` (:mod:`ranksrgan.data.sampling`)."""
        hr, k1, k2, seed = self.draw(key)
        hr = _to_uint8(hr)
        d = self.degradation
        return pair_item(d.tensor(hr, k1, seed), d.tensor(hr, k2, seed), k1, k2, d.values[k1], d.values[k2])


class DegradationTupleDataset(HRWindowDataset):
    """Validation items ``{"images": L×3×p×p, "levels": L}`` at the fixed windows of
    :class:`ranksrgan.data.rank.hr_folder.HRWindowDataset` (same seeds), every level of each."""

    def __init__(
        self,
        images: Sequence[np.ndarray],
        degradation: Degradation,
        patch_size: int,
        windows_per_image: int,
        seed: int = 0,
        min_sharpness: float = 0.0,
    ) -> None:
        super().__init__(images, patch_size, windows_per_image, seed, min_sharpness)
        self.degradation = degradation

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, y, x = self.items[index]
        p = self.patch_size
        hr = _to_uint8(self.images[i][y : y + p, x : x + p])
        seed = self.window_seed(index)
        num = len(self.degradation)
        return {
            "images": torch.stack([self.degradation.tensor(hr, k, seed) for k in range(num)]),
            "levels": torch.arange(num),
        }


class AlbumentationsRankDataModule(HRRankDataModule):
    """Rank pairs of an albumentations degradation at fixed levels (see the module docstring).

    The loaders yield ready batches (``{"img1", "img2", "target", "level1", "level2", "value1",
    "value2"}`` for training, ``{"images": B×L×3×p×p, "levels": B×L}`` for validation); the
    degradation runs in the DataLoader workers.

    Args:
        transform, levels, param, fixed, values: the family (:class:`Degradation`).
        train_hr / val_hr: HR folders (split by folder, or ``train_hr`` split by image: ``val_fraction``).
        **settings: the other HR-folder settings (patch_size, batch_size, ...): see
            :class:`~ranksrgan.data.rank.hr_folder.HRRankDataModule`.
    """

    def __init__(
        self,
        transform: str,
        levels: Sequence[Any],
        train_hr: Sequence[str],
        val_hr: Sequence[str],
        param: str | None = None,
        fixed: Mapping[str, Any] | None = None,
        values: Sequence[float] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(train_hr, val_hr, **settings)
        self.degradation = Degradation(transform, levels, param, fixed, values)
        self.label = self.degradation.name
        self.levels = self.degradation.levels

    def make_train_set(self, images: list[np.ndarray]) -> Dataset:
        return DegradationPairDataset(
            images, self.degradation, self.patch_size, self.patches_per_epoch, self.augment, self.min_sharpness
        )

    def make_val_set(self, images: list[np.ndarray]) -> Dataset:
        return DegradationTupleDataset(
            images, self.degradation, self.patch_size, self.val_windows_per_image, self.seed, self.min_sharpness
        )
