"""Real steerable pyramid built in the Fourier domain (Simoncelli & Freeman 1995).

This follows the construction of matlabPyrTools' ``buildSFpyr`` (the one Ma et al.'s metric and
DIIVINE use), written from the published math:

* frequencies are laid out as after ``fftshift``; the centre is the 1-based index
  ``ceil((n + 0.5) / 2)`` on each axis, and the radial coordinate is normalised so that the
  Nyquist frequency is 1 on both axes (``(k - ctr) / (n / 2)``);
* radial masks are raised cosines in ``log2`` radius, one octave wide; low-pass ``L`` and
  high-pass ``H`` satisfy ``L^2 + H^2 = 1`` (tight frame);
* angular masks for ``K`` orientations are ``sqrt(c) cos(theta - pi k / K)^(K - 1)`` with
  ``c = 2^(2(K-1)) ((K-1)!)^2 / (K (2(K-1))!)`` so that their squares sum to 1 over both
  half-planes; each oriented band is ``real(ifft2(ifftshift((-i)^(K-1) * D * A_k * H)))``;
* after each level the low-pass spectrum is cropped to ``ceil((n - 0.5) / 2)`` samples around
  the centre (i.e. downsampled by 2) and the radial masks move down one octave;
* masks are evaluated as in matlabPyrTools, by linear interpolation in sampled look-up tables
  (259 samples for the radial raised cosine, 3075 for the angular cosine power), with linear
  extrapolation from the end segments. This reproduces the reference masks sample for sample;
  the analytic masks differ from them by ~1e-5.

All work is batched: ``(B, H, W)`` float64 in, the masks for one image size are built once and
cached per size/device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

__all__ = ["pyramid_masks", "max_height", "build_sf_pyramid"]

_RCOS_SAMPLES = 256  # rcosFn table: 259 = 256 + 3 points
_ANGLE_LUT = 1024  # angular table: pi * (-(2 * 1024 + 1) : 1024 + 1) / 1024


def _rcos_table(width: float, position: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Raised-cosine table (X, Y) from 0 to 1 over ``width`` octaves, ending at ``position + width``."""
    sz = _RCOS_SAMPLES
    x = math.pi * torch.arange(-sz - 1, 2, dtype=torch.float64) / (2 * sz)
    y = torch.cos(x) ** 2
    y[0] = y[1]
    y[sz + 2] = y[sz + 1]
    x = position + (2 * width / math.pi) * (x + math.pi / 4)
    return x, y


def _point_op(values: torch.Tensor, lut: torch.Tensor, origin: float, increment: float) -> torch.Tensor:
    """Piecewise-linear look-up of ``values`` in a table sampled at ``origin + k * increment``.

    Outside the table the end segments are extended linearly (matlabPyrTools ``pointOp``).
    """
    pos = (values - origin) / increment
    idx = torch.floor(pos).clamp(0, lut.numel() - 2)
    i = idx.long()
    lo = lut[i]
    return lo + (lut[i + 1] - lo) * (pos - idx)


@dataclass(frozen=True)
class _Level:
    himask: torch.Tensor  # (h, w) radial high-pass of this level
    anglemasks: torch.Tensor  # (K, h, w) angular masks, (-i)^(K-1) folded in as a complex factor
    crop: tuple[int, int, int, int]  # row start, row end, col start, col end of the next level
    lomask: torch.Tensor  # (h', w') radial low-pass applied after cropping


@dataclass(frozen=True)
class _Plan:
    lo0mask: torch.Tensor
    hi0mask: torch.Tensor
    levels: tuple[_Level, ...]


def _centre(n: int) -> int:
    """1-based centre index of an fftshifted axis of length n: ceil((n + 0.5) / 2)."""
    return math.ceil((n + 0.5) / 2)


