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
from ranksrgan.metrics._niqe_features import gamma_table, image_features, luminance_255, release_work_buffers
from ranksrgan.ops.filters import gaussian_taps

__all__ = ["niqe", "DEFAULT_PARAMS", "release_work_buffers"]

#: The LIVE pristine model (mu 1×36, cov 36×36, 7×7 Gaussian window), shipped with the package.
DEFAULT_PARAMS = Path(__file__).resolve().parent / "data" / "niqe_pris_params.npz"

_RANGE_TOL = 1e-6  # inputs must lie in [0, 1] up to float rounding
_COLORS = ("y", "gray")
# Working-set bound: images are grouped (pixels); see _niqe_features for the others.
_GROUP_PIXELS = 1 << 20


# ----------------------------------------------------------------------------- pristine model


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


# ----------------------------------------------------------------------------- input and pooling


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
    table = gamma_table(device)

    # Shave the border, then keep whole blocks from the top-left (computequality's crop); the
    # colour conversion is per pixel, so cropping first only saves work.
    h, w = x.shape[-2] - 2 * crop_border, x.shape[-1] - 2 * crop_border
    x = x[..., crop_border : crop_border + h - h % block_size, crop_border : crop_border + w - w % block_size]
    im = luminance_255(x, color)

    # Images are processed in groups of about _GROUP_PIXELS so that temporaries stay small.
    group = max(1, _GROUP_PIXELS // (im.shape[-2] * im.shape[-1]))
    feats = [image_features(im[i : i + group], block_size, list(taps), table) for i in range(0, len(im), group)]
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
