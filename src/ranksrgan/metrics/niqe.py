"""NIQE (Mittal, Soundararajan, Bovik, IEEE SPL 2013), faithful to the LIVE MATLAB release.

Lower NIQE = more natural image (better). The score is the distance between a multivariate
Gaussian fitted to natural-scene-statistics features of the image and the pristine model shipped
with the LIVE release (``data/niqe_pris_params.npz``; see ``data/NOTICE_NIQE.txt``).

Pipeline (each step as in LIVE ``computequality``; all arithmetic in float64):

1. Luminance: ``color="y"`` is MATLAB ``rgb2ycbcr`` Y (studio swing), ``color="gray"`` is MATLAB
   ``rgb2gray``; either is rounded to 8 bits as MATLAB does on a uint8 image, then scaled to
   0..255. A 1-channel input is taken as already gray and only rounded. ``"y"`` is the PIRM2018 /
   RankSRGAN convention; ``"gray"`` is what the LIVE code does on an RGB file.
2. ``crop_border`` pixels are shaved from every side (PIRM2018 shaves the SR scale, e.g. 4).
3. Top-left crop to whole ``block_size`` blocks (96 for the shipped model).
4. Two scales (full, then MATLAB ``imresize(0.5)`` bicubic with antialiasing): MSCN coefficients
   ``(I - mu) / (sigma + 1)`` with the 7×7 Gaussian window (sigma 7/6) and replicate padding
   (MATLAB ``imfilter(..., 'replicate')``). The window has rank 1 and is applied as a column pass
   then a row pass of the normalised 1-D Gaussian.
5. Per non-overlapping block (``block_size`` at full scale, ``block_size / 2`` at half scale),
   18 features: AGGD shape and the mean of the left and right scales of the MSCN coefficients,
   then AGGD shape, mean, left and right scale of their products with the four neighbours
   (0, 1), (1, 0), (1, 1), (1, -1), taken with ``circshift`` inside the block. The AGGD shape is the entry of the table
   gamma = 0.2:0.001:10 whose moment ratio is nearest to the estimate (first one on ties;
   undefined ratios give 0.2), exactly MATLAB's ``min`` over the table.
6. ``nanmean`` of the 36 block features (per column) and ``nancov`` (rows with any NaN dropped,
   normalised by N - 1), then ``sqrt(d pinv((cov_pris + cov) / 2) d^T)`` with
   ``d = mu_pris - mu``. (The sharpness that ``computequality`` also computes is unused there.)

Agreement with the MATLAB values of the LIVE / PIRM2018 code, float64 on CPU: about 1e-7 relative
or better on textured images (baboon, TID2013 I04). Where an image has flat areas, MSCN
coefficients there are rounding noise around zero (about 1e-14) whose signs enter the AGGD fits,
so the last bit of the filter arithmetic moves the score: 6e-4 relative on TID2013 I03 and 6e-3
on I19 here, and 1-ulp changes of the filter taps spread them over roughly 5e-4..2e-3 and
1e-3..5e-2. No reimplementation can pin these down without MATLAB's exact arithmetic.
"""

from __future__ import annotations

import math
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ranksrgan.metrics.base import PerImageMean
from ranksrgan.ops.color import quantize_uint8, rgb_to_gray, rgb_to_y
from ranksrgan.ops.resize import imresize

__all__ = ["niqe", "NIQE", "DEFAULT_PARAMS"]

#: The LIVE pristine model (mu 1×36, cov 36×36, 7×7 Gaussian window), shipped with the package.
DEFAULT_PARAMS = Path(__file__).resolve().parent / "data" / "niqe_pris_params.npz"

_RANGE_TOL = 1e-6  # inputs must lie in [0, 1] up to float rounding
# circshift offsets (rows, cols) of the four neighbour products, in LIVE feature order
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
_COLORS = ("y", "gray")
# Working-set bounds (pixels): images are grouped, and block features chunked, so that temporary
# buffers stay well below glibc's 32 MiB mmap threshold (fresh mmap pages cost page faults).
_GROUP_PIXELS = 1 << 20
_CHUNK_PIXELS = 1 << 18