@lru_cache(maxsize=16)
def _plan(h: int, w: int, height: int, nbands: int, device: str) -> _Plan:
    ctr_r, ctr_c = _centre(h), _centre(w)
    xr = (torch.arange(1, w + 1, dtype=torch.float64) - ctr_c) / (w / 2)
    yr = (torch.arange(1, h + 1, dtype=torch.float64) - ctr_r) / (h / 2)
    yramp, xramp = torch.meshgrid(yr, xr, indexing="ij")
    angle = torch.atan2(yramp, xramp)
    rad = torch.sqrt(xramp**2 + yramp**2)
    rad[ctr_r - 1, ctr_c - 1] = rad[ctr_r - 1, ctr_c - 2]
    log_rad = torch.log2(rad)

    xrcos, yrcos = _rcos_table(1.0, -0.5)
    yrcos = torch.sqrt(yrcos)
    yircos = torch.sqrt(1.0 - yrcos**2)
    origin, inc = float(xrcos[0]), float(xrcos[1] - xrcos[0])
    lo0mask = _point_op(log_rad, yircos, origin, inc)
    hi0mask = _point_op(log_rad, yrcos, origin, inc)

    order = nbands - 1
    xcosn = math.pi * torch.arange(-(2 * _ANGLE_LUT + 1), _ANGLE_LUT + 2, dtype=torch.float64) / _ANGLE_LUT
    const = (2 ** (2 * order)) * (math.factorial(order) ** 2) / (nbands * math.factorial(2 * order))
    ycosn = math.sqrt(const) * torch.cos(xcosn) ** order
    cos_inc = float(xcosn[1] - xcosn[0])
    phase = (-1j) ** order

    levels = []
    xr_shift = xrcos
    for _ in range(height):
        xr_shift = xr_shift - 1.0  # one octave down
        origin = float(xr_shift[0])
        himask = _point_op(log_rad, yrcos, origin, inc)
        amasks = torch.stack([_point_op(angle, ycosn, float(xcosn[0]) + math.pi * b / nbands, cos_inc) for b in range(nbands)])
        amasks = amasks.to(torch.complex128) * phase
        dims = log_rad.shape
        rs, cs = [], []
        for n, axis_ctr in zip(dims, (_centre(dims[0]), _centre(dims[1]))):
            lodim = math.ceil((n - 0.5) / 2)
            loctr = _centre(lodim)
            start = axis_ctr - loctr  # 0-based
            rs.append(start)
            cs.append(start + lodim)
        crop = (rs[0], cs[0], rs[1], cs[1])
        log_rad = log_rad[crop[0] : crop[1], crop[2] : crop[3]]
        angle = angle[crop[0] : crop[1], crop[2] : crop[3]]
        lomask = _point_op(log_rad, torch.abs(torch.sqrt(1.0 - yrcos**2)), origin, inc)
        levels.append(_Level(himask.to(device), amasks.to(device), crop, lomask.to(device)))
    return _Plan(lo0mask.to(device), hi0mask.to(device), tuple(levels))


def pyramid_masks(h: int, w: int, height: int, nbands: int, device: torch.device | str = "cpu") -> _Plan:
    """The cached Fourier masks of a pyramid for ``h × w`` images (float64 / complex128)."""
    return _plan(h, w, height, nbands, str(torch.device(device)))


def max_height(h: int, w: int) -> int:
    """Highest pyramid buildable on an ``h × w`` image: ``floor(log2(min(h, w))) - 2``."""
    return int(math.floor(math.log2(min(h, w)))) - 2


def build_sf_pyramid(x: torch.Tensor, height: int, nbands: int) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Steerable pyramid of a batch of images.

    Args:
        x: ``(B, H, W)`` real float64 images (any range).
        height: number of oriented levels (>= 1 and <= ``max_height(H, W)``).
        nbands: orientations per level (``order + 1``).

    Returns:
        ``(hi0, bands, lowpass)``: the residual high-pass ``(B, H, W)``; one ``(B, nbands, h_l, w_l)``
        tensor per level, level 0 at full size and each next level ``ceil((n - 0.5) / 2)`` per axis;
        and the residual low-pass ``(B, h_L, w_L)``. All real float64.
    """
    if x.dim() != 3:
        raise ValueError(f"build_sf_pyramid expects (B, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if not 1 <= height <= max_height(h, w):
        raise ValueError(f"cannot build a {height}-level pyramid on a {h}x{w} image (max {max_height(h, w)})")
    plan = pyramid_masks(h, w, height, nbands, x.device)
    imdft = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float64)), dim=(-2, -1))
    hi0 = torch.fft.ifft2(torch.fft.ifftshift(imdft * plan.hi0mask, dim=(-2, -1))).real
    lodft = imdft * plan.lo0mask
    bands = []
    for lev in plan.levels:
        banddft = lodft.unsqueeze(1) * (lev.anglemasks * lev.himask)
        bands.append(torch.fft.ifft2(torch.fft.ifftshift(banddft, dim=(-2, -1))).real)
        r0, r1, c0, c1 = lev.crop
        lodft = lodft[..., r0:r1, c0:c1] * lev.lomask
    lowpass = torch.fft.ifft2(torch.fft.ifftshift(lodft, dim=(-2, -1))).real
    return hi0, bands, lowpass
