"""The natural-scene-statistics features of NIQE (:mod:`ranksrgan.metrics.niqe`, steps 1, 4 and 5):
8-bit luminance, MSCN coefficients at two scales and the 36 AGGD features of every block, with the
scratch arrays that keep them fast on the CPU (``niqe``'s module docstring says why).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ranksrgan.ops.color import GRAY_COEFFS, Y_COEFFS, Y_OFFSET
from ranksrgan.ops.resize import imresize
from ranksrgan.ops.scratch import ScratchArrays

__all__ = ["gamma_table", "nearest_gamma_index", "luminance_255", "image_features", "release_work_buffers"]

# circshift offsets (rows, cols) of the four neighbour products, in LIVE feature order
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
# Working-set bounds: block features chunked (pixels) and the Gaussian filter run in strips of
# rows (elements of the stacked [im; im .* im]).
_CHUNK_PIXELS = 1 << 18
_STRIP_ELEMENTS_PER_THREAD = 1 << 16


# ----------------------------------------------------------------------------- AGGD shape table


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


def gamma_table(device: torch.device) -> tuple[torch.Tensor, ...]:
    if device not in _TABLE_CACHE:
        _TABLE_CACHE[device] = tuple(torch.from_numpy(a).to(device) for a in _gamma_table_np())
    return _TABLE_CACHE[device]


# ----------------------------------------------------------------------------- scratch arrays

# Image-sized CPU temporaries are kept between calls (see ranksrgan.ops.scratch for why).
_WORK = ScratchArrays(max_bytes=256 << 20)


def release_work_buffers() -> None:
    """Free the CPU scratch arrays that :func:`ranksrgan.metrics.niqe.niqe` keeps between calls (this thread's)."""
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


def nearest_gamma_index(rhat: torch.Tensor, r_gam: torch.Tensor) -> torch.Tensor:
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
    idx = nearest_gamma_index(rhatnorm, r_gam)
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


def image_features(im: torch.Tensor, block_size: int, taps: list[float], table: tuple[torch.Tensor, ...]) -> torch.Tensor:
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


def luminance_255(x: torch.Tensor, color: str) -> torch.Tensor:
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