# ----------------------------------------------------------------------------- constants / caches


def _matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """``start:step:stop`` as MATLAB builds it (first half counted up from ``start``, second half
    counted down from ``stop``), float64."""
    n = round((stop - start) / step)
    k = np.arange(n + 1, dtype=np.float64)
    return np.where(k < n / 2, start + k * step, stop - (n - k) * step)


@lru_cache(maxsize=1)
def _gamma_table_np() -> tuple[np.ndarray, ...]:
    """The AGGD shape table of ``estimateaggdparam``: ``(gam, r_gam, beta_factor, mean_factor)``.

    ``r_gam = Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g))`` is strictly increasing on 0.2..10 (checked
    here), which makes a sorted search equal to MATLAB's exhaustive ``min``.
    ``beta_factor = sqrt(Gamma(1/g) / Gamma(3/g))``, ``mean_factor = Gamma(2/g) / Gamma(1/g)``.
    """
    gam = _matlab_colon(0.2, 0.001, 10.0)
    g1 = np.array([math.gamma(1.0 / g) for g in gam])
    g2 = np.array([math.gamma(2.0 / g) for g in gam])
    g3 = np.array([math.gamma(3.0 / g) for g in gam])
    r_gam = g2**2 / (g1 * g3)
    if not np.all(np.diff(r_gam) > 0):  # a property of the Gamma function; guards the search
        raise RuntimeError("NIQE gamma table is not strictly increasing")
    return gam, r_gam, np.sqrt(g1 / g3), g2 / g1


_TABLE_CACHE: dict[torch.device, tuple[torch.Tensor, ...]] = {}


def _gamma_table(device: torch.device) -> tuple[torch.Tensor, ...]:
    if device not in _TABLE_CACHE:
        _TABLE_CACHE[device] = tuple(torch.from_numpy(a).to(device) for a in _gamma_table_np())
    return _TABLE_CACHE[device]


def _gaussian_1d(size: int = 7, sigma: float = 7.0 / 6.0) -> np.ndarray:
    """Normalised 1-D Gaussian taps; ``outer(g, g)`` is MATLAB ``fspecial('gaussian', size, sigma)``.

    Computed with ``math.exp`` and the correctly rounded ``math.fsum`` so that the taps are the
    same on every platform (flat image regions are sensitive to their last bit; see module doc).
    """
    r = (size - 1) / 2
    g = [math.exp(-((k - r) ** 2) / (2.0 * sigma * sigma)) for k in range(size)]
    total = math.fsum(g)
    return np.array([v / total for v in g])


@lru_cache(maxsize=8)
def _load_params_np(path: str) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """``(mu (36,), cov (36, 36), gaussian taps (7,))`` from an ``.npz`` pristine-model file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"NIQE params file not found: {p}")
    with np.load(p) as data:
        missing = {"mu_pris_param", "cov_pris_param", "gaussian_window"} - set(data.files)
        if missing:
            raise ValueError(f"NIQE params file {p} lacks keys {sorted(missing)}")
        mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
        cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
        window = np.asarray(data["gaussian_window"], dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(f"NIQE params file {p}: expected mu 1×36 and cov 36×36, got {mu.shape}, {cov.shape}")
    # computequality hard-codes fspecial('gaussian', 7, 7/6), the outer product of a normalised
    # 1-D Gaussian; it is applied as a column pass then a row pass (MATLAB's imfilter also filters
    # a rank-1 double kernel separably). The file's window must be that Gaussian.
    taps = _gaussian_1d()
    if window.shape != (7, 7) or np.abs(np.outer(taps, taps) - window).max() > 1e-12:
        raise ValueError(f"NIQE params file {p}: gaussian_window is not the 7×7 Gaussian (sigma 7/6) of the LIVE code")
    return mu, cov, tuple(float(t) for t in taps)


_PARAMS_CACHE: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor, tuple[float, ...]]] = {}


def _params(path: str | os.PathLike | None, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, tuple[float, ...]]:
    key = (str(DEFAULT_PARAMS if path is None else Path(path)), device)
    if key not in _PARAMS_CACHE:
        mu, cov, taps = _load_params_np(key[0])
        _PARAMS_CACHE[key] = (torch.from_numpy(mu).to(device), torch.from_numpy(cov).to(device), taps)
    return _PARAMS_CACHE[key]


# ----------------------------------------------------------------------------- building blocks


def _replicate_pad(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Pad ``x`` along ``dim`` by repeating its first / last slice (MATLAB 'replicate')."""
    first = x.narrow(dim, 0, 1)
    last = x.narrow(dim, x.shape[dim] - 1, 1)
    size = list(x.shape)
    parts = []
    if before:
        size[dim] = before
        parts.append(first.expand(size))
    parts.append(x)
    if after:
        size[dim] = after
        parts.append(last.expand(size))
    return torch.cat(parts, dim=dim)


