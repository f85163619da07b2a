"""Full-reference fidelity: PSNR and SSIM on the MATLAB Y channel, border cropped.

This is the convention of SR papers (and of RankSRGAN's Table 3): both images are RGB in [0, 1],
first rounded to 8 bits (as a saved PNG would be), converted to MATLAB ``rgb2ycbcr`` luma
(not rounded again), and ``crop_border`` pixels (the scale) are shaved from each side.
SSIM is Wang et al.'s: 11×11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, 'valid' filtering,
computed in float64 on the 0-255 scale; the arithmetic is ``piq.ssim`` (equal to the usual
SR-paper SSIM to ~1e-16). PSNR stays our own two lines: ``piq.psnr`` adds 1e-8 to the MSE, which
turns identical images into 80 dB instead of inf. Higher is better for both.

Colour-sensitive measures (Y-only metrics cannot see a generator that turns grey), same 8-bit
rounding and border crop: :func:`psnr_rgb` (PSNR over the three RGB channels), :func:`chroma_ratio`
(colourfulness relative to HR, from the MATLAB ``rgb2ycbcr`` Cb/Cr channels) and :func:`ciede2000`
(mean CIEDE2000 colour difference, CPU only).
"""

from __future__ import annotations

import torch

from ranksrgan._lazy import lazy_attributes
from ranksrgan.ops.color import quantize_uint8, rgb_to_y

__all__ = ["psnr_y", "rmse_y", "psnr_rgb", "chroma_ratio", "ciede2000", "ssim_y"]


def _prepare_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int, quantize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _prepare(sr, hr, crop_border, quantize, to_y=True)


