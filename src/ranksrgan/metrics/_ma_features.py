"""The 138 features of Ma et al.'s NRQM (:mod:`ranksrgan.metrics.ma`), as the authors' ``feature_all.m``.

Each step of the authors' MATLAB code, reproduced here:

1. The image is 8-bit gray: ``rgb2gray`` of the uint8 RGB image (rounded), or for PIRM the
   rounded ``rgb2ycbcr`` Y. ``im1 = im2double(gray)`` in [0, 1]; ``im2``, ``im3``: filter with
   ``fspecial('gaussian', 3)`` (sigma 0.5, zero padding, ``imfilter``), keep every second sample
   starting at the second (``(2:2:end, 2:2:end)``), twice.
2. Local frequency, 18 features (6 per scale im1, im2, im3): ``blkproc(im, [3 3], [2 2], fun)``,
   i.e. 7×7 blocks at stride 3 over the zero-padded image, ``dct2`` per block; per block the shape
   of a generalised Gaussian fitted to the 48 AC coefficients (``gama_gen_gauss``: nearest entry of
   the ratio table over gamma = 0.03:0.001:10), the coefficient of variation of their magnitudes
   (``std/(mean + 1e-7)``) and the variance over three oriented frequency groups of that
   coefficient of variation (eps 1e-8); each pooled as [mean of lowest 10%, mean] (shape) or
   [mean of highest 10%, mean] (the other two) with MATLAB's ``ceil(0.1 n)`` / ``fix(0.9 n)`` index
   rules.
3. Global frequency, 45 features, on ``double(gray)`` in 0..255: 2-level, 6-orientation steerable
   pyramid (``buildSFpyr``); divisive normalisation of the 12 oriented bands by a Gaussian scale
   mixture over 3×3 spatial neighbours, the parent band (bicubic ``imresize(., 2)``; only for
   bands 2..6 of the pyramid, as the MATLAB test ``nband < Nband - Nor`` gives) and the 5 other
   orientations (``norm_sender_normalized``: ``C = Y'Y / n`` with negative eigenvalues removed,
   ``z = sqrt(y' pinv(C) y / N)`` with ``N = 9 + parent``, guard bands of 16 / 8 px); then 12 GGD
   shapes of the normalised bands, 6 shapes of the two scales of each orientation together, 12
   SSIM contrast-structure terms between each raw band (bicubic-resized) and the high-pass
   residual, and 15 between pairs of normalised first-scale orientations (``ssim_index_new``:
   11×11 Gaussian sigma 1.5, ``C2 = (0.03 * 255)^2``, 'valid').
4. Spatial, 75 features: the 25 singular values of ``im2col(im, [5 5], 'distinct')`` (zero
   padded) for im1, im2 and im3.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import gamma as _gamma_fn

from ranksrgan.metrics._steerable import build_sf_pyramid, max_height
from ranksrgan.ops import imresize, quantize_uint8, rgb_to_gray, rgb_to_y
from ranksrgan.ops.filters import gaussian_taps

__all__ = [
    "GROUP_SIZES",
    "GROUPS",
    "ma_features",
    "min_size_ok",
    "block_dct_features",
    "patch_svd_features",
    "gsm_features",
]

#: feature-vector length of each group: local frequency (DCT), global frequency (GSM), spatial (SVD)
GROUP_SIZES = {"dct": 18, "gsm": 45, "svd": 75}
#: the groups in the order of the model's forests
GROUPS = tuple(GROUP_SIZES)

_NUM_OR = 6
_NUM_SCALES = 2
_GUARDBAND = 16


# --------------------------------------------------------------------------------------------
# input handling


def _prepare_gray(x: torch.Tensor, color: str, crop_border: int, quantize: bool) -> torch.Tensor:
    """Validate ``(B,)C×H×W`` in [0, 1] and return the 8-bit-grid gray/Y image ``(B, H, W)`` float64."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Ma expects a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"Ma expects a float tensor in [0, 1], got {x.dtype}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"Ma expects (B, 3|1, H, W) or (3|1, H, W), got shape {tuple(x.shape)}")
    if color not in ("gray", "y"):
        raise ValueError(f"color must be 'gray' (MATLAB rgb2gray) or 'y' (MATLAB rgb2ycbcr Y), got {color!r}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if x.numel() == 0:
        raise ValueError(f"Ma got an empty tensor of shape {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("Ma input contains NaN or Inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"Ma expects [0,1] images, got values in [{lo:.4g}, {hi:.4g}]")
    if quantize:
        x = quantize_uint8(x)
    if x.shape[1] == 3:
        x = rgb_to_gray(x) if color == "gray" else rgb_to_y(x)
        if quantize:
            x = quantize_uint8(x)
    x = x[:, 0]
    if crop_border:
        h, w = x.shape[-2:]
        if min(h, w) <= 2 * crop_border:
            raise ValueError(f"image {h}x{w} too small for crop_border={crop_border}")
        x = x[:, crop_border:-crop_border, crop_border:-crop_border]
    _check_size(*x.shape[-2:])
    return x


def min_size_ok(h: int, w: int) -> bool:
    """Whether MATLAB's ``feature_all`` runs on an ``h × w`` image (see :func:`_check_size`)."""
    h3, w3 = (h // 2) // 2, (w // 2) // 2
    return (
        max_height(h, w) >= _NUM_SCALES
        and min(h, w) - 2 - 2 * _GUARDBAND >= 11  # normalised first-scale bands feed an 11×11 SSIM
        and math.ceil(h3 / 5) * math.ceil(w3 / 5) >= 25  # 25 singular values at the coarsest scale
    )


def _check_size(h: int, w: int) -> None:
    if not min_size_ok(h, w):
        raise ValueError(
            f"Ma needs images of at least 45x45 whose quarter-size version has >= 25 5x5 patches "
            f"(e.g. 84x84); got {h}x{w} (after any crop_border)"
        )


# --------------------------------------------------------------------------------------------
# shared statistics


@lru_cache(maxsize=4)
def _ggd_table(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """gamma = 0.03:0.001:10 and r(gamma) = G(1/g) G(3/g) / G(2/g)^2 (decreasing), float64."""
    g = 0.03 + 0.001 * np.arange(9971, dtype=np.float64)
    r = _gamma_fn(1.0 / g) * _gamma_fn(3.0 / g) / (_gamma_fn(2.0 / g) ** 2)
    return torch.from_numpy(g).to(device), torch.from_numpy(r).to(device)


def _ggd_shape(v: torch.Tensor) -> torch.Tensor:
    """``gama_gen_gauss`` over the last dim: nearest table gamma to var / (mean|v - mean|^2 + 1e-7).

    Ties go to the smaller gamma (MATLAB ``min`` returns the first index); NaN maps to 0.03.
    """
    g, r = _ggd_table(str(v.device))
    mean = v.mean(dim=-1, keepdim=True)
    var = v.var(dim=-1, correction=1)
    mean_abs = (v - mean).abs().mean(dim=-1) ** 2
    rho = var / (mean_abs + 1e-7)
    neg = -r  # increasing
    j = torch.searchsorted(neg, (-rho).contiguous(), right=False).clamp(1, r.numel() - 1)
    d_prev = (r[j - 1] - rho).abs()
    d_next = (r[j] - rho).abs()
    idx = torch.where(d_prev <= d_next, j - 1, j)
    idx = torch.where(torch.isnan(rho), torch.zeros_like(idx), idx)
    return g[idx]


def _coef_var(v: torch.Tensor, eps: float) -> torch.Tensor:
    """std(|v|) / (mean(|v|) + eps) over the last dim (unbiased std, as MATLAB ``std``)."""
    a = v.abs()
    return a.std(dim=-1, correction=1) / (a.mean(dim=-1) + eps)


def _pool_low(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[mean of the lowest ceil(0.1 n), mean of all] of ``v`` ``(B, n)``."""
    s, _ = torch.sort(v, dim=-1)
    n = s.shape[-1]
    return s[:, : math.ceil(n * 0.1)].mean(dim=-1), s.mean(dim=-1)


def _pool_high(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[mean of sorted(fix(0.9 n):end) (1-based), mean of all] of ``v`` ``(B, n)``."""
    s, _ = torch.sort(v, dim=-1)
    n = s.shape[-1]
    return s[:, max(math.floor(n * 0.9), 1) - 1 :].mean(dim=-1), s.mean(dim=-1)


# --------------------------------------------------------------------------------------------
# group 1: block DCT statistics


@lru_cache(maxsize=4)
def _dct_tables(device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Orthonormal 7-point DCT-II matrix, the AC mask and the three oriented-frequency masks."""
    n = 7
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    m = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * m + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    ac = torch.ones(n, n, dtype=torch.bool)
    ac[0, 0] = False
    o1 = torch.zeros(n, n, dtype=torch.bool)
    for row, start in ((0, 1), (1, 2), (2, 4), (3, 5)):
        o1[row, start:] = True
    o2 = torch.zeros(n, n, dtype=torch.bool)
    for row, (a, b) in ((1, (1, 2)), (2, (2, 4)), (3, (2, 5)), (4, (3, 7)), (5, (4, 7)), (6, (4, 7))):
        o2[row, a:b] = True
    o3 = o1.T.contiguous()
    return tuple(t.to(device) for t in (d, ac, o1, o2, o3))  # type: ignore[return-value]


def _block_dct_coeffs(im: torch.Tensor) -> torch.Tensor:
    """``blkproc(im, [3 3], [2 2], @dct2)`` blocks: ``(B, H, W)`` -> ``(B, L, 7, 7)`` DCT coefficients."""
    b, h, w = im.shape
    ph, pw = (-h) % 3, (-w) % 3
    padded = F.pad(im.unsqueeze(1), (2, 2 + pw, 2, 2 + ph))
    blocks = F.unfold(padded, kernel_size=7, stride=3)  # (B, 49, L), L = ceil(h/3) * ceil(w/3)
    blocks = blocks.transpose(1, 2).reshape(b, -1, 7, 7)
    d = _dct_tables(str(im.device))[0]
    return d @ blocks @ d.T


def block_dct_features(im: torch.Tensor) -> torch.Tensor:
    """MATLAB ``block_dct``: ``(B, H, W)`` in [0, 1] -> ``(B, 6)``.

    [p10 shape, mean shape, top-10% coeff. variation, mean coeff. variation, top-10% orientation
    variance, mean orientation variance].
    """
    _, ac, o1, o2, o3 = _dct_tables(str(im.device))
    c = _block_dct_coeffs(im)
    flat = c.flatten(-2)  # (B, L, 49)
    acv = flat[..., ac.flatten()]
    shape = _ggd_shape(acv)
    cv = _coef_var(acv, 1e-7)
    ori = torch.stack([_coef_var(flat[..., o.flatten()], 1e-8) for o in (o1, o2, o3)], dim=-1)
    ori_var = ori.var(dim=-1, correction=1)
    return torch.stack([*_pool_low(shape), *_pool_high(cv), *_pool_high(ori_var)], dim=-1)


# --------------------------------------------------------------------------------------------
# group 3: patch singular values, and the spatial pyramid


@lru_cache(maxsize=4)
def _gauss3(device: str) -> torch.Tensor:
    """1-D factor of ``fspecial('gaussian', 3)`` (sigma 0.5); the 2-D kernel is its outer product."""
    return torch.tensor(gaussian_taps(3, 0.5), dtype=torch.float64, device=device)


def _spatial_pyramid(im1: torch.Tensor) -> list[torch.Tensor]:
    """[im1, im2, im3]: ``imfilter`` with the 3×3 Gaussian (zero padding), then ``(2:2:end, 2:2:end)``."""
    out = [im1]
    g = _gauss3(str(im1.device))
    for _ in range(2):
        f = _filter_valid(F.pad(out[-1], (1, 1, 1, 1)), g)
        out.append(f[:, 1::2, 1::2])
    return out


def patch_svd_features(im: torch.Tensor) -> torch.Tensor:
    """``svd(im2col(im, [5 5], 'distinct'))``: ``(B, H, W)`` -> the 25 singular values ``(B, 25)``, descending."""
    h, w = im.shape[-2:]
    padded = F.pad(im.unsqueeze(1), (0, (-w) % 5, 0, (-h) % 5))
    cols = F.unfold(padded, kernel_size=5, stride=5)  # (B, 25, N)
    if cols.shape[-1] < 25:
        raise ValueError(f"image {h}x{w} gives {cols.shape[-1]} 5x5 patches; Ma needs >= 25 at every scale")
    return torch.linalg.svdvals(cols)


# --------------------------------------------------------------------------------------------
# group 2: GSM statistics of steerable-pyramid subbands


@lru_cache(maxsize=4)
def _ssim_window(device: str) -> torch.Tensor:
    """1-D factor of ``fspecial('gaussian', 11, 1.5)`` (the 2-D window is its outer product)."""
    return torch.tensor(gaussian_taps(11, 1.5), dtype=torch.float64, device=device)


def _filter_valid(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """2-D 'valid' correlation of ``(..., H, W)`` with the separable kernel ``outer(g, g)``.

    Written as shifted sums (much faster than float64 ``conv2d`` on CPU, same values to ~1e-16).
    """
    k = g.numel()
    taps = [float(v) for v in g]
    w = t.shape[-1] - k + 1
    acc = t[..., 0:w] * taps[0]
    for i in range(1, k):
        acc.add_(t[..., i : i + w], alpha=taps[i])
    h = t.shape[-2] - k + 1
    out = acc[..., 0:h, :] * taps[0]
    for i in range(1, k):
        out.add_(acc[..., i : i + h, :], alpha=taps[i])
    return out


def _local_stats(t: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed mean and variance (``filter2(w, t.^2) - mu.^2``) of ``(..., H, W)``, 'valid'."""
    mu = _filter_valid(t, g)
    return mu, _filter_valid(t * t, g) - mu * mu


def _ssim_cs(
    a: torch.Tensor, b: torch.Tensor, stats_a: tuple[torch.Tensor, torch.Tensor], stats_b: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """Mean contrast-structure term of ``ssim_index_new`` (its third output) over the last two dims.

    ``stats_a`` / ``stats_b`` are :func:`_local_stats` of ``a`` / ``b`` (broadcastable), so that
    each band's own statistics are filtered once however many pairs it is in.
    """
    g = _ssim_window(str(a.device))
    c2 = (0.03 * 255.0) ** 2
    (mu1, s11), (mu2, s22) = stats_a, stats_b
    s12 = _filter_valid(a * b, g) - mu1 * mu2
    return ((2 * s12 + c2) / (s11 + s22 + c2)).mean(dim=(-2, -1))


def _centre_crop(t: torch.Tensor, dy: int, dx: int, nv: int, nh: int) -> torch.Tensor:
    return t[..., 1 + dy : 1 + dy + nv, 1 + dx : 1 + dx + nh]


def _normalise_bands(bands: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``norm_sender_normalized(pyr, pind, 2, 6, 1, 1, 3, 3, 50)`` for a batch.

    Args:
        bands: per scale ``(B, 6, h_s, w_s)`` oriented bands.

    Returns:
        12 normalised subbands ``(B, h', w')`` (scale-major, guard bands removed, zero mean) and a
        ``(B,)`` bool tensor, True where the divisive normaliser vanished somewhere (the MATLAB code
        errors there; the caller turns those images into NaN).
    """
    batch = bands[0].shape[0]
    bad = torch.zeros(batch, dtype=torch.bool, device=bands[0].device)
    eps = torch.finfo(torch.float64).eps
    out = []
    for s in range(_NUM_SCALES):
        nv, nh = bands[s].shape[-2] - 2, bands[s].shape[-1] - 2
        for o in range(_NUM_OR):
            aux = bands[s][:, o]
            cols = [_centre_crop(aux, -dy, -dx, nv, nh) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            # MATLAB: prnt = parent & (nband < Nband - Nor) with nband = s*6 + o + 2, Nband = 13.
            has_parent = s * _NUM_OR + o + 2 < 13 - _NUM_OR
            if has_parent:
                up = imresize(bands[s + 1][:, o], scale=2.0)[..., : aux.shape[-2], : aux.shape[-1]]
                cols.append(_centre_crop(up, 0, 0, nv, nh))
            for k in range(_NUM_OR):
                if k != o:
                    cols.append(_centre_crop(bands[s][:, k], 0, 0, nv, nh))
            y = torch.stack(cols, dim=1).flatten(2)  # (B, ncols, nexp): one neighbourhood per column
            nexp = y.shape[-1]
            cov = y @ y.transpose(1, 2) / nexp
            lam, q = torch.linalg.eigh(cov)
            pos = lam * (lam > 0)
            pos_sum = pos.sum(dim=-1, keepdim=True)
            lam = pos * lam.sum(dim=-1, keepdim=True) / (pos_sum + (pos_sum == 0).to(lam.dtype))
            cov = q @ torch.diag_embed(lam) @ q.transpose(1, 2)
            pinv = torch.linalg.pinv(cov, rtol=cov.shape[-1] * eps)
            n_neigh = 9 + int(has_parent)  # MATLAB's N does not count the orientation neighbours
            z = torch.sqrt(((pinv @ y) * y).sum(dim=1) / n_neigh).view(batch, nv, nh)
            oc = _centre_crop(aux, 0, 0, nv, nh)
            oc = oc - oc.mean(dim=(-2, -1), keepdim=True)
            bad |= (z == 0).flatten(1).any(dim=1)
            g = oc / torch.where(z == 0, torch.ones_like(z), z)
            gb = _GUARDBAND // (2**s)
            g = g[:, gb:-gb, gb:-gb]
            out.append(g - g.mean(dim=(-2, -1), keepdim=True))
    return out, bad


def gsm_features(gray255: torch.Tensor) -> torch.Tensor:
    """MATLAB ``global_gsm``: ``(B, H, W)`` on the 0..255 scale -> ``(B, 45)``.

    Images whose divisive normaliser vanishes (e.g. constant images; MATLAB errors there) give NaN.
    """
    batch, h, w = gray255.shape
    hi0, bands, _ = build_sf_pyramid(gray255, _NUM_SCALES, _NUM_OR)
    sub, bad = _normalise_bands(bands)
    flat = [t.reshape(batch, -1) for t in sub]
    feats = [_ggd_shape(torch.stack(flat[:_NUM_OR], 1)), _ggd_shape(torch.stack(flat[_NUM_OR:], 1))]
    feats.append(torch.stack([_ggd_shape(torch.cat([flat[i], flat[i + _NUM_OR]], 1)) for i in range(_NUM_OR)], 1))
    win = _ssim_window(str(gray255.device))
    # structural correlation between scales: raw band (resized to full size) vs the high-pass residual
    raw = torch.cat([bands[0], imresize(bands[1], size=(h, w))], dim=1)  # (B, 12, H, W)
    hp = hi0.unsqueeze(1)
    feats.append(_ssim_cs(raw, hp, _local_stats(raw, win), _local_stats(hp, win)))
    # structural correlation between the normalised first-scale orientations
    first = torch.stack(sub[:_NUM_OR], dim=1)  # (B, 6, h', w')
    mu, var = _local_stats(first, win)
    pairs = [(a, b) for a in range(_NUM_OR) for b in range(a + 1, _NUM_OR)]  # MATLAB's i < j loop order
    ia, ib = [a for a, _ in pairs], [b for _, b in pairs]
    feats.append(_ssim_cs(first[:, ia], first[:, ib], (mu[:, ia], var[:, ia]), (mu[:, ib], var[:, ib])))
    out = torch.cat(feats, dim=1)
    return torch.where(bad.unsqueeze(1), torch.full_like(out, float("nan")), out)


# --------------------------------------------------------------------------------------------
# public feature API


def ma_features(x: torch.Tensor, color: str = "gray", crop_border: int = 0, quantize: bool = True) -> dict[str, torch.Tensor]:
    """The three NRQM feature groups of a batch, exactly as the authors' ``feature_all.m``.

    Args:
        x: ``(B, 3, H, W)`` RGB or ``(B, 1, H, W)`` gray/Y (or without the batch dim), float in
            [0, 1], CPU or GPU. All images of a batch share one size.
        color: ``"gray"`` (MATLAB ``rgb2gray``, the authors' convention) or ``"y"`` (MATLAB
            ``rgb2ycbcr`` luma, the PIRM convention); ignored for 1-channel input.
        crop_border: pixels shaved from every side after the colour conversion (PIRM: 4).
        quantize: round to the 8-bit grid before and after the colour conversion, as MATLAB does on
            a uint8 image (keep True to match published values).

    Returns:
        ``{"dct": (B, 18), "gsm": (B, 45), "svd": (B, 75)}`` float64 on ``x``'s device, in the
        MATLAB order (scale-major for "dct" and "svd"). "gsm" rows are NaN for images whose
        GSM normaliser vanishes (constant or near-constant images).

    Raises:
        ValueError: bad shape, NaN/Inf, values outside [0, 1], or an image too small (the size is
            named; at least 45×45 and 84×84 for square images).
    """
    gray = _prepare_gray(x, color, crop_border, quantize)
    ims = _spatial_pyramid(gray)
    dct = torch.cat([block_dct_features(im) for im in ims], dim=1)
    svd = torch.cat([patch_svd_features(im) for im in ims], dim=1)
    gray255 = torch.round(gray * 255.0) if quantize else gray * 255.0
    gsm = gsm_features(gray255)
    return {"dct": dct, "gsm": gsm, "svd": svd}
