"""Rank dataset by image interpolation (paper §4.2): ``I = λ·SR + (1 - λ)·HR``.

Levels are the ascending λ list (default ``[0, 0.25, 0.5, 0.75, 1]``): level ``k`` is
``lambdas[k]``, so λ = 0 (the HR) is level 0 = best and λ = 1 (pure SR) is the worst level; the
item ``value`` is λ. Interpolated patches are rounded to 8 bits, as stored images would be.

SR source (``sr``):

* ``"bicubic"``: MATLAB bicubic up-scaling of the MATLAB bicubic LR (cheap; the CPU demo);
* a generator checkpoint file (``.pth``/``.pt``/``.ckpt``): loaded with
  :func:`ranksrgan.checkpoints.load_generator` and run once per image on the MATLAB bicubic LR
  (on the GPU when there is one), rounded to 8 bits;
* a folder of SR images with the HR file stems (one folder may serve train and val HR folders).

Every HR image and its SR are decoded / computed ONCE in ``setup()`` and kept in memory (uint8
or uint16 arrays); patches are slices of them. To keep generator outputs across runs, write them
to a folder once (``ranksrgan-upscale``) and pass the folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ranksrgan.data.hr_lr_pairs import make_lr
from ranksrgan.data.rank import (
    DecodedImage,
    apply_flips,
    bicubic_upscale,
    check_levels,
    pair_item,
    random_flips,
    random_window,
    sample_level_pair,
)
from ranksrgan.data.rank.hr_folder import HRRankDataModule, HRWindowDataset
from ranksrgan.data.sampling import SampleKey, key_generator
from ranksrgan.device import resolve_device
from ranksrgan.io import images_by_stem, mod_sizes, read_matched, to_array, to_tensor
from ranksrgan.ops.color import quantize_uint8

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_LAMBDAS", "interpolate", "make_sr_images", "InterpPairDataset", "InterpTupleDataset", "InterpRankDataModule"]

DEFAULT_LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def interpolate(sr: torch.Tensor, hr: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """``quantize_uint8(λ·sr + (1 - λ)·hr)``: tensors in [0, 1] of one shape; λ a float or a
    tensor broadcastable to them (e.g. ``B×1×1×1``)."""
    return quantize_uint8(lam * sr + (1.0 - lam) * hr)


@torch.no_grad()
def _generator_sr(generator: torch.nn.Module, hr: np.ndarray, scale: int, device: torch.device) -> np.ndarray:
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    lr = to_tensor(make_lr(np.ascontiguousarray(hr[:h, :w]), scale))[None].to(device)
    out = quantize_uint8(generator(lr).float().clamp(0, 1))[0]
    if tuple(out.shape[-2:]) != (h, w):
        raise ValueError(f"generator output is {out.shape[-2]}x{out.shape[-1]} for a {h}x{w} HR at x{scale}: wrong scale?")
    return to_array(out)


def make_sr_images(
    images: Sequence[DecodedImage], sr: str, scale: int, device: str | torch.device | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(hr, sr)]`` arrays of one size per HR image, from the SR source ``sr`` (module docstring).

    Raises FileNotFoundError for a missing source or SR file, ImageReadError naming the file for
    an SR image whose size is neither the HR's nor the HR's mod-cropped to ``scale``.
    """
    device = resolve_device(device)
    out = []
    if sr == "bicubic":
        for img in images:
            up = bicubic_upscale(img.array, scale)
            out.append((np.ascontiguousarray(img.array[: up.shape[0], : up.shape[1]]), up))
        return out
    path = Path(sr)
    if path.is_file():
        from ranksrgan.checkpoints import CHECKPOINT_SUFFIXES, is_checkpoint_path, load_generator

        if not is_checkpoint_path(path.name):
            raise ValueError(f"sr {path}: a file must be a generator checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})")

        generator = load_generator(path).to(device).eval()
        for img in images:
            up = _generator_sr(generator, img.array, scale, device)
            out.append((np.ascontiguousarray(img.array[: up.shape[0], : up.shape[1]]), up))
        return out
    if not path.is_dir():
        raise FileNotFoundError(f"sr {sr!r}: not 'bicubic', a generator checkpoint file or a folder of SR images")
    by_stem = images_by_stem(path)
    for img in images:
        h, w = img.array.shape[:2]
        mh, mw = h - h % scale, w - w % scale
        up = read_matched(
            by_stem,
            img.path.stem,
            mod_sizes(h, w, scale),
            f"{img.path}: no SR image with stem {img.path.stem!r} in {path}",
            "SR image",
            f"HR {img.path} is {h}x{w} (expected {h}x{w} or {mh}x{mw} at x{scale})",
            img.array.dtype,
        )
        out.append((np.ascontiguousarray(img.array[: up.shape[0], : up.shape[1]]), up))
    return out