def _prepare(
    sr: torch.Tensor, hr: torch.Tensor, crop_border: int, quantize: bool, to_y: bool
) -> tuple[torch.Tensor, torch.Tensor]:

    if sr.shape != hr.shape:
        raise ValueError(f"sr and hr shapes differ: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if sr.dim() == 3:
        sr, hr = sr.unsqueeze(0), hr.unsqueeze(0)
    if sr.dim() != 4 or sr.shape[1] not in (1, 3):
        raise ValueError(f"expected B×3×H×W or B×1×H×W images, got shape {tuple(sr.shape)}")
    sr, hr = sr.double(), hr.double()
    if quantize:
        sr, hr = quantize_uint8(sr), quantize_uint8(hr)
    if to_y and sr.shape[1] == 3:
        sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    if crop_border:
        if min(sr.shape[-2:]) <= 2 * crop_border:
            raise ValueError(f"image {tuple(sr.shape[-2:])} too small for crop_border={crop_border}")
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    return sr, hr


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """PSNR in dB on Y. ``sr``, ``hr``: ``(B,)3×H×W`` in [0, 1]. Returns a B-vector (inf where equal).

    >>> hr = torch.zeros(2, 3, 16, 16)
    >>> psnr_y(hr + 10 / 255, hr, crop_border=4)  # 20·log10(255 / (219/255 · 10))
    tensor([29.4527, 29.4527], dtype=torch.float64)
    """
    y1, y2 = _prepare_y(sr, hr, crop_border, quantize)
    mse = (y1 - y2).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


def rmse_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """RMSE on Y, 0-255 scale: ``255·10^(-PSNR_Y/20)`` (0 where equal). Lower is better.

    A grey offset of 10 levels is ``219/255 * 10`` levels of Y:

    >>> import torch
    >>> hr = torch.zeros(1, 3, 8, 8)
    >>> rmse_y(hr + 10 / 255, hr)
    tensor([8.5882], dtype=torch.float64)
    """
    return 255.0 * torch.pow(10.0, -psnr_y(sr, hr, crop_border=crop_border, quantize=quantize).double() / 20.0)


def psnr_rgb(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """PSNR in dB over all RGB channels (one MSE over R, G and B). ``(B,)3×H×W`` in [0, 1].

    Range [0, inf) (inf where the images are equal), higher is better. Unlike :func:`psnr_y` it
    drops when the colours are wrong even if the luma is right (a grey output loses several dB).
    """
    x1, x2 = _prepare(sr, hr, crop_border, quantize, to_y=False)
    if x1.shape[1] != 3:
        raise ValueError(f"psnr_rgb needs RGB images, got shape {tuple(sr.shape)}")
    mse = (x1 - x2).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(1.0 / mse)


# MATLAB rgb2ycbcr chroma rows (0-255 output for RGB in [0, 1]); the offset 128 does not change a std.
_CB_COEFFS = (-37.797, -74.203, 112.0)
_CR_COEFFS = (112.0, -93.786, -18.214)
# std Cb + std Cr (0-255 scale) below which an image counts as having no chroma at all; one
# 8-bit level of colour in one pixel of a 100-Mpx image is still ~1e-3.
_NO_CHROMA = 1e-6


def _chroma_std(x: torch.Tensor) -> torch.Tensor:
    """Per-image ``std(Cb) + std(Cr)`` (MATLAB ``rgb2ycbcr``, 0-255 scale) of ``B×3×H×W``."""
    r, g, b = x.unbind(1)
    cb = _CB_COEFFS[0] * r + _CB_COEFFS[1] * g + _CB_COEFFS[2] * b
    cr = _CR_COEFFS[0] * r + _CR_COEFFS[1] * g + _CR_COEFFS[2] * b
    return cb.flatten(1).std(dim=1, correction=0) + cr.flatten(1).std(dim=1, correction=0)


def chroma_ratio(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """Colourfulness of SR relative to HR: ``(std Cb_SR + std Cr_SR) / (std Cb_HR + std Cr_HR)``.

    Cb and Cr are the MATLAB ``rgb2ycbcr`` chroma channels; the standard deviations are taken per
    image over the (cropped) pixels, and the two channels are averaged (summed) before dividing,
    so a channel that is nearly constant in HR cannot blow the ratio up. Range [0, inf): 1.0 is
    HR's colourfulness, about 0 a grey (desaturated) output, above 1 over-saturated colours; the
    ideal is 1 (in practice a failing GAN falls below it, so higher is better up to 1). NaN when
    HR itself has no chroma variation (a grey reference).
    """
    x1, x2 = _prepare(sr, hr, crop_border, quantize, to_y=False)
    if x1.shape[1] != 3:
        raise ValueError(f"chroma_ratio needs RGB images, got shape {tuple(sr.shape)}")
    num, den = _chroma_std(x1), _chroma_std(x2)
    num = torch.where(num > _NO_CHROMA, num, torch.zeros_like(num))
    # the Cb/Cr rows sum to zero only up to rounding: a grey image has a std of ~1e-14, not 0
    return torch.where(den > _NO_CHROMA, num / den, torch.full_like(num, float("nan")))


def ciede2000(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """Mean CIEDE2000 colour difference (``skimage.color.deltaE_ciede2000`` on CIELAB, D65).

    ``(B,)3×H×W`` in [0, 1] -> B-vector. Range [0, ~100], 0 = identical colours; lower is better.
    Computed on the CPU in numpy: about 0.8 µs per pixel on one core (2.2 s for a 2040×1356 image).
    """
    from skimage.color import deltaE_ciede2000, rgb2lab

    x1, x2 = _prepare(sr, hr, crop_border, quantize, to_y=False)
    if x1.shape[1] != 3:
        raise ValueError(f"ciede2000 needs RGB images, got shape {tuple(sr.shape)}")
    a = x1.detach().cpu().permute(0, 2, 3, 1).numpy()
    b = x2.detach().cpu().permute(0, 2, 3, 1).numpy()
    values = [float(deltaE_ciede2000(rgb2lab(u), rgb2lab(v)).mean()) for u, v in zip(a, b)]
    return torch.tensor(values, dtype=torch.float64)


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """SSIM on Y (0-255 scale, Gaussian 11×11, valid). ``(B,)3×H×W`` in [0, 1] -> B-vector in [-1, 1].

    Our conventions (8-bit rounding, MATLAB Y, border crop, float64) are applied here; the SSIM
    arithmetic is ``piq.ssim`` with Wang et al.'s constants and no downsampling.

    >>> x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    >>> ssim_y(x, x, crop_border=4)
    tensor([1., 1.], dtype=torch.float64)
    >>> bool(ssim_y(x.flip(-1), x)[0] < 0.5)
    True
    """
    import piq

    y1, y2 = _prepare_y(sr, hr, crop_border, quantize)
    if min(y1.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs at least 11×11 pixels after cropping, got {tuple(y1.shape[-2:])}")
    # piq checks the value range; Y of an 8-bit RGB image lies in [16, 235] / 255
    return piq.ssim(
        y1 * 255.0,
        y2 * 255.0,
        kernel_size=11,
        kernel_sigma=1.5,
        data_range=255.0,
        reduction="none",
        downsample=False,
        k1=0.01,
        k2=0.03,
    )


# The torchmetrics classes PSNRY, SSIMY, ChromaRatio live in :mod:`ranksrgan.metrics.classes` (torchmetrics costs seconds
# to import); still importable from here, loaded on first use.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    dict.fromkeys(
        (
            "PSNRY",
            "SSIMY",
            "ChromaRatio",
        ),
        "ranksrgan.metrics.classes",
    ),
)
