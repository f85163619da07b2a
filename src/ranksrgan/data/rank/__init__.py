"""Rank datasets: the same content at several quality LEVELS, for training a Ranker.

Families (one module each): ``sr`` (SR results of several methods, labelled by a metric or by
method; the labelling itself is ``sr_labelling``), ``interp`` (``λ·SR + (1-λ)·HR``),
``distortion`` (Gaussian blur / noise on HR), ``degradations`` (any albumentations degradation of
HR at fixed levels: JPEG, resizing, motion blur, sensor noise). The families made from HR folders
alone share the data module of ``hr_folder``.

Label convention, used by every family, by the label files and by
:class:`ranksrgan.lit.ranker_module.RankerModule`:

* ``level``: integer, 0 = BEST; a higher level is a WORSE image (SR family, metric rank: the rank
  of the metric value at that location; model classification: the method's position in the
  method list, listed best first; interp: index into the ascending λ list, λ = 1 (pure SR) is
  worst; blur/noise: index into the ascending sigma / std list; albumentations families: index
  into the level list, listed best first).
* ``value``: float with the same polarity (higher = worse): the metric value (SR, metric rank),
  the level index (SR, model classification), λ, sigma or noise std. The regression ablation
  (``loss="mse"``) regresses the Ranker score onto it.
* ``target = +1`` when ``img1`` is WORSE than ``img2`` (``level1 > level2``), ``-1`` otherwise.
  With ``torch.nn.functional.margin_ranking_loss(s1, s2, target, margin)`` =
  ``max(0, -target·(s1 - s2) + margin)`` this asks for ``s1 > s2 + margin`` when img1 is worse:
  a HIGHER Ranker score means a WORSE image (the paper's eq. (4) with γ = -target).

Batch formats (floats in [0, 1], ``p`` = patch size):

* training: ``{"img1": B×3×p×p, "img2": B×3×p×p, "target": B float ±1, "level1": B long,
  "level2": B long, "value1": B float, "value2": B float}`` — two different levels of the same
  content, the level pair drawn uniformly, the order random (targets balanced);
* validation: ``{"images": B×L×3×p×p, "levels": B×L long}`` — every level of one location, so that
  SROCC over all images and accuracy per level pair can be computed.

The distortion family yields clean HR patches from its loaders and makes the batches above in
``on_after_batch_transfer`` (on the GPU when training there); the albumentations families make
them in the DataLoader workers (CPU).

This module holds the pieces shared by the families (decode-once image cache, patch grid,
flips, pair sampling); the families import from it, it imports none of them.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import torch

from ranksrgan.data.hr_lr_pairs import make_lr
from ranksrgan.io import decode_image, list_images, to_array, to_tensor
from ranksrgan.ops.filters import apply_flips, random_flips
from ranksrgan.ops.resize import imresize

__all__ = [
    "DecodedImage",
    "image_names",
    "load_folders",
    "split_by_image",
    "grid_positions",
    "random_flips",
    "apply_flips",
    "sample_level_pair",
    "bicubic_upscale",
    "pair_item",
    "check_levels",
    "random_window",
    "val_windows",
]


class DecodedImage:
    """One decoded image: ``name`` (``folder/stem``), ``path`` and ``array`` ``H×W×3`` uint8/uint16."""

    __slots__ = ("name", "path", "array")

    def __init__(self, name: str, path: Path, array: np.ndarray) -> None:
        self.name, self.path, self.array = name, path, array


def image_names(folders: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """``{"<folder name>/<file stem>": path}`` of every image of ``folders`` (sorted by folder,
    then file name). Raises FileNotFoundError for an empty or missing folder, ValueError when two
    folders give the same name (two folders called ``HR``)."""
    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    names: dict[str, Path] = {}
    for folder in folders:
        files = list_images(folder)
        if not files:
            raise FileNotFoundError(f"{folder}: no images (png, jpg, bmp, tif)")
        for path in files:
            name = f"{Path(folder).name}/{path.stem}"
            if name in names:
                raise ValueError(f"{path}: image name {name!r} also names {names[name]}; give the folders different names")
            names[name] = path
    return names


def load_folders(
    folders: Sequence[str | os.PathLike], min_size: int = 0, only: Collection[str] | None = None
) -> list[DecodedImage]:
    """Decode every image of ``folders`` once (sorted by folder, then file name), or only those
    whose name (``"<folder name>/<file stem>"``, :func:`image_names`) is in ``only``.

    Raises FileNotFoundError for an empty or missing folder, :class:`ranksrgan.io.ImageReadError`
    naming the file for a corrupt one or one smaller than ``min_size`` on either side.
    """
    from ranksrgan.io import check_min_size

    images: list[DecodedImage] = []
    for name, path in image_names(folders).items():
        if only is not None and name not in only:
            continue
        array = decode_image(path)
        if min_size:
            check_min_size(path, array.shape[0], array.shape[1], min_size)
        images.append(DecodedImage(name, path, array))
    return images


def split_by_image(images: Sequence[str], val_fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """Split image names into (train, val) sets: a seeded permutation of the sorted names,
    ``ceil(val_fraction·n)`` to val (at least one image on each side when ``0 < val_fraction < 1``
    and there are >= 2 images). The same names and seed give the same split, whatever their order."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    names = sorted(set(images))
    if val_fraction > 0 and len(names) < 2:
        raise ValueError(f"cannot split {len(names)} image(s) into train and validation")
    order = np.random.default_rng(seed).permutation(len(names))
    n_val = min(max(math.ceil(val_fraction * len(names)), 1 if val_fraction > 0 else 0), len(names) - 1)
    val = {names[i] for i in order[:n_val]}
    return set(names) - val, val


