"""Decoded HR/LR image pairs: the Lightning-free core of the paired SR data.

HR images are decoded once and mod-cropped to the scale; LR images are MATLAB bicubic
``imresize(HR, 1/scale)`` rounded to the HR bit depth (what a saved LR PNG holds), or read from a
given LR folder and checked against the HR size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ranksrgan.io import (
    ImageReadError,
    check_min_size,
    decode_image,
    images_by_stem,
    list_images,
    read_matched,
    to_array,
    to_tensor,
)
from ranksrgan.ops.filters import apply_flips
from ranksrgan.ops.resize import imresize

__all__ = ["ImagePair", "make_lr", "load_pair", "load_pairs", "augment_pair"]


@dataclass
class ImagePair:
    """One decoded image pair: ``hr`` ``H×W×3`` and ``lr`` ``(H/s)×(W/s)×3``, uint8 or uint16."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(hr, 1/scale)`` of an ``H×W×3`` uint array, rounded back to its dtype.

    >>> make_lr(np.zeros((8, 12, 3), np.uint8), 4).shape
    (2, 3, 3)
    """
    lr = imresize(to_tensor(hr).double(), 1.0 / scale).clamp(0, 1)
    return to_array(lr, hr.dtype)


def load_pair(
    hr_path: Path,
    scale: int,
    lr_by_stem: Mapping[str, Path] | None = None,
    lr_dir: str | Path | None = None,
    min_hr_size: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One HR image mod-cropped to ``scale`` (bottom/right) and its LR: the file with the same stem
    in ``lr_by_stem`` (from ``lr_dir``; its size must be HR/scale; rounded to the HR bit depth),
    or MATLAB bicubic :func:`make_lr` when ``lr_by_stem`` is None.

    Raises:
        FileNotFoundError: no LR image with the HR's stem. ImageReadError: unreadable file, an
            image smaller than the scale (or ``min_hr_size``), or an LR of the wrong size.
    """
    hr = decode_image(hr_path)
    if min_hr_size:
        check_min_size(hr_path, hr.shape[0], hr.shape[1], min_hr_size)
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    if h == 0 or w == 0:
        raise ImageReadError(f"{hr_path}: image is {hr.shape[0]}x{hr.shape[1]}, smaller than the scale x{scale}")
    hr = np.ascontiguousarray(hr[:h, :w])
    if lr_by_stem is None:
        return hr, make_lr(hr, scale)
    want = (h // scale, w // scale)
    lr = read_matched(
        lr_by_stem,
        hr_path.stem,
        [want],
        f"{hr_path}: no LR image with stem {hr_path.stem!r} in {lr_dir}",
        "LR",
        f"HR {hr_path.name} at x{scale} needs {want[0]}x{want[1]}",
        hr.dtype,
    )
    return hr, lr


def load_pairs(hr_dirs: Sequence[str], lr_dirs: Sequence[str] | None, scale: int, min_hr_size: int = 0) -> list[ImagePair]:
    """Decode every HR image (mod-cropped to the scale) and its LR (given or made by imresize):
    :func:`load_pair` for every HR file of the folders.

    LR files are matched to HR files by file stem; a missing LR file or an LR whose size is not
    HR/scale raises an error naming both files.
    """
    if lr_dirs is not None and len(lr_dirs) != len(hr_dirs):
        raise ValueError(f"got {len(hr_dirs)} HR folders but {len(lr_dirs)} LR folders")
    pairs: list[ImagePair] = []
    for i, hr_dir in enumerate(hr_dirs):
        hr_files = list_images(hr_dir)
        if not hr_files:
            raise FileNotFoundError(f"{hr_dir}: no images ({', '.join(('png', 'jpg', 'bmp', 'tif'))})")
        lr_dir = lr_dirs[i] if lr_dirs is not None else None
        lr_by_stem = images_by_stem(lr_dir) if lr_dir is not None else None
        for hr_path in hr_files:
            hr, lr = load_pair(hr_path, scale, lr_by_stem, lr_dir, min_hr_size)
            pairs.append(ImagePair(f"{Path(hr_dir).name}/{hr_path.stem}", hr, lr))
    return pairs


def augment_pair(hr: np.ndarray, lr: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    """The same flips / transpose on an ``H×W×C`` HR and LR pair (:func:`ranksrgan.ops.filters.apply_flips`)."""
    flips = (hflip, vflip, transpose)
    return apply_flips(hr, flips), apply_flips(lr, flips)
