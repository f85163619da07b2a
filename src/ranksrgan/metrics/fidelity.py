"""Full-reference fidelity: PSNR and SSIM on the MATLAB Y channel, border cropped.

This is the convention of SR papers (and of RankSRGAN's Table 3): both images are RGB in [0, 1],
first rounded to 8 bits (as a saved PNG would be), converted to MATLAB ``rgb2ycbcr`` luma
(not rounded again), and ``crop_border`` pixels (the scale) are shaved from each side.
SSIM is Wang et al.'s: 11×11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, 'valid' filtering,
computed in float64 on the 0-255 scale. Higher is better for both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ranksrgan.metrics.base import PerImageMean
from ranksrgan.ops.color import quantize_uint8, rgb_to_y


def _prepare_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, quantize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if sr.dim() == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    if sr.dim() != 4 or sr.shape[1] not in (1, 3):
        raise ValueError(f"expected B×3×H×W or B×1×H×W images, got shape {tuple(sr.shape)}")
    sr, hr = sr.double(), hr.double()
    if quantize:
        sr, hr = quantize_uint8(sr), quantize_uint8(hr)
    if sr.shape[1] == 3:
        sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    if crop_border:
        if min(sr.shape[-2:]) <= 2 * crop_border:
            raise ValueError(f"image {tuple(sr.shape[-2:])} too small for crop_border={crop_border}")
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    return sr, hr


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """PSNR in dB on Y. ``sr``, ``hr``: ``(B,)3×H×W`` in [0, 1]. Returns a B-vector (inf where equal)."""
    y1, y2 = _prepare_y(sr, hr, crop_border, quantize)
    mse = (y1 - y2).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """SSIM on Y (0-255 scale, Gaussian 11×11, valid). ``(B,)3×H×W`` in [0, 1] -> B-vector in [-1, 1]."""
    y1, y2 = _prepare_y(sr, hr, crop_border, quantize)
    if min(y1.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs at least 11×11 pixels after cropping, got {tuple(y1.shape[-2:])}")
    y1, y2 = y1 * 255.0, y2 * 255.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    win = _gaussian_window(device=y1.device)
    mu1, mu2 = F.conv2d(y1, win), F.conv2d(y2, win)
    s11 = F.conv2d(y1 * y1, win) - mu1**2
    s22 = F.conv2d(y2 * y2, win) - mu2**2
    s12 = F.conv2d(y1 * y2, win) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return ssim_map.mean(dim=(1, 2, 3))


class PSNRY(PerImageMean):
    """Mean :func:`psnr_y` over images. ``update(sr, hr)`` with ``B×3×H×W`` in [0, 1]. Higher is better."""

    higher_is_better = True

    def __init__(self, crop_border: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crop_border = crop_border

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        self._accumulate(psnr_y(sr, hr, self.crop_border))


class SSIMY(PerImageMean):
    """Mean :func:`ssim_y` over images. ``update(sr, hr)`` with ``B×3×H×W`` in [0, 1]. Higher is better."""

    higher_is_better = True

    def __init__(self, crop_border: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crop_border = crop_border

    def update(self, sr: torch.Tensor, hr: torch.Tensor) -> None:
        self._accumulate(ssim_y(sr, hr, self.crop_border))
