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

Speed on the CPU comes from memory, not arithmetic: the Gaussian filter runs in strips of rows
that stay in cache, the block statistics are reductions over contiguous per-block arrays (sign
counts from float32 maps of -1/0/1), and the image-sized scratch arrays are kept between calls
(:mod:`ranksrgan.ops.scratch`; at most 256 MiB per thread, freed by
:func:`release_work_buffers`), because first-touch page faults on fresh arrays cost as much as
the whole computation. Strip and chunk sizes and buffer reuse change no bit of the result
(tested): each value goes through the same operations in the same order whatever the split.
``benchmarks/bench_niqe.py`` measures the speed.

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

from ranksrgan._lazy import lazy_attributes
from ranksrgan.ops.color import GRAY_COEFFS, Y_COEFFS, Y_OFFSET
from ranksrgan.ops.filters import gaussian_taps
from ranksrgan.ops.resize import imresize
from ranksrgan.ops.scratch import ScratchArrays

__all__ = ["niqe", "DEFAULT_PARAMS", "release_work_buffers"]

#: The LIVE pristine model (mu 1×36, cov 36×36, 7×7 Gaussian window), shipped with the package.
DEFAULT_PARAMS = Path(__file__).resolve().parent / "data" / "niqe_pris_params.npz"

_RANGE_TOL = 1e-6  # inputs must lie in [0, 1] up to float rounding
# circshift offsets (rows, cols) of the four neighbour products, in LIVE feature order
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
_COLORS = ("y", "gray")
# Working-set bounds: images are grouped (pixels), block features chunked (pixels) and the
# Gaussian filter run in strips of rows (elements of the stacked [im; im .* im]).
_GROUP_PIXELS = 1 << 20
_CHUNK_PIXELS = 1 << 18
_STRIP_ELEMENTS_PER_THREAD = 1 << 16


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
    """MATLAB ``fspecial('gaussian', 7, 7/6)`` of ``computequality``, as 1-D taps (:func:`gaussian_taps`)."""
    return np.array(gaussian_taps(size, sigma))


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


# ----------------------------------------------------------------------------- scratch arrays

# Image-sized CPU temporaries are kept between calls (see ranksrgan.ops.scratch for why).
_WORK = ScratchArrays(max_bytes=256 << 20)


def release_work_buffers() -> None:
    """Free the CPU scratch arrays that :func:`niqe` keeps between calls (this thread's)."""
    _WORK.clear()


# ----------------------------------------------------------------------------- building blocks


def _fill_replicate(x: torch.Tensor, before: int, after: int, dim: int) -> None:
    """Overwrite the first ``before`` and last ``after`` slices of ``x`` along ``dim`` with copies
    of the slices next to them (MATLAB 'replicate' padding, in place)."""
    n = x.shape[dim]
    if before:
        x.narrow(dim, 0, before).copy_(x.narrow(dim, before, 1).expand_as(x.narrow(dim, 0, before)))
    if after:
        x.narrow(dim, n - after, after).copy_(x.narrow(dim, n - after - 1, 1).expand_as(x.narrow(dim, n - after, after)))


