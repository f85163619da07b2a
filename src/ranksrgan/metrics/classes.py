"""The torchmetrics forms of the metrics: DDP-safe means of the per-image functions.

| class | mean of | better |
|---|---|---|
| :class:`PSNRY` | :func:`~ranksrgan.metrics.fidelity.psnr_y` | higher |
| :class:`SSIMY` | :func:`~ranksrgan.metrics.fidelity.ssim_y` | higher |
| :class:`ChromaRatio` | :func:`~ranksrgan.metrics.fidelity.chroma_ratio` | ideal 1 |
| :class:`NIQE` | :func:`~ranksrgan.metrics.niqe.niqe` | lower |
| :class:`Ma` | :func:`~ranksrgan.metrics.ma.ma` | higher |
| :class:`PI` | :func:`~ranksrgan.metrics.ma.pi` | lower |
| :class:`Grid` | :func:`~ranksrgan.metrics.grid.grid_amplitude` | lower |

Kept apart from the functions because importing torchmetrics (which imports torchvision's
models) takes seconds: scoring files needs only the functions. The modules of the functions
still hand these classes out (``from ranksrgan.metrics.niqe import NIQE``), importing this
module on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from ranksrgan.metrics.base import PerImageMean
from ranksrgan.metrics.fidelity import chroma_ratio, psnr_y, ssim_y
from ranksrgan.metrics.grid import grid_amplitude
from ranksrgan.metrics.ma import MaModel, _as_model, pi
from ranksrgan.metrics.ma import ma as ma_score
from ranksrgan.metrics.niqe import _COLORS, niqe
from ranksrgan.metrics.registry import METRICS

__all__ = ["PSNRY", "SSIMY", "ChromaRatio", "NIQE", "Ma", "PI", "Grid"]


class _AgainstHRMean(PerImageMean):
    """Mean over images of the full-reference score ``_score(sr, hr, crop_border) -> (B,)`` that a
    subclass sets. ``update(sr, hr)`` with ``B×3×H×W`` in [0, 1]."""

    _score: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]

    def __init__(self, crop_border: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crop_border = crop_border

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        self._accumulate(self._score(sr, hr, self.crop_border))


class PSNRY(_AgainstHRMean):
    """Mean :func:`psnr_y` over images. ``update(sr, hr)`` with ``B×3×H×W`` in [0, 1]. Higher is better."""

    higher_is_better = METRICS["psnr"].higher_is_better
    _score = staticmethod(psnr_y)


class SSIMY(_AgainstHRMean):
    """Mean :func:`ssim_y` over images. ``update(sr, hr)`` with ``B×3×H×W`` in [0, 1]. Higher is better."""

    higher_is_better = METRICS["ssim"].higher_is_better
    _score = staticmethod(ssim_y)


class ChromaRatio(_AgainstHRMean):
    """Mean :func:`chroma_ratio` over images. ``update(sr, hr)`` with ``B×3×H×W`` in [0, 1]; ideal 1."""

    higher_is_better = METRICS["chroma"].higher_is_better
    _score = staticmethod(chroma_ratio)


class NIQE(PerImageMean):
    """Mean :func:`niqe` over all images seen (DDP-safe sum and count). Lower is better.

    Args:
        color: ``"y"`` (MATLAB ``rgb2ycbcr`` luma, PIRM2018 / RankSRGAN) or ``"gray"``
            (MATLAB ``rgb2gray``, LIVE); see :func:`niqe`.
        crop_border: pixels shaved from each side (PIRM2018 uses the SR scale).
        **kwargs: torchmetrics ``Metric`` options.

    ``update(preds)`` takes ``(B, C, H, W)`` images in [0, 1]; ``compute()`` returns the float64
    mean. A NaN score (constant image) makes the mean NaN.
    """

    higher_is_better = METRICS["niqe"].higher_is_better
    full_state_update = False

    def __init__(self, color: str = "y", crop_border: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if color not in _COLORS:
            raise ValueError(f"NIQE: color must be one of {_COLORS}, got {color!r}")
        self.color = color
        self.crop_border = crop_border

    def update(self, preds: torch.Tensor) -> None:
        self._accumulate(niqe(preds, color=self.color, crop_border=self.crop_border).reshape(-1))


class _MaModelMean(PerImageMean):
    """Mean over images of a score of the Ma model, ``_score(x, model, color=, crop_border=) ->
    (B,)``, that a subclass sets with its defaults. ``update(x)`` takes ``(B, 3|1, H, W)`` in [0, 1]."""

    _score: Callable[..., torch.Tensor]

    def __init__(self, model: MaModel | str | os.PathLike | None, color: str, crop_border: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model = _as_model(model)
        self.color = color
        self.crop_border = crop_border

    def update(self, x: torch.Tensor) -> None:
        self._accumulate(self._score(x, self.model, color=self.color, crop_border=self.crop_border))


class Ma(_MaModelMean):
    """Mean Ma score over all images seen (torchmetrics). **Higher = better.**

    Args:
        model: :class:`MaModel` or path; None searches as :func:`load_ma_model` (loaded at init,
            so a missing model fails early).
        color: ``"gray"`` (authors) or ``"y"`` (PIRM).
        crop_border: pixels shaved per side.

    ``update(x)`` takes ``(B, 3|1, H, W)`` in [0, 1].
    """

    higher_is_better = METRICS["ma"].higher_is_better
    _score = staticmethod(ma_score)

    def __init__(
        self, model: MaModel | str | os.PathLike | None = None, color: str = "gray", crop_border: int = 0, **kwargs
    ) -> None:
        super().__init__(model, color, crop_border, **kwargs)


class PI(_MaModelMean):
    """Mean Perceptual Index over all images seen (torchmetrics). **Lower = better.**

    Args:
        model: Ma model or path (see :class:`Ma`).
        color: ``"y"`` (PIRM default) or ``"gray"``.
        crop_border: pixels shaved per side (PIRM default 4).
    """

    higher_is_better = METRICS["pi"].higher_is_better
    _score = staticmethod(pi)

    def __init__(
        self, model: MaModel | str | os.PathLike | None = None, color: str = "y", crop_border: int = 4, **kwargs
    ) -> None:
        super().__init__(model, color, crop_border, **kwargs)


class Grid(PerImageMean):
    """Mean :func:`~ranksrgan.metrics.grid.grid_amplitude` over images: the amplitude (grey
    levels) of the pattern repeated at the period ``scale``. Lower is better.

    ``update(x)`` takes ``(B, 3|1, H, W)`` in [0, 1]; ``scale``, ``crop_border`` and ``color`` as
    in the function (the registry's ``make`` sets them from a convention and the SR scale).
    """

    higher_is_better = METRICS["grid"].higher_is_better

    def __init__(self, scale: int = 4, crop_border: int = 0, color: str = "y", **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = scale
        self.crop_border = crop_border
        self.color = color

    def update(self, x: torch.Tensor) -> None:
        self._accumulate(grid_amplitude(x, scale=self.scale, crop_border=self.crop_border, color=self.color))
