"""ranksrgan: RankSRGAN (Zhang, Liu, Dong, Qiao; TPAMI) for PyTorch Lightning and Hydra.

Public API:

* images: :func:`read_image`, :func:`write_image` (float ``3×H×W`` in [0, 1]);
* MATLAB-exact ops: :func:`imresize`, :func:`mod_crop`, :func:`rgb_to_y`, :func:`rgb_to_gray`;
* trained models: :func:`load_generator` (LR -> SR) and :func:`load_ranker` (image -> score,
  higher = worse), for our checkpoints and the authors' released files;
* metrics: :mod:`ranksrgan.metrics` (NIQE, Ma, PI, PSNR/SSIM on Y).
"""

from ranksrgan.checkpoints import load_generator, load_ranker
from ranksrgan.io import read_image, write_image
from ranksrgan.ops import imresize, mod_crop, rgb_to_gray, rgb_to_y

__version__ = "0.1.0"

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
