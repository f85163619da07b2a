"""Decoded HR/LR image pairs: the Lightning-free core of the paired SR data.

HR images are decoded once and mod-cropped to the scale; LR images are MATLAB bicubic
``imresize(HR, 1/scale)`` rounded to the HR bit depth (what a saved LR PNG holds), or read from a
given LR folder and checked against the HR size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ranksrgan.io import ImageReadError, check_min_size, decode_image, list_images, to_tensor
from ranksrgan.ops.resize import imresize


@dataclass
class ImagePair:
    """One decoded image pair: ``hr`` ``H×W×3`` and ``lr`` ``(H/s)×(W/s)×3``, uint8 or uint16."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(hr, 1/scale)`` of an ``H×W×3`` uint array, rounded back to its dtype."""
    levels = 65535.0 if hr.dtype == np.uint16 else 255.0
    x = torch.from_numpy(hr.astype(np.float32) / levels).permute(2, 0, 1)
    lr = imresize(x.double(), 1.0 / scale).clamp(0, 1)
    lr = torch.floor(lr * levels + 0.5).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(lr.astype(hr.dtype))


def load_pairs(hr_dirs: Sequence[str], lr_dirs: Sequence[str] | None, scale: int, min_hr_size: int = 0) -> list[ImagePair]:
    """Decode every HR image (mod-cropped to the scale) and its LR (given or made by imresize).

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
        lr_by_stem = {p.stem: p for p in list_images(lr_dirs[i])} if lr_dirs is not None else None
        for hr_path in hr_files:
            hr = decode_image(hr_path)
            if min_hr_size:
                check_min_size(hr_path, hr.shape[0], hr.shape[1], min_hr_size)
            hr = np.ascontiguousarray(hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale])
            if lr_by_stem is None:
                lr = make_lr(hr, scale)
            else:
                lr_path = lr_by_stem.get(hr_path.stem)
                if lr_path is None:
                    raise FileNotFoundError(f"{hr_path}: no LR image with stem {hr_path.stem!r} in {lr_dirs[i]}")
                lr = decode_image(lr_path)
                want = (hr.shape[0] // scale, hr.shape[1] // scale)
                if lr.shape[:2] != want:
                    raise ImageReadError(
                        f"{lr_path}: LR is {lr.shape[0]}x{lr.shape[1]} but HR {hr_path.name} at x{scale} needs {want[0]}x{want[1]}"
                    )
                if lr.dtype != hr.dtype:
                    levels = 65535.0 if hr.dtype == np.uint16 else 255.0
                    lr = np.floor(to_tensor(lr).permute(1, 2, 0).numpy() * levels + 0.5).astype(hr.dtype)
            pairs.append(ImagePair(f"{Path(hr_dir).name}/{hr_path.stem}", hr, lr))
    return pairs


def augment_pair(hr: np.ndarray, lr: np.ndarray, hflip: bool, vflip: bool, transpose: bool) -> tuple[np.ndarray, np.ndarray]:
    """The same flips / transpose on an ``H×W×C`` HR and LR pair (views)."""
    if hflip:
        hr, lr = hr[:, ::-1], lr[:, ::-1]
    if vflip:
        hr, lr = hr[::-1], lr[::-1]
    if transpose:
        hr, lr = hr.transpose(1, 0, 2), lr.transpose(1, 0, 2)
    return hr, lr
