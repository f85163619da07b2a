"""Perceptual and fidelity metrics in the MATLAB conventions of SR papers (no Lightning/Hydra).

Functional API (B-vectors, float64) and torchmetrics classes (DDP-safe means,
:mod:`ranksrgan.metrics.classes`; only they import torchmetrics):

| metric | function | class | better |
|---|---|---|---|
| NIQE (LIVE / PIRM) | :func:`niqe` | :class:`NIQE` | lower |
| Ma et al. 2017 (NRQM) | :func:`ma` | :class:`Ma` | higher |
| PI = ((10 - Ma) + NIQE) / 2 | :func:`pi` | :class:`PI` | lower |
| period-``scale`` pattern amplitude | :func:`grid_amplitude` (:func:`grid_pattern`) | :class:`Grid` | lower |
| PSNR on MATLAB Y | :func:`psnr_y` | :class:`PSNRY` | higher |
| SSIM on MATLAB Y (arithmetic: piq) | :func:`ssim_y` | :class:`SSIMY` | higher |
| LPIPS (VGG16, piq) | :func:`lpips` | :class:`LPIPSLoss` (loss term) | lower |
| DISTS (piq) | :func:`dists` | :class:`DISTSLoss` (loss term) | lower |

LPIPS and DISTS read weights files from the torch hub cache (downloaded on first use) or from
the files named by ``RANKSRGAN_LPIPS_WEIGHTS`` / ``RANKSRGAN_DISTS_WEIGHTS`` and
``RANKSRGAN_VGG16_WEIGHTS`` (see :mod:`ranksrgan.metrics.perceptual`).

Identity, polarity, inputs and the ``PIRM`` / ``LIVE`` conventions of every metric:
:mod:`ranksrgan.metrics.registry` (the scoring tools go through it).

The names are imported on first use, so ``import ranksrgan.metrics.registry`` does not import torch.

Note: ``ranksrgan.metrics.ma`` / ``.niqe`` here are the functions; import the modules with
``from ranksrgan.metrics.ma import load_ma_model`` and the like.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from ranksrgan._lazy import lazy_attributes

# public name -> module that defines it
_LAZY = {
    **dict.fromkeys(("psnr_y", "ssim_y", "rmse_y"), "ranksrgan.metrics.fidelity"),
    **dict.fromkeys(("MaModel", "convert_ma_model", "load_ma_model", "ma", "ma_features", "pi"), "ranksrgan.metrics.ma"),
    **dict.fromkeys(("niqe",), "ranksrgan.metrics.niqe"),
    **dict.fromkeys(("NIQE", "Ma", "PI", "PSNRY", "SSIMY", "Grid"), "ranksrgan.metrics.classes"),
    **dict.fromkeys(("grid_amplitude", "grid_pattern"), "ranksrgan.metrics.grid"),
    **dict.fromkeys(("DISTSLoss", "LPIPSLoss", "dists", "lpips", "perceptual_metric_loss"), "ranksrgan.metrics.perceptual"),
    **dict.fromkeys(("LIVE", "METRICS", "PIRM", "MetricInfo", "Convention"), "ranksrgan.metrics.registry"),
}

__all__ = [
    "Convention",
    "DISTSLoss",
    "Grid",
    "LIVE",
    "LPIPSLoss",
    "METRICS",
    "Ma",
    "MaModel",
    "MetricInfo",
    "NIQE",
    "PI",
    "PIRM",
    "PSNRY",
    "SSIMY",
    "convert_ma_model",
    "dists",
    "grid_amplitude",
    "grid_pattern",
    "load_ma_model",
    "lpips",
    "ma",
    "ma_features",
    "niqe",
    "perceptual_metric_loss",
    "pi",
    "psnr_y",
    "rmse_y",
    "ssim_y",
]

if TYPE_CHECKING:  # static analysers and IDEs see the real names
    from ranksrgan.metrics.classes import NIQE, PI, PSNRY, SSIMY, Grid, Ma
    from ranksrgan.metrics.fidelity import psnr_y, rmse_y, ssim_y
    from ranksrgan.metrics.grid import grid_amplitude, grid_pattern
    from ranksrgan.metrics.ma import MaModel, convert_ma_model, load_ma_model, ma, ma_features, pi
    from ranksrgan.metrics.niqe import niqe
    from ranksrgan.metrics.perceptual import DISTSLoss, LPIPSLoss, dists, lpips, perceptual_metric_loss
    from ranksrgan.metrics.registry import LIVE, METRICS, PIRM, Convention, MetricInfo


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


class _Package(types.ModuleType):
    """Keeps ``ranksrgan.metrics.ma`` / ``.niqe`` the functions after their modules are imported
    (the import system binds a submodule to its package's attribute of the same name)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