class InterpPairDataset(Dataset):
    """Training pairs: images round-robin, a random window, two random λ levels, same flips.

    Args:
        pairs: ``[(hr, sr)]`` arrays ``H×W×3`` of one size per image.
        lambdas: ascending λ list (level k = ``lambdas[k]``; higher = worse).
        patch_size: patch side.
        length: items per epoch.
        augment: random flips and transpose.
        min_sharpness: avoid HR windows flatter than this (:func:`ranksrgan.data.rank.random_window`).
    """

    def __init__(
        self,
        pairs: list[tuple[np.ndarray, np.ndarray]],
        lambdas: Sequence[float],
        patch_size: int,
        length: int,
        augment: bool = True,
        min_sharpness: float = 0.0,
    ) -> None:
        for hr, _ in pairs:
            if min(hr.shape[:2]) < patch_size:
                raise ValueError(f"an image of {hr.shape[0]}x{hr.shape[1]} is smaller than patch_size {patch_size}")
        self.pairs, self.lambdas, self.patch_size, self.length, self.augment = pairs, list(lambdas), patch_size, length, augment
        self.min_sharpness = min_sharpness

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        """``key``: an index, or ``(index, item seed)`` (:mod:`ranksrgan.data.sampling`)."""
        index, gen = key_generator(key)
        hr, sr = self.pairs[index % len(self.pairs)]
        p = self.patch_size
        y, x = random_window(hr, p, self.min_sharpness, generator=gen)
        hr_t, sr_t = to_tensor(hr[y : y + p, x : x + p]), to_tensor(sr[y : y + p, x : x + p])
        k1, k2 = sample_level_pair(len(self.lambdas), gen)
        img1 = interpolate(sr_t, hr_t, self.lambdas[k1])
        img2 = interpolate(sr_t, hr_t, self.lambdas[k2])
        if self.augment:
            flips = random_flips(gen)
            img1, img2 = apply_flips(img1, flips), apply_flips(img2, flips)
        return pair_item(img1, img2, k1, k2, self.lambdas[k1], self.lambdas[k2])


class InterpTupleDataset(HRWindowDataset):
    """Validation: the fixed HR windows of :class:`ranksrgan.data.rank.hr_folder.HRWindowDataset`,
    item -> ``{"images": L×3×p×p (ascending λ), "levels": arange(L)}``.

    Args:
        pairs: ``[(hr, sr)]`` arrays of one size per image.
        lambdas: ascending λ list.
        patch_size: patch side.
        windows_per_image: at most this many non-overlapping windows per image (seeded subset).
        seed: seed of that subset.
        min_sharpness: leave out HR windows flatter than this.
    """

    def __init__(
        self,
        pairs: list[tuple[np.ndarray, np.ndarray]],
        lambdas: Sequence[float],
        patch_size: int,
        windows_per_image: int,
        seed: int = 0,
        min_sharpness: float = 0.0,
    ) -> None:
        super().__init__([hr for hr, _ in pairs], patch_size, windows_per_image, seed, min_sharpness)
        self.pairs, self.lambdas = pairs, torch.tensor(list(lambdas))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, y, x = self.items[index]
        hr, sr = self.pairs[i]
        p = self.patch_size
        hr_t, sr_t = to_tensor(hr[y : y + p, x : x + p]), to_tensor(sr[y : y + p, x : x + p])
        images = interpolate(sr_t[None], hr_t[None], self.lambdas.view(-1, 1, 1, 1))
        return {"images": images, "levels": torch.arange(len(self.lambdas))}


class InterpRankDataModule(HRRankDataModule):
    """Interpolation rank pairs between an SR source and HR (RankSRGAN's Ranker-i).

    Shares the HR-folder settings of :class:`~ranksrgan.data.rank.hr_folder.HRRankDataModule`;
    its datasets pair each HR image with its SR (:func:`make_sr_images`).

    Args:
        train_hr / val_hr: HR folders (split by folder, or ``train_hr`` split by image: ``val_fraction``).
        sr: ``"bicubic"``, a generator checkpoint, or a folder of SR images (module docstring).
        lambdas: ascending λ levels, best (0 = HR) first.
        scale: SR factor (LR making and mod-crop).
        **settings: the other HR-folder settings (patch_size, batch_size, ..., min_sharpness: flat
            windows, where SR and HR barely differ): see :class:`~ranksrgan.data.rank.hr_folder.HRRankDataModule`.
    """

    def __init__(
        self,
        train_hr: Sequence[str],
        val_hr: Sequence[str],
        sr: str = "bicubic",
        lambdas: Sequence[float] = DEFAULT_LAMBDAS,
        scale: int = 4,
        **settings: Any,
    ) -> None:
        super().__init__(train_hr, val_hr, **settings)
        self.lambdas = check_levels(lambdas, "lambdas")
        if self.lambdas[0] < 0 or self.lambdas[-1] > 1:
            raise ValueError(f"lambdas must lie in [0, 1], got {self.lambdas}")
        self.sr, self.scale = str(sr), scale

    @property
    def levels(self) -> list[float]:
        """The λ levels (the family's level values, as other rank data modules name them)."""
        return self.lambdas

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_images, val_images = self.load_images()
        train = make_sr_images(train_images, self.sr, self.scale)
        val = make_sr_images(val_images, self.sr, self.scale)
        self.train_set = InterpPairDataset(
            train, self.lambdas, self.patch_size, self.patches_per_epoch, self.augment, self.min_sharpness
        )
        self.val_set = InterpTupleDataset(
            val, self.lambdas, self.patch_size, self.val_windows_per_image, self.seed, self.min_sharpness
        )
        log.info("interp rank set: %d train images, %d validation windows (SR: %s)", len(train), len(self.val_set), self.sr)