def grid_positions(h: int, w: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of a regular grid of ``patch``-sized windows inside ``h×w``
    (``range(0, h - patch + 1, stride)`` on each axis, row-major). Empty if the image is smaller."""
    if patch < 1 or stride < 1:
        raise ValueError(f"patch ({patch}) and stride ({stride}) must be >= 1")
    return [(y, x) for y in range(0, h - patch + 1, stride) for x in range(0, w - patch + 1, stride)]


def sample_level_pair(num_levels: int, generator: torch.Generator | None = None) -> tuple[int, int]:
    """Two different levels, the unordered pair uniform over all ``L(L-1)/2`` pairs, order random
    (from ``generator``, else torch's global RNG)."""
    pairs = list(itertools.combinations(range(num_levels), 2))
    i, j = pairs[int(torch.randint(len(pairs), (), generator=generator))]
    return (j, i) if bool(torch.rand((), generator=generator) < 0.5) else (i, j)


def pair_item(
    img1: torch.Tensor, img2: torch.Tensor, level1: int, level2: int, value1: float, value2: float
) -> dict[str, torch.Tensor]:
    """One training item in the batch format of this package (``target`` +1 when img1 is worse)."""
    if level1 == level2:
        raise ValueError(f"a rank pair needs two different levels, got {level1} twice")
    return {
        "img1": img1,
        "img2": img2,
        "target": torch.tensor(1.0 if level1 > level2 else -1.0),
        "level1": torch.tensor(level1, dtype=torch.long),
        "level2": torch.tensor(level2, dtype=torch.long),
        "value1": torch.tensor(float(value1)),
        "value2": torch.tensor(float(value2)),
    }


def bicubic_upscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic SR of an ``H×W×3`` uint8/uint16 HR: MATLAB ``imresize`` down by ``scale``
    (rounded, as a stored LR PNG), then MATLAB ``imresize`` up by ``scale``, rounded to the HR dtype.

    The HR is mod-cropped to a multiple of ``scale`` first, so the result can be smaller than
    ``hr`` by up to ``scale - 1`` pixels on each axis (cut the HR the same way: ``hr[:H, :W]``).
    """
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    lr = make_lr(np.ascontiguousarray(hr[:h, :w]), scale)
    up = imresize(to_tensor(lr).double(), float(scale)).clamp(0, 1)
    return to_array(up, hr.dtype)


def check_levels(values: Sequence[float], name: str) -> list[float]:
    """Validate a level list (best first: strictly increasing, at least two) and return floats."""
    values = [float(v) for v in values]
    if len(values) < 2:
        raise ValueError(f"{name}: need at least two levels, got {values}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{name}: levels must be strictly increasing (best first), got {values}")
    return values


def _window_sharpness(img: np.ndarray, windows: Sequence[tuple[int, int]], patch: int) -> np.ndarray:
    from ranksrgan.data.rank.patch_scores import sharpness

    x = torch.stack([to_tensor(np.ascontiguousarray(img[y : y + patch, x_ : x_ + patch])) for y, x_ in windows])
    return sharpness(x).numpy()


def random_window(
    img: np.ndarray, patch: int, min_sharpness: float = 0.0, tries: int = 16, generator: torch.Generator | None = None
) -> tuple[int, int]:
    """Uniform top-left corner of a ``patch`` window in the ``H×W×3`` image (from ``generator``,
    else torch's global RNG).

    With ``min_sharpness > 0`` up to ``tries`` windows are drawn and the first whose sharpness
    (:func:`ranksrgan.data.rank.patch_scores.sharpness`) reaches it is returned, else the sharpest.
    """
    h, w = img.shape[:2]

    def draw() -> tuple[int, int]:
        return (
            int(torch.randint(0, h - patch + 1, (), generator=generator)),
            int(torch.randint(0, w - patch + 1, (), generator=generator)),
        )

    if min_sharpness <= 0:
        return draw()
    best, best_s = (0, 0), -1.0
    for _ in range(tries):
        win = draw()
        s = float(_window_sharpness(img, [win], patch)[0])
        if s >= min_sharpness:
            return win
        if s > best_s:
            best, best_s = win, s
    return best


def val_windows(img: np.ndarray, patch: int, max_windows: int, seed: int, min_sharpness: float = 0.0) -> list[tuple[int, int]]:
    """Fixed validation windows of an ``H×W×3`` image: the non-overlapping grid (stride =
    ``patch``) without windows below ``min_sharpness``, at most ``max_windows`` of them (a
    subset drawn with ``seed``, kept in raster order)."""
    positions = grid_positions(img.shape[0], img.shape[1], patch, patch)
    if min_sharpness > 0 and positions:
        keep = _window_sharpness(img, positions, patch) >= min_sharpness
        positions = [p for p, k in zip(positions, keep) if k]
    if len(positions) > max_windows:
        pick = np.sort(np.random.default_rng(seed).choice(len(positions), size=max_windows, replace=False))
        positions = [positions[i] for i in pick]
    return positions
