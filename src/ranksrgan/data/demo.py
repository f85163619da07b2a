"""Built-in demo HR set made from the natural images that ship inside scikit-image.

No download is needed: the demo, the tests and the notebooks all run on these. The split is by
image (never by patch), so no content is on two sides. These are all the colour photographs that
scikit-image ships (its other colour images are synthetic):

* train: astronaut, hubble_deep_field, retina, immunohistochemistry;
* val (validation curves; checkpoint selection with ``select: best``): motorcycle_left,
  motorcycle_right (a stereo pair: one scene, kept on one side);
* test (the final table only; no stage reads it): chelsea, coffee, rocket.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ranksrgan.io import to_tensor, write_image

__all__ = ["SPLITS", "TEST_IMAGES", "TRAIN_IMAGES", "VAL_IMAGES", "demo_image", "build_demo_dataset"]

TRAIN_IMAGES = ("astronaut", "hubble_deep_field", "retina", "immunohistochemistry")
VAL_IMAGES = ("motorcycle_left", "motorcycle_right")
TEST_IMAGES = ("chelsea", "coffee", "rocket")
#: Split name -> its images (folders ``<root>/<split>/HR``).
SPLITS = {"train": TRAIN_IMAGES, "val": VAL_IMAGES, "test": TEST_IMAGES}


def demo_image(name: str) -> np.ndarray:
    """One skimage sample image as an ``H×W×3`` uint8 RGB array."""
    import skimage.data as skd

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skd.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    known = TRAIN_IMAGES + VAL_IMAGES + TEST_IMAGES
    if name not in known:
        raise ValueError(f"unknown demo image {name!r}; choose from {known}")
    img = getattr(skd, name)()
    return np.ascontiguousarray(img[:, :, :3])


def build_demo_dataset(root: str | os.PathLike) -> dict[str, Path]:
    """Write the demo HR PNGs to ``root/{train,val,test}/HR`` (atomically; existing files are kept).

    A PNG in one of these folders that its split does not list (left by an older split) is
    removed, so that no image is on two sides. Returns ``{"train": path, "val": path, "test": path}``.
    Safe to call repeatedly and from several processes.
    """
    root = Path(root)
    folders = {}
    for split, names in SPLITS.items():
        folder = root / split / "HR"
        folder.mkdir(parents=True, exist_ok=True)
        for stray in folder.glob("*.png"):
            if stray.stem not in names:
                stray.unlink(missing_ok=True)
        for name in names:
            target = folder / f"{name}.png"
            if not target.exists():
                write_image(target, to_tensor(demo_image(name)))
        folders[split] = folder
    return folders
