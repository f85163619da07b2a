"""Rank dataset by artificial distortion of HR patches (paper §4.3): Gaussian blur or noise.

Levels (ascending, best first; level ``k`` is ``levels[k]``, the item ``value``):

* ``blur``: Gaussian sigma in pixels, default ``[0.1, 2, 4]`` (the paper's kernel "widths");
  kornia ``gaussian_blur2d`` with a per-sample sigma, kernel side ``2·ceil(3·σ_max)+1`` for the
  batch (a wider kernel does not change a smaller sigma's normalised Gaussian beyond its
  truncation), reflect padding.
* ``noise``: additive white Gaussian noise on the 0-255 scale, default ``[1, 15, 30]`` (the
  paper's "covariances"), the same std in R, G, B, drawn independently per pixel/channel.
  ``noise_level_is`` says what a level is: ``"std"`` (the standard deviation: 1, 15, 30) or
  ``"variance"`` (std = sqrt(level): 1, 3.87, 5.48); :func:`noise_std255`.

Outputs are clamped to [0, 1] and rounded to 8-bit levels, as stored distorted images would be
(the Ranker never sees values an image file could not hold).

The loaders yield CLEAN HR patches; the distortion is done batched in
:meth:`DistortionRankDataModule.on_after_batch_transfer`, i.e. on the GPU when training there.
Reproducibility: every item carries an integer ``seed`` (drawn from the training item's key,
:mod:`ranksrgan.data.sampling`, a pure function of the run's seed, the epoch and the index; a
fixed function of the index for validation). Noise for image slot ``j`` of an item comes from a
``torch.Generator`` on the batch's device seeded with ``seed·8 + j``: the same seeds give the
same images on the same device type (CPU and CUDA generators differ).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ranksrgan.data.base import ImageFolderDataModule
from ranksrgan.data.rank import (
    DecodedImage,
    apply_flips,
    check_levels,
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
from ranksrgan.ops.color import quantize_uint8

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LEVELS",
    "KINDS",
    "NOISE_LEVEL_MEANINGS",
    "noise_std255",
    "blur_kernel_size",
    "gaussian_blur",
    "gaussian_noise",
    "distort",
    "HRPatchDataset",
    "HRWindowDataset",
    "HRRankDataModule",
    "DistortionRankDataModule",
]

DEFAULT_LEVELS = {"blur": (0.1, 2.0, 4.0), "noise": (1.0, 15.0, 30.0)}
KINDS = tuple(DEFAULT_LEVELS)
#: what a noise level is (``noise_level_is``): its standard deviation or its variance, 0-255 scale
NOISE_LEVEL_MEANINGS = ("std", "variance")
_SEED_SLOTS = 8  # noise seed of slot j of an item = seed * 8 + j (j < 8)
_MAX_SEED = 2**40


def blur_kernel_size(sigma: float) -> int:
    """Odd kernel side covering ±3σ: ``2·ceil(3σ) + 1`` (at least 3)."""
    return max(2 * math.ceil(3.0 * float(sigma)) + 1, 3)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur ``B×C×H×W`` images in [0, 1] with per-sample Gaussian ``sigma`` (``B``, pixels); not rounded."""
    import kornia

    sigma = sigma.to(device=x.device, dtype=x.dtype).reshape(-1)
    k = blur_kernel_size(float(sigma.max()))
    if k // 2 >= min(x.shape[-2:]):
        raise ValueError(f"blur kernel {k}x{k} (sigma {float(sigma.max())}) is too large for {x.shape[-2]}x{x.shape[-1]} patches")
    return kornia.filters.gaussian_blur2d(x, (k, k), torch.stack([sigma, sigma], dim=1), border_type="reflect")


def noise_std255(levels: torch.Tensor, noise_level_is: str = "std") -> torch.Tensor:
    """The noise standard deviation (0-255) of noise ``levels``: the levels themselves
    (``"std"``) or their square roots (``"variance"``)."""
    if noise_level_is not in NOISE_LEVEL_MEANINGS:
        raise ValueError(f"noise_level_is must be one of {NOISE_LEVEL_MEANINGS}, got {noise_level_is!r}")
    return levels if noise_level_is == "std" else levels.sqrt()