def _mscn(im: torch.Tensor, taps: list[float], tag: str) -> torch.Tensor:
    """MSCN coefficients of ``(B, H, W)`` 0..255 images: ``(im - mu) / (sigma + 1)`` with
    ``mu = filter(im)`` and ``sigma = sqrt(abs(filter(im .* im) - mu .* mu))``.

    ``filter`` is MATLAB ``imfilter(x, taps' * taps, 'replicate')``: a pass down the columns,
    then along the rows, each a sum of shifted slices accumulated tap by tap (multiply, then one
    fused multiply-add per further tap). The result does not depend on how the rows are split.
    Work is done in strips of rows (``_STRIP_ELEMENTS_PER_THREAD`` per thread) that stay in cache.
    Returns a work buffer named ``tag`` (valid until the next call with that tag).
    """
    b, h, w = im.shape
    k = len(taps)
    p, q = k // 2, k - 1 - k // 2  # padding before / after
    dev, dt = im.device, im.dtype
    rows = _WORK.get(f"{tag}/rows", (2 * b, h + p + q, w), dt, dev)  # [im; im .* im], row-padded
    rows[:b, p : p + h] = im
    torch.mul(im, im, out=rows[b:, p : p + h])
    _fill_replicate(rows, p, q, dim=1)
    out = _WORK.get(tag, (b, h, w), dt, dev)
    strip = max(8, _STRIP_ELEMENTS_PER_THREAD * torch.get_num_threads() // (2 * b * w))
    cols = _WORK.get(f"{tag}/cols", (2 * b, min(strip, h), w + p + q), dt, dev)
    filt = _WORK.get(f"{tag}/filt", (2 * b, min(strip, h), w), dt, dev)
    for r0 in range(0, h, strip):
        n = min(strip, h - r0)
        c, f = cols.narrow(1, 0, n), filt.narrow(1, 0, n)
        inner = c.narrow(2, p, w)
        torch.mul(rows.narrow(1, r0, n), taps[0], out=inner)
        for i in range(1, k):
            inner.add_(rows.narrow(1, r0 + i, n), alpha=taps[i])
        _fill_replicate(c, p, q, dim=2)
        torch.mul(c.narrow(2, 0, w), taps[0], out=f)
        for i in range(1, k):
            f.add_(c.narrow(2, i, w), alpha=taps[i])
        mu, sigma = f[:b], f[b:]
        sigma.addcmul_(mu, mu, value=-1.0).abs_().sqrt_().add_(1.0)
        dst = out.narrow(1, r0, n)
        torch.sub(im.narrow(1, r0, n), mu, out=dst)
        dst.div_(sigma)
    return out


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


def _aggd_features(
    stats: torch.Tensor, counts: torch.Tensor, n: torch.Tensor, table: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    """LIVE ``estimateaggdparam`` from per-vector sums: ``(alpha, beta_l, beta_r, mean)``.

    MATLAB: ``leftstd = sqrt(mean(v(v<0).^2))``, ``rightstd`` likewise for ``v > 0``,
    ``rhat = mean(abs(v))^2 / mean(v.^2)``, normalised by the asymmetry ``leftstd / rightstd``;
    an empty side gives NaN (``mean([])``), as does an all-zero vector.

    Args:
        stats: ``(4, ...)`` float64: ``||min(v, 0)||``, ``||max(v, 0)||``, ``sum(min(v, 0))``,
            ``sum(max(v, 0))`` (the two sides' squares are summed separately, never as a
            difference of totals, so a side of tiny values keeps its precision).
        counts: ``(2, ...)`` float32 from the -1/0/1 map ``sign(v)``: its sum (#positive -
            #negative) and its 2-norm (sqrt of #positive + #negative; rounded back here).
        n: number of samples per vector, broadcastable to ``stats[0]``.
    """
    gam, r_gam, beta_factor, mean_factor = table
    sq_left, sq_right = stats[0] ** 2, stats[1] ** 2
    sum_left, sum_right = stats[2], stats[3]
    balance = counts[0].to(stats.dtype)
    nonzero = (counts[1].to(stats.dtype) ** 2).round_()
    left_std = (sq_left / ((nonzero - balance) / 2)).sqrt()
    right_std = (sq_right / ((nonzero + balance) / 2)).sqrt()
    gammahat = left_std / right_std
    rhat = ((sum_right - sum_left) / n) ** 2 / ((sq_left + sq_right) / n)
    rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    idx = _nearest_gamma_index(rhatnorm, r_gam)
    factor = beta_factor[idx]
    beta_l, beta_r = left_std * factor, right_std * factor
    return gam[idx], beta_l, beta_r, (beta_r - beta_l) * mean_factor[idx]


def _block_maps(rows: torch.Tensor, bs: int, tag: str) -> torch.Tensor:
    """``(R, bs, W)`` rows of blocks -> ``(R, nbw, 5, bs * bs)``: per block the block itself and its
    products with the four ``circshift``-ed copies (MATLAB ``circshift`` inside the block).

    Each block is first copied into a frame one pixel larger (top, left and right) holding the
    wrapped-around row and columns, so every shifted copy is a plain slice of the frame.
    Returns a work buffer named ``tag``.
    """
    r, _, w = rows.shape
    nbw = w // bs
    frame = _WORK.get(f"{tag}/frame", (r, nbw, bs + 1, bs + 2), rows.dtype, rows.device)
    frame[:, :, 1:, 1:-1] = rows.view(r, bs, nbw, bs).permute(0, 2, 1, 3)
    frame[:, :, 0, 1:-1] = frame[:, :, -1, 1:-1]  # row -1 = last row
    frame[:, :, :, 0] = frame[:, :, :, -2]  # column -1 = last column
    frame[:, :, :, -1] = frame[:, :, :, 1]  # column bs = first column
    block = frame[:, :, 1:, 1:-1]
    maps = _WORK.get(tag, (r, nbw, 1 + len(_SHIFTS), bs, bs), rows.dtype, rows.device)
    maps[:, :, 0] = block
    for k, (dr, dc) in enumerate(_SHIFTS, start=1):  # shifted[i, j] = block[i - dr, j - dc]
        torch.mul(block, frame[:, :, 1 - dr : 1 - dr + bs, 1 - dc : 1 - dc + bs], out=maps[:, :, k])
    return maps.view(r, nbw, 1 + len(_SHIFTS), bs * bs)


def _block_stats(mscn: torch.Tensor, bs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums behind the 18 LIVE ``computefeature`` features of every ``bs``×``bs`` block.

    ``(B, H, W)`` MSCN -> ``(stats (4, B, nblocks, 5) float64, counts (2, B, nblocks, 5) float32)``
    as :func:`_aggd_features` takes them, for the 5 maps of each block (the coefficients, then
    their products with the four ``circshift``-ed neighbours). Blocks are ordered row-major.

    Rows of blocks are processed in chunks of about ``_CHUNK_PIXELS``. The signs of the pair
    products are the products of the signs. That is exact: the MSCN values of a 0..255 image and
    of its half-scale version are either 0 or above ~1e-40, far above the square root of the
    smallest double, so no product underflows to a zero of the wrong class. Integers below 2**24
    are exact in float32, and so are sums of -1/0/1 and their squares.
    """
    b, h, w = mscn.shape
    rows = mscn.reshape(b * (h // bs), bs, w)  # one row of blocks each
    nrows, nbw, nmaps = rows.shape[0], w // bs, 1 + len(_SHIFTS)
    step = max(1, _CHUNK_PIXELS // (bs * w))
    signs_all = _WORK.get("signs", tuple(rows.shape), torch.float32, rows.device)
    signs_all.copy_(torch.sign(rows, out=_WORK.get("signs_tmp", tuple(rows.shape), rows.dtype, rows.device)))
    stats = rows.new_empty((4, nrows, nbw, nmaps))
    counts = signs_all.new_empty((2, nrows, nbw, nmaps))
    for start in range(0, nrows, step):
        end = min(start + step, nrows)
        values = _block_maps(rows[start:end], bs, "value_maps")  # (rows, nbw, 5, bs * bs)
        signs = _block_maps(signs_all[start:end], bs, "sign_maps")
        side = _WORK.get("side", tuple(values.shape), values.dtype, values.device)
        for k, bound in enumerate(({"max": 0.0}, {"min": 0.0})):
            torch.clamp(values, **bound, out=side)
            torch.linalg.vector_norm(side, 2, dim=-1, out=stats[k, start:end])
            torch.sum(side, dim=-1, out=stats[2 + k, start:end])
        torch.sum(signs, dim=-1, out=counts[0, start:end])
        torch.linalg.vector_norm(signs, 2, dim=-1, out=counts[1, start:end])
    nblocks = (h // bs) * nbw
    return stats.view(4, b, nblocks, nmaps), counts.view(2, b, nblocks, nmaps)


def _image_features(im: torch.Tensor, block_size: int, taps: list[float], table: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``(B, H, W)`` 0..255 images, H and W multiples of ``block_size`` -> ``(B, nblocks, 36)``:
    18 features at full scale, then 18 of the same blocks at half scale.

    Per scale and block: AGGD shape and mean scale ``(beta_l + beta_r) / 2`` of the MSCN
    coefficients, then for each of the four neighbour products its shape, mean, ``beta_l`` and
    ``beta_r`` (LIVE order). Both scales go through one :func:`_aggd_features` call.
    """
    full = _block_stats(_mscn(im, taps, "mscn_full"), block_size)
    half_im = imresize(im, 0.5, scratch=_WORK)
    half = _block_stats(_mscn(half_im, taps, "mscn_half"), block_size // 2)
    stats = torch.stack([full[0], half[0]], dim=-2)  # (4, B, nblocks, 2 scales, 5 maps)
    counts = torch.stack([full[1], half[1]], dim=-2)
    n = torch.tensor([[block_size**2], [(block_size // 2) ** 2]], dtype=stats.dtype, device=stats.device)
    alpha, beta_l, beta_r, mean = _aggd_features(stats, counts, n, table)  # each (B, nblocks, 2, 5)
    first = torch.stack([alpha[..., 0], (beta_l[..., 0] + beta_r[..., 0]) / 2], dim=-1)
    pairs = torch.stack([alpha[..., 1:], mean[..., 1:], beta_l[..., 1:], beta_r[..., 1:]], dim=-1)
    feats = torch.cat([first, pairs.flatten(-2)], dim=-1)  # (B, nblocks, 2, 18)
    return feats.flatten(-2)


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
    """``(B, C, H, W)`` in [0, 1] -> 8-bit-rounded luminance ``(B, H, W)`` on 0..255, float64.

    Bit for bit ``quantize_uint8(rgb_to_y(x)) * 255`` (or ``rgb_to_gray``), computed in place:
    the same operations in the same order (``k / 255 * 255 == k`` exactly for k = 0..255).
    """
    x = x.to(torch.float64)
    b, c, h, w = x.shape
    out = _WORK.get("luminance", (b, h, w), x.dtype, x.device)
    if c == 3:
        coeffs = Y_COEFFS if color == "y" else GRAY_COEFFS
        tmp = _WORK.get("luminance_tmp", (b, h, w), x.dtype, x.device)
        torch.mul(x[:, 0], coeffs[0], out=out)
        torch.mul(x[:, 1], coeffs[1], out=tmp)
        out.add_(tmp)
        torch.mul(x[:, 2], coeffs[2], out=tmp)
        out.add_(tmp)
        if color == "y":
            out.add_(Y_OFFSET).div_(255.0)
    else:
        out.copy_(x[:, 0])
    return out.clamp_(0.0, 1.0).mul_(255.0).add_(0.5).floor_()


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

    On the CPU the function keeps its scratch arrays between calls, per thread: about 41 MiB
    after a 512×512 image, 141 MiB after 1920×1080, never more than 256 MiB
    (:func:`release_work_buffers` frees them).

    Raises:
        ValueError: wrong shape, color or sizes; NaN/Inf input; values outside [0, 1]
            (e.g. a 0-255 image); fewer than two blocks after cropping.

    Example: in the ``PIRM`` convention (:mod:`ranksrgan.metrics.registry`) at x4, i.e.
    ``color="y", crop_border=4``; white noise is far from natural:

    >>> x = torch.rand(2, 3, 104, 200, generator=torch.Generator().manual_seed(0))
    >>> scores = niqe(x, color="y", crop_border=4)
    >>> scores.shape, scores.dtype, bool((scores > 10).all())
    (torch.Size([2]), torch.float64, True)
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
    pooled = torch.where(valid[:, None, None], pooled, eye)  # keep the eigensolver away from NaN
    diff = torch.where(valid[:, None], mu_p - mu_d, 0.0).unsqueeze(1)  # (B, 1, 36)
    # MATLAB pinv: singular values below max(size) * eps * the largest are dropped; the pooled
    # covariance is symmetric, so its eigenvalues' magnitudes are those singular values.
    quad = (diff @ torch.linalg.pinv(pooled, hermitian=True) @ diff.transpose(1, 2)).reshape(-1)
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


# The torchmetrics class NIQE lives in :mod:`ranksrgan.metrics.classes` (torchmetrics costs seconds
# to import); still importable from here, loaded on first use.
__getattr__, __dir__ = lazy_attributes(__name__, dict.fromkeys(("NIQE",), "ranksrgan.metrics.classes"))
