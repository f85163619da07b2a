"""Perceptual and fidelity metrics in the MATLAB conventions of SR papers (no Lightning/Hydra).

Functional API (B-vectors, float64) and torchmetrics classes (DDP-safe means):

| metric | function | class | better |
|---|---|---|---|
| NIQE (LIVE / PIRM) | :func:`niqe` | :class:`NIQE` | lower |
| Ma et al. 2017 (NRQM) | :func:`ma` | :class:`Ma` | higher |
| PI = ((10 - Ma) + NIQE) / 2 | :func:`pi` | :class:`PI` | lower |
| PSNR on MATLAB Y | :func:`psnr_y` | :class:`PSNRY` | higher |
| SSIM on MATLAB Y (arithmetic: piq) | :func:`ssim_y` | :class:`SSIMY` | higher |
| LPIPS (VGG16, piq) | :func:`lpips` | :class:`LPIPSLoss` (loss term) | lower |
| DISTS (piq) | :func:`dists` | :class:`DISTSLoss` (loss term) | lower |

LPIPS and DISTS read weights files from the torch hub cache (downloaded on first use) or from
the files named by ``RANKSRGAN_LPIPS_WEIGHTS`` / ``RANKSRGAN_DISTS_WEIGHTS`` and
``RANKSRGAN_VGG16_WEIGHTS`` (see :mod:`ranksrgan.metrics.perceptual`).

Note: ``ranksrgan.metrics.ma`` / ``.niqe`` here are the functions; import the modules with
``from ranksrgan.metrics.ma import load_ma_model`` and the like.
"""

from ranksrgan.metrics.fidelity import PSNRY, SSIMY, psnr_y, ssim_y
from ranksrgan.metrics.ma import PI, Ma, MaModel, convert_ma_model, load_ma_model, ma, ma_features, pi
from ranksrgan.metrics.niqe import NIQE, niqe
from ranksrgan.metrics.perceptual import DISTSLoss, LPIPSLoss, dists, lpips, perceptual_metric_loss

__all__ = [
    "DISTSLoss",
    "LPIPSLoss",
    "NIQE",
    "PI",
    "PSNRY",
    "SSIMY",
    "Ma",
    "MaModel",
    "convert_ma_model",
    "dists",
    "load_ma_model",
    "lpips",
    "ma",
    "ma_features",
    "niqe",
    "perceptual_metric_loss",
    "pi",
    "psnr_y",
    "ssim_y",
]