def _filter_replicate(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Correlate ``(N, H, W)`` with the symmetric 1-D ``taps`` down the columns, then along the
    rows, with replicate padding and same-size output (MATLAB ``imfilter(x, taps' * taps,
    'replicate')``). Each pass is a sum of shifted slices, accumulated tap by tap."""
    k = len(taps)
    h, w = x.shape[-2:]
    p = k // 2
    xp = _replicate_pad(x, p, k - 1 - p, dim=-2)
    out = xp[:, 0:h] * taps[0]
    for i in range(1, k):
        out.add_(xp[:, i : i + h], alpha=taps[i])
    xp = _replicate_pad(out, p, k - 1 - p, dim=-1)
    out = xp[:, :, 0:w] * taps[0]
    for i in range(1, k):
        out.add_(xp[:, :, i : i + w], alpha=taps[i])
    return out


def _mscn(im: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """MSCN coefficients of ``(B, H, W)`` 0..255 images: ``(im - mu) / (sigma + 1)`` with
    ``mu = filter(im)`` and ``sigma = sqrt(abs(filter(im .* im) - mu .* mu))``."""
    b = im.shape[0]
    both = im.new_empty((2 * b, *im.shape[1:]))
    both[:b] = im
    torch.mul(im, im, out=both[b:])
    filt = _filter_replicate(both, taps)
    mu = filt[:b]
    sigma = torch.addcmul(filt[b:], mu, mu, value=-1.0).abs_().sqrt_().add_(1.0)
    return (im - mu).div_(sigma)


def _nearest_gamma_index(rhat: torch.Tensor, r_gam: torch.Tensor) -> torch.Tensor:
    """Index of MATLAB ``min((r_gam - rhat).^2)``: the first index of the smallest squared
    difference; non-finite ``rhat`` (all differences NaN or Inf) gives index 0."""
    n = r_gam.numel()
    pos = torch.searchsorted(r_gam, rhat.contiguous())
    # r_gam is strictly increasing, so the minimiser is next to the insertion point; a window of
    # four candidates also covers squared differences that round to equal values.
    cand = (pos.unsqueeze(-1) + torch.arange(-2, 2, device=rhat.device)).clamp_(0, n - 1)
    diff2 = (r_gam[cand] - rhat.unsqueeze(-1)) ** 2
    best = cand.gather(-1, diff2.argmin(dim=-1, keepdim=True)).squeeze(-1)
    return torch.where(torch.isfinite(rhat), best, torch.zeros_like(best))


def _aggd_features(v: torch.Tensor, signs: torch.Tensor, table: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """LIVE ``estimateaggdparam`` over the last dim of ``v`` (N samples): ``(alpha, beta_l, beta_r, mean)``.

    MATLAB: ``leftstd = sqrt(mean(v(v<0).^2))``, ``rightstd`` likewise for ``v > 0``,
    ``rhat = mean(abs(v))^2 / mean(v.^2)``, normalised by the asymmetry ``leftstd / rightstd``;
    an empty side gives NaN (``mean([])``), as does an all-zero vector. ``signs`` is ``sign(v)``
    as int8 (used for the counts of negative and positive samples).
    """
    gam, r_gam, beta_factor, mean_factor = table
    n = v.shape[-1]
    sides = v.new_empty((2, *v.shape))  # [min(v, 0), max(v, 0)]
    torch.clamp(v, max=0.0, out=sides[0])
    torch.clamp(v, min=0.0, out=sides[1])
    sq = torch.linalg.vector_norm(sides, 2, dim=-1) ** 2  # per-side sums of squares, one pass
    sums = sides.sum(-1)
    acc = torch.int16 if n <= torch.iinfo(torch.int16).max else torch.int32
    balance = signs.sum(-1, dtype=acc).to(v.dtype)  # #positive - #negative
    nonzero = signs.abs().sum(-1, dtype=acc).to(v.dtype)  # #positive + #negative
    left_std = (sq[0] / ((nonzero - balance) / 2)).sqrt()
    right_std = (sq[1] / ((nonzero + balance) / 2)).sqrt()
    gammahat = left_std / right_std
    rhat = ((sums[1] - sums[0]) / n) ** 2 / ((sq[0] + sq[1]) / n)
    rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    idx = _nearest_gamma_index(rhatnorm, r_gam)
    factor = beta_factor[idx]
    beta_l, beta_r = left_std * factor, right_std * factor
    return gam[idx], beta_l, beta_r, (beta_r - beta_l) * mean_factor[idx]


def _block_maps(rows: torch.Tensor, bs: int) -> torch.Tensor:
    """``(R, bs, W)`` rows of blocks -> ``(R, nbw, 5, bs * bs)``: per block the block itself and its
    products with the four ``circshift``-ed copies (MATLAB ``circshift`` inside the block).

    Each block is first copied into a frame one pixel larger (top, left and right) holding the
    wrapped-around row and columns, so every shifted copy is a plain slice of the frame.
    """
    r, _, w = rows.shape
    nbw = w // bs
    frame = rows.new_empty((r, nbw, bs + 1, bs + 2))
    frame[:, :, 1:, 1:-1] = rows.view(r, bs, nbw, bs).permute(0, 2, 1, 3)
    frame[:, :, 0, 1:-1] = frame[:, :, -1, 1:-1]  # row -1 = last row
    frame[:, :, :, 0] = frame[:, :, :, -2]  # column -1 = last column
    frame[:, :, :, -1] = frame[:, :, :, 1]  # column bs = first column
    block = frame[:, :, 1:, 1:-1]
    maps = rows.new_empty((r, nbw, 1 + len(_SHIFTS), bs, bs))
    maps[:, :, 0] = block
    for k, (dr, dc) in enumerate(_SHIFTS, start=1):  # shifted[i, j] = block[i - dr, j - dc]
        torch.mul(block, frame[:, :, 1 - dr : 1 - dr + bs, 1 - dc : 1 - dc + bs], out=maps[:, :, k])
    return maps.view(r, nbw, 1 + len(_SHIFTS), bs * bs)


def _block_features(mscn: torch.Tensor, bs: int, table: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """18 LIVE ``computefeature`` features per ``bs``×``bs`` block: ``(B, H, W) -> (B, nblocks, 18)``.

    Blocks are ordered row-major; the order only has to agree between the two scales. Rows of
    blocks are processed in chunks of about ``_CHUNK_PIXELS`` to bound the temporary memory. The
    signs of the pair products are the products of the signs. That is exact: the MSCN values of a
    0..255 image and of its half-scale version are either 0 or above ~1e-40, far above the square
    root of the smallest double, so no product underflows to a zero of the wrong class.
    """
    b, h, w = mscn.shape
    rows = mscn.reshape(b * (h // bs), bs, w)  # one row of blocks each
    step = max(1, _CHUNK_PIXELS // (bs * w))
    signs_all = torch.sign(rows).to(torch.int8)
    feats = []
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step]
        values = _block_maps(chunk, bs)
        signs = _block_maps(signs_all[start : start + step], bs)
        alpha, beta_l, beta_r, mean = _aggd_features(values, signs, table)  # each (rows, nbw, 5)
        first = torch.stack([alpha[..., 0], (beta_l[..., 0] + beta_r[..., 0]) / 2], dim=-1)
        pairs = torch.stack([alpha[..., 1:], mean[..., 1:], beta_l[..., 1:], beta_r[..., 1:]], dim=-1)
        feats.append(torch.cat([first, pairs.flatten(-2)], dim=-1))
    return torch.cat(feats).reshape(b, (h // bs) * (w // bs), 18)


def _image_features(im: torch.Tensor, block_size: int, taps: list[float], table: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``(B, H, W)`` 0..255 images, H and W multiples of ``block_size`` -> ``(B, nblocks, 36)``:
    18 features at full scale, then 18 of the same blocks at half scale."""
    full = _block_features(_mscn(im, taps), block_size, table)
    half = _block_features(_mscn(imresize(im, 0.5), taps), block_size // 2, table)
    return torch.cat([full, half], dim=-1)


def _nan_mean_cov(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MATLAB ``nanmean`` (per column) and ``nancov`` (complete rows, N - 1) of ``(B, N, D)``.

    Returns ``(mean (B, D), cov (B, D, D), complete_rows (B,))``.
    """
    mean = torch.nanmean(feat, dim=1)
    complete = torch.isfinite(feat).all(dim=-1, keepdim=True)  # (B, N, 1)
    n = complete.sum(dim=1)  # (B, 1)
    safe = torch.where(complete, feat, 0.0)
    mean_c = safe.sum(dim=1) / n.clamp(min=1)
    centred = torch.where(complete, feat - mean_c.unsqueeze(1), 0.0)
    cov = centred.transpose(1, 2) @ centred / (n - 1).clamp(min=1).unsqueeze(-1)
    return mean, cov, n.squeeze(-1)


def _luminance_255(x: torch.Tensor, color: str) -> torch.Tensor:
    """``(B, C, H, W)`` in [0, 1] -> 8-bit-rounded luminance ``(B, H, W)`` on 0..255, float64."""
    x = x.to(torch.float64)
    if x.shape[1] == 3:
        x = rgb_to_y(x) if color == "y" else rgb_to_gray(x)
    return quantize_uint8(x)[:, 0] * 255.0  # k / 255 * 255 == k exactly for k = 0..255


def _check_input(x: torch.Tensor, color: str, crop_border: int, block_size: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"niqe: x must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"niqe: x must be a float tensor in [0, 1], got dtype {x.dtype}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"niqe: x must be B×C×H×W or C×H×W with C = 1 or 3, got shape {tuple(x.shape)}")
    if color not in _COLORS:
        raise ValueError(f"niqe: color must be one of {_COLORS}, got {color!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"niqe: crop_border must be a non-negative int, got {crop_border!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 2 or block_size % 2:
        raise ValueError(f"niqe: block_size must be a positive even int, got {block_size!r}")
    if x.numel() == 0:
        raise ValueError(f"niqe: x is empty, shape {tuple(x.shape)}")
    lo, hi = (float(v) for v in torch.aminmax(x))  # one pass; NaN and Inf propagate into these
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("niqe: x contains NaN or Inf")
    if lo < -_RANGE_TOL or hi > 1.0 + _RANGE_TOL:
        raise ValueError(
            f"niqe expects [0, 1] images, got values in [{lo:.4g}, {hi:.4g}] (divide 8-bit images by 255; clamp network outputs)"
        )
    h, w = x.shape[-2] - 2 * crop_border, x.shape[-1] - 2 * crop_border
    nblocks = max(h // block_size, 0) * max(w // block_size, 0)
    if nblocks < 2:
        raise ValueError(
            f"niqe: image {x.shape[-2]}×{x.shape[-1]} with crop_border={crop_border} leaves "
            f"{max(h, 0)}×{max(w, 0)} pixels, {nblocks} block(s) of {block_size}×{block_size}; "
            "at least 2 whole blocks are needed for the feature covariance"
        )
    return x


# ----------------------------------------------------------------------------- public API


@torch.no_grad()
def niqe(
    x: torch.Tensor,
    color: str = "y",
    crop_border: int = 0,
    block_size: int = 96,
    params: str | os.PathLike | None = None,
) -> torch.Tensor:
    """NIQE score, MATLAB-faithful (LIVE ``computequality``). Lower is better (more natural).

    Args:
        x: ``(B, C, H, W)`` or ``(C, H, W)`` float tensor in [0, 1], C = 3 (RGB) or 1 (gray),
            any float dtype (computed in float64), CPU or GPU. Images of one batch share a size.
        color: ``"y"``: MATLAB ``rgb2ycbcr`` luma, rounded to 8 bits (PIRM2018 / RankSRGAN
            scripts). ``"gray"``: MATLAB ``rgb2gray``, rounded to 8 bits (the LIVE code on an
            RGB file). Ignored for 1-channel input, which is only rounded to 8 bits.
        crop_border: pixels shaved from each side before scoring. Default 0 (LIVE); the
            PIRM2018 / RankSRGAN evaluation shaves the SR scale (4).
        block_size: block side at full scale (even); the shipped model was fitted with 96.
            After ``crop_border`` at least two whole blocks must fit.
        params: ``.npz`` with ``mu_pris_param`` (1×36), ``cov_pris_param`` (36×36) and
            ``gaussian_window`` (7×7); default: the LIVE model shipped with this package.

    Returns:
        float64 tensor of shape ``(B,)`` (``()`` for a ``(C, H, W)`` input) on ``x.device``.
        An image with fewer than two blocks of finite features (constant or almost constant
        content) scores NaN, with a ``RuntimeWarning``. Not differentiable.

    Raises:
        ValueError: wrong shape, color or sizes; NaN/Inf input; values outside [0, 1]
            (e.g. a 0-255 image); fewer than two blocks after cropping.
    """
    unbatched = x.dim() == 3
    x = _check_input(x, color, crop_border, block_size)
    device = x.device
    mu_p, cov_p, taps = _params(params, device)
    table = _gamma_table(device)

    # Shave the border, then keep whole blocks from the top-left (computequality's crop); the
    # colour conversion is per pixel, so cropping first only saves work.
    h, w = x.shape[-2] - 2 * crop_border, x.shape[-1] - 2 * crop_border
    x = x[..., crop_border : crop_border + h - h % block_size, crop_border : crop_border + w - w % block_size]
    im = _luminance_255(x, color)

    # Images are processed in groups of about _GROUP_PIXELS so that temporaries stay small.
    group = max(1, _GROUP_PIXELS // (im.shape[-2] * im.shape[-1]))
    feats = [_image_features(im[i : i + group], block_size, list(taps), table) for i in range(0, len(im), group)]
    mu_d, cov_d, n_complete = _nan_mean_cov(torch.cat(feats))

    valid = (n_complete >= 2) & torch.isfinite(mu_d).all(-1) & torch.isfinite(cov_d).flatten(1).all(-1)
    pooled = (cov_p + cov_d) / 2
    eye = torch.eye(pooled.shape[-1], dtype=pooled.dtype, device=device)
    pooled = torch.where(valid[:, None, None], pooled, eye)  # keep the SVD away from NaN
    diff = torch.where(valid[:, None], mu_p - mu_d, 0.0).unsqueeze(1)  # (B, 1, 36)
    quad = (diff @ torch.linalg.pinv(pooled) @ diff.transpose(1, 2)).reshape(-1)
    score = torch.where(valid, quad.clamp(min=0).sqrt(), torch.full_like(quad, float("nan")))
    if not bool(valid.all()):
        bad = torch.nonzero(~valid).flatten().tolist()
        warnings.warn(
            f"niqe: image(s) {bad} have fewer than 2 blocks with finite features "
            "(constant or near-constant content); their score is NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    return score[0] if unbatched else score


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

    higher_is_better = False
    full_state_update = False

    def __init__(self, color: str = "y", crop_border: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if color not in _COLORS:
            raise ValueError(f"NIQE: color must be one of {_COLORS}, got {color!r}")
        self.color = color
        self.crop_border = crop_border

    def update(self, preds: torch.Tensor) -> None:
        self._accumulate(niqe(preds, color=self.color, crop_border=self.crop_border).reshape(-1))