def gaussian_noise(x: torch.Tensor, std255: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Add N(0, (std/255)²) noise to ``B×C×H×W``; sample ``b`` uses a generator seeded with ``seeds[b]``."""
    std = std255.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1) / 255.0
    noise = torch.empty_like(x)
    gen = torch.Generator(device=x.device)
    for b, seed in enumerate(seeds.reshape(-1).tolist()):
        gen.manual_seed(int(seed))
        noise[b] = torch.randn(x.shape[1:], generator=gen, device=x.device, dtype=x.dtype)
    return x + std * noise


def distort(x: torch.Tensor, kind: str, values: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Distort ``B×3×H×W`` in [0, 1] at per-sample level ``values`` (sigma or 0-255 std); the
    result is clamped and rounded to 8-bit levels. ``seeds`` (``B`` int) drive the noise."""
    if kind == "blur":
        out = gaussian_blur(x, values)
    elif kind == "noise":
        out = gaussian_noise(x, values, seeds)
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return quantize_uint8(out)


class HRPatchDataset(Dataset):
    """Training items ``{"hr": 3×p×p, "level1", "level2", "seed"}``: images round-robin, a random
    window, random flips, a random level pair (the distortion itself happens after transfer).

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

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        """``key``: an index, or ``(index, item seed)`` (:mod:`ranksrgan.data.sampling`)."""
        index, gen = key_generator(key)
        img = self.images[index % len(self.images)]
        p = self.patch_size
        y, x = random_window(img, p, self.min_sharpness, generator=gen)
        hr = to_tensor(np.ascontiguousarray(img[y : y + p, x : x + p]))
        if self.augment:
            hr = apply_flips(hr, random_flips(gen))
        k1, k2 = sample_level_pair(self.num_levels, gen)
        return {
            "hr": hr,
            "level1": torch.tensor(k1),
            "level2": torch.tensor(k2),
            "seed": torch.randint(_MAX_SEED, (), generator=gen),
        }


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
        return {"hr": hr, "seed": torch.tensor((self.seed * 1_000_003 + index) % _MAX_SEED)}


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


class DistortionRankDataModule(HRRankDataModule):
    """Blur or noise rank pairs made on the fly from HR patches (RankSRGAN's Ranker-b / Ranker-n).

    The loaders yield clean HR patches; :meth:`on_after_batch_transfer` turns a training batch
    into ``{"img1", "img2", "target", "level1", "level2", "value1", "value2"}`` and a validation
    batch into ``{"images": B×L×3×p×p, "levels": B×L}`` (see :mod:`ranksrgan.data.rank`).

    Args:
        kind: ``"blur"`` or ``"noise"``.
        train_hr / val_hr: HR folders (split by folder, or ``train_hr`` split by image: ``val_fraction``).
        levels: ascending sigma (blur, px) or noise level (0-255) list; None: the paper's.
        noise_level_is: ``"std"`` or ``"variance"``: what a noise level is (:func:`noise_std255`);
            noise only.
        **settings: the other HR-folder settings of
            :class:`~ranksrgan.data.rank.distortion.HRRankDataModule` (patch_size, batch_size,
            num_workers, patches_per_epoch, val_windows_per_image, min_sharpness, augment, seed,
            build_demo, demo_root, val_fraction, split_seed).
    """

    def __init__(
        self,
        kind: str,
        train_hr: Sequence[str],
        val_hr: Sequence[str],
        levels: Sequence[float] | None = None,
        noise_level_is: str = "std",
        **settings: Any,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if noise_level_is not in NOISE_LEVEL_MEANINGS:
            raise ValueError(f"noise_level_is must be one of {NOISE_LEVEL_MEANINGS}, got {noise_level_is!r}")
        if kind != "noise" and noise_level_is != "std":
            raise ValueError(f"noise_level_is applies to noise levels only, not to {kind}")
        super().__init__(train_hr, val_hr, **settings)
        self.noise_level_is = noise_level_is
        self.kind = self.label = kind
        self.levels = check_levels(DEFAULT_LEVELS[kind] if levels is None else levels, f"{kind} levels")
        if len(self.levels) > _SEED_SLOTS:
            raise ValueError(f"at most {_SEED_SLOTS} {kind} levels are supported, got {len(self.levels)}")
        if self.levels[0] < 0:
            raise ValueError(f"{kind} levels must be >= 0, got {self.levels}")
        if kind == "blur" and blur_kernel_size(self.levels[-1]) // 2 >= self.patch_size:
            raise ValueError(f"blur sigma {self.levels[-1]} needs patches larger than {self.patch_size}")

    # ------------------------------------------------------------------ batched distortion

    def strength(self, levels: torch.Tensor) -> torch.Tensor:
        """What :func:`distort` takes for ``levels``: blur sigma, or the noise std (0-255)."""
        return noise_std255(levels, self.noise_level_is) if self.kind == "noise" else levels

    def make_pairs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"hr", "level1", "level2", "seed"}`` -> the training pair batch (on ``hr``'s device)."""
        hr, seed = batch["hr"], batch["seed"]
        l1, l2 = batch["level1"].to(hr.device), batch["level2"].to(hr.device)
        table = torch.tensor(self.levels, device=hr.device, dtype=hr.dtype)
        v1, v2 = table[l1], table[l2]
        img1 = distort(hr, self.kind, self.strength(v1), seed * _SEED_SLOTS)
        img2 = distort(hr, self.kind, self.strength(v2), seed * _SEED_SLOTS + 1)
        target = torch.where(l1 > l2, 1.0, -1.0).to(hr.dtype)
        return {"img1": img1, "img2": img2, "target": target, "level1": l1, "level2": l2, "value1": v1, "value2": v2}

    def make_tuples(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"hr", "seed"}`` -> ``{"images": B×L×3×p×p, "levels": B×L}`` (every level of each window)."""
        hr, seed = batch["hr"], batch["seed"]
        b, num = hr.shape[0], len(self.levels)
        values = torch.tensor(self.levels, device=hr.device, dtype=hr.dtype).repeat(b)
        seeds = (seed.reshape(-1, 1) * _SEED_SLOTS + torch.arange(num, device=seed.device)).reshape(-1)
        x = hr.unsqueeze(1).expand(b, num, *hr.shape[1:]).reshape(b * num, *hr.shape[1:])
        images = distort(x, self.kind, self.strength(values), seeds).reshape(b, num, *hr.shape[1:])
        return {"images": images, "levels": torch.arange(num, device=hr.device).repeat(b, 1)}

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Distort the clean patches of a batch (runs on the training device)."""
        if isinstance(batch, dict) and "hr" in batch:
            return self.make_pairs(batch) if "level1" in batch else self.make_tuples(batch)
        return batch
