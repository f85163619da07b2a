"""MATLAB colour conversions: ``rgb2ycbcr`` luma (Y) and ``rgb2gray``.

SR papers compute PSNR, SSIM, NIQE and Ma on one of these two channels. Both functions take a
float tensor ``(..., 3, H, W)`` of RGB in [0, 1] and return ``(..., 1, H, W)`` in [0, 1]; they
are differentiable. Use :func:`quantize_uint8` afterwards where MATLAB would have produced
``uint8`` (for example NIQE on an 8-bit image).

kornia's ``rgb_to_y`` is full-range BT.601 and does NOT match these.
"""

from __future__ import annotations

import torch

# MATLAB rgb2ycbcr: Y = 16 + (65.481 R + 128.553 G + 24.966 B) with R, G, B in [0, 1], Y in
# [16, 235] on the 0-255 scale ("studio swing").
__all__ = ["Y_COEFFS", "Y_OFFSET", "GRAY_COEFFS", "rgb_to_y", "rgb_to_gray", "round_levels", "quantize_uint8"]

Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
# MATLAB rgb2gray: the first row of inv(T) of its NTSC transform, to the printed precision.
GRAY_COEFFS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _check_rgb(x: torch.Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"{name}: expected (..., 3, H, W) RGB, got shape {tuple(x.shape)}")


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2ycbcr`` Y channel: RGB (..., 3, H, W) in [0, 1] -> (..., 1, H, W) in [16/255, 235/255].

    Not rounded; ``quantize_uint8(rgb_to_y(x))`` equals MATLAB on a uint8 image.

    >>> y = rgb_to_y(torch.stack([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)]))  # black, white
    >>> y.shape, (y * 255).round().flatten().tolist()
    (torch.Size([2, 1, 2, 2]), [16.0, 16.0, 16.0, 16.0, 235.0, 235.0, 235.0, 235.0])
    """
    _check_rgb(x, "rgb_to_y")
    r, g, b = x.unbind(-3)
    y = (Y_COEFFS[0] * r + Y_COEFFS[1] * g + Y_COEFFS[2] * b + Y_OFFSET) / 255.0
    return y.unsqueeze(-3)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2gray``: RGB (..., 3, H, W) in [0, 1] -> (..., 1, H, W) in [0, 1]. Not rounded.

    >>> rgb_to_gray(torch.ones(3, 2, 5)).shape
    torch.Size([1, 2, 5])
    """
    _check_rgb(x, "rgb_to_gray")
    r, g, b = x.unbind(-3)
    return (GRAY_COEFFS[0] * r + GRAY_COEFFS[1] * g + GRAY_COEFFS[2] * b).unsqueeze(-3)


def round_levels(x: torch.Tensor, levels: float = 255.0) -> torch.Tensor:
    """``floor(x · levels + 0.5)``: [0, 1] values to integer levels (still floats) the way MATLAB's
    uint8/uint16 cast rounds (half up). The one rounding rule of the package: :func:`quantize_uint8`
    and :func:`ranksrgan.io.to_array` use it. ``x`` must lie in [0, 1] (clamp first).

    >>> round_levels(torch.tensor([0.0, 0.5 / 255, 1.0])).tolist()
    [0.0, 1.0, 255.0]
    """
    return torch.floor(x * levels + 0.5)


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] values to the 8-bit grid as MATLAB's uint8 cast does (half away from zero,
    saturating), returning floats in [0, 1] of the same dtype.

    >>> (quantize_uint8(torch.tensor([0.5 / 255, 1.49 / 255, 2.0])) * 255).tolist()
    [1.0, 1.0, 255.0]
    """
    return round_levels(x.clamp(0.0, 1.0)) / 255.0
