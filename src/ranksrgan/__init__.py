"""ranksrgan: RankSRGAN (Zhang, Liu, Dong, Qiao; TPAMI) for PyTorch Lightning and Hydra.

Public API:

* images: :func:`read_image`, :func:`write_image` (float ``3×H×W`` in [0, 1]);
* MATLAB-exact ops: :func:`imresize`, :func:`mod_crop`, :func:`rgb_to_y`, :func:`rgb_to_gray`;
* trained models: :func:`load_generator` (LR -> SR) and :func:`load_ranker` (image -> score,
  higher = worse), for our checkpoints and the authors' released files;
* metrics: :mod:`ranksrgan.metrics` (NIQE, Ma, PI, PSNR/SSIM on Y, LPIPS, DISTS).

The names above are imported on first use (PEP 562), so ``import ranksrgan`` does not import
torch: the command-line tools can set ``OMP_WAIT_POLICY`` first (see :mod:`ranksrgan.cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ranksrgan._lazy import lazy_attributes

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "imresize": "ranksrgan.ops",
    "load_generator": "ranksrgan.checkpoints",
    "load_ranker": "ranksrgan.checkpoints",
    "mod_crop": "ranksrgan.ops",
    "read_image": "ranksrgan.io",
    "rgb_to_gray": "ranksrgan.ops",
    "rgb_to_y": "ranksrgan.ops",
    "write_image": "ranksrgan.io",
}

__all__ = [
    "imresize",
    "load_generator",
    "load_ranker",
    "mod_crop",
    "read_image",
    "rgb_to_gray",
    "rgb_to_y",
    "write_image",
]

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from ranksrgan.checkpoints import load_generator, load_ranker
    from ranksrgan.io import read_image, write_image
    from ranksrgan.ops import imresize, mod_crop, rgb_to_gray, rgb_to_y


__getattr__ = lazy_attributes(__name__, _LAZY)[0]


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
