"""Built-in demo HR set made from the natural images that ship inside scikit-image.

No download is needed: the demo, the tests and the notebooks all run on these. The split is by
image (never by patch), so no content is on both sides:

* train: astronaut, rocket, hubble_deep_field, retina, immunohistochemistry, motorcycle_left,
  motorcycle_right (a stereo pair: kept on the same side);
* val: chelsea, coffee.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ranksrgan.io import to_tensor, write_image

TRAIN_IMAGES = (
    "astronaut",
    "rocket",
    "hubble_deep_field",
    "retina",
    "immunohistochemistry",
    "motorcycle_left",
    "motorcycle_right",
)

__all__ = ["TRAIN_IMAGES", "VAL_IMAGES", "demo_image", "build_demo_dataset"]
VAL_IMAGES = ("chelsea", "coffee")


def demo_image(name: str) -> np.ndarray:
    """One skimage sample image as an ``H×W×3`` uint8 RGB array."""
    import skimage.data as skd

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skd.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    if name not in TRAIN_IMAGES + VAL_IMAGES:
        raise ValueError(f"unknown demo image {name!r}; choose from {TRAIN_IMAGES + VAL_IMAGES}")
    img = getattr(skd, name)()
    return np.ascontiguousarray(img[:, :, :3])


def build_demo_dataset(root: str | os.PathLike) -> dict[str, Path]:
    """Write the demo HR PNGs to ``root/{train,val}/HR`` (atomically; existing files are kept).

    Returns ``{"train": path, "val": path}``. Safe to call repeatedly and from several processes.
    """
    root = Path(root)
    folders = {}
    for split, names in (("train", TRAIN_IMAGES), ("val", VAL_IMAGES)):
        folder = root / split / "HR"
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            target = folder / f"{name}.png"
            if not target.exists():
                write_image(target, to_tensor(demo_image(name)))
        folders[split] = folder
    return folders
