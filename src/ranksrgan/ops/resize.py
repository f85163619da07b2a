"""MATLAB ``imresize`` (bicubic) in torch, and ``mod_crop``.

Every LR image in SR papers is ``imresize(HR, 1/scale, 'bicubic')`` from MATLAB. That function is
not torch's ``interpolate(mode="bicubic", antialias=True)`` nor kornia's ``resize``; both differ
from it by tens of dB of PSNR near edges. This module reproduces MATLAB's algorithm step by step:

* Keys cubic kernel with a = -0.5;
* when downscaling, the kernel is stretched by 1/scale (antialiasing) and scaled by ``scale``;
* output size ``ceil(in * scale)``; the sample position of output pixel ``x`` (1-based) is
  ``u = x / scale + 0.5 * (1 - 1 / scale)``;
* ``ceil(kernel_width) + 2`` taps starting at ``floor(u - kernel_width / 2)``, weights normalised
  to sum 1 per output pixel;
* out-of-range taps are mirrored symmetrically (index ``0`` -> ``1``, ``-1`` -> ``2``, ...);
* the dimension with the smaller scale is resized first (MATLAB sorts the scales; ties: rows).

Each output pixel is accumulated tap by tap (a multiply, then one fused multiply-add per further
tap). Taps whose source rows form an arithmetic progression (all taps of an integer downscale,
after symmetric padding) read strided views and share one scalar weight, the others gather rows
with per-pixel weights; both forms run the same arithmetic, so the result is bit-identical either
way (tested), and a 2x downscale of a 480×480 float64 image takes about 1 ms on one CPU core.

How it was verified: ``tests/test_resize.py`` checks it against an independent plain-loop numpy
transcription of the algorithm above (different code path: explicit per-pixel loops, no gathers),
against closed-form facts of the Keys kernel (constants and linear ramps are reproduced exactly in
the interior, the 2x upscale of a unit impulse gives the kernel samples -0.0703125, 0.2265625,
0.8671875 ...), and against MATLAB output sizes. Weights are always computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from ranksrgan.ops.scratch import ScratchArrays

__all__ = ["imresize", "mod_crop"]


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys cubic convolution kernel, a = -0.5 (MATLAB's ``cubic``)."""
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


@lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-pixel taps: ``(indices (out_len, P) int64, weights (out_len, P) float64)``.

    Indices are 0-based and NOT yet mirrored (they may lie outside ``[0, in_len)``); taps whose
    weight is zero for every output pixel are dropped, as MATLAB does.
    """
    kernel_width = 4.0
    stretch = antialias and scale < 1
    if stretch:
        kernel_width /= scale
    x = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    idx = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64).unsqueeze(0)  # 1-based
    dist = u.unsqueeze(1) - idx
    weights = scale * _cubic(dist * scale) if stretch else _cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    keep = (weights != 0).any(dim=0)
    return (idx.long() - 1)[:, keep].contiguous(), weights[:, keep].contiguous()


@dataclass(frozen=True)
class _Tap:
    """One kernel tap of a 1-D resize: which padded rows it reads and with what weight.

    ``rows`` is a ``slice`` when the rows form an arithmetic progression (a strided view, no
    copy), else an index tensor. ``weight`` is a float when every output pixel shares it, else an
    ``(out_len, 1)`` float64 column.
    """

    rows: slice | torch.Tensor
    weight: float | torch.Tensor


@lru_cache(maxsize=256)
def _resize_plan(in_len: int, out_len: int, scale: float, antialias: bool) -> tuple[torch.Tensor, int, tuple[_Tap, ...]]:
    """``(mirror, before, taps)``: ``mirror`` indexes the input rows to build the symmetrically
    padded input (MATLAB's mirroring: index ``0`` -> ``1``, ``-1`` -> ``2``, ... 1-based), whose
    rows ``before .. before + in_len - 1`` are the input itself; ``taps`` read that padded input.
    Downscaling by an integer factor uses strided views and shared weights only; other scales
    gather rows for some or all taps."""
    idx, weights = _contributions(in_len, out_len, scale, antialias)
    before = max(0, -int(idx.min()))
    padded = torch.arange(-before, max(in_len, int(idx.max()) + 1))
    period = 2 * in_len
    k = torch.remainder(padded, period)
    mirror = torch.where(k < in_len, k, period - 1 - k)
    idx = idx + before
    taps = []
    for col, w in zip(idx.unbind(1), weights.unbind(1)):
        step = int(col[1] - col[0]) if out_len > 1 else 1
        affine = step > 0 and torch.equal(col, col[0] + step * torch.arange(out_len))
        rows = slice(int(col[0]), int(col[-1]) + 1, step) if affine else col.contiguous()
        uniform = bool((w == w[0]).all())
        taps.append(_Tap(rows, float(w[0]) if uniform else w.unsqueeze(1).contiguous()))
    return mirror, before, tuple(taps)


def _resize_rows(
    x: torch.Tensor, out_len: int, scale: float, antialias: bool, scratch: ScratchArrays | None, name: str
) -> torch.Tensor:
    """Resize ``(..., in_len, W)`` along dim -2: ``out = sum_k w_k * x[rows_k]``, accumulated tap
    by tap with fused multiply-adds. The same arithmetic runs whichever form a tap takes (strided
    view or gathered rows; shared scalar or per-pixel weight), so results never depend on it."""
    in_len = x.shape[-2]
    mirror, before, taps = _resize_plan(in_len, out_len, float(scale), antialias)
    alloc = scratch.get if scratch is not None else _empty
    # Symmetrically padded input: x itself in the middle, mirrored rows before and after.
    xp = alloc(f"{name}/padded", (*x.shape[:-2], len(mirror), x.shape[-1]), x.dtype, x.device)
    xp[..., before : before + in_len, :] = x
    for part in (slice(0, before), slice(before + in_len, len(mirror))):
        if part.stop > part.start:
            xp[..., part, :] = x.index_select(-2, mirror[part].to(x.device))
    out = alloc(f"{name}/out", (*x.shape[:-2], out_len, x.shape[-1]), x.dtype, x.device)
    for k, tap in enumerate(taps):
        rows = xp[..., tap.rows, :] if isinstance(tap.rows, slice) else xp.index_select(-2, tap.rows.to(x.device))
        if isinstance(tap.weight, float):
            weight = tap.weight if x.dtype == torch.float64 else _rounded(tap.weight, x.dtype)
            torch.mul(rows, weight, out=out) if k == 0 else out.add_(rows, alpha=weight)
        else:
            weight = tap.weight.to(device=x.device, dtype=x.dtype)
            torch.mul(rows, weight, out=out) if k == 0 else out.addcmul_(rows, weight)
    return out


@lru_cache(maxsize=1024)
def _rounded(weight: float, dtype: torch.dtype) -> float:
    """``weight`` as a tensor of ``dtype`` holds it (what the per-pixel weight columns hold)."""
    return float(torch.tensor(weight, dtype=torch.float64).to(dtype))


def _empty(name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device=device)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
    *,
    scratch: ScratchArrays | None = None,
) -> torch.Tensor:
    """MATLAB ``imresize(x, scale, 'bicubic')`` on float tensors.

    Args:
        x: ``(H, W)``, ``(C, H, W)`` or ``(B, C, H, W)`` float tensor, any range, CPU or GPU.
            float64 gives MATLAB parity to ~1e-12; float32 to ~1e-6.
        scale: one factor for both axes (e.g. 0.25 for x4 downscaling). Output size is
            ``ceil(H * scale), ceil(W * scale)`` as in MATLAB.
        size: ``(out_h, out_w)`` instead of ``scale``; the per-axis scale is then ``out / in``.
        antialias: stretch the kernel when downscaling (MATLAB's default ``true``).
        scratch: for kernels called again and again: take the temporaries AND the result from
            these arrays (:class:`ranksrgan.ops.scratch.ScratchArrays`, names ``"imresize/..."``);
            the result is then only valid until the next call with the same ``scratch``.

    Returns:
        the resized tensor, same leading dims and dtype. Values are not clamped or rounded:
        round with :func:`ranksrgan.ops.quantize_uint8` where MATLAB would return uint8.

    >>> x = torch.rand(2, 3, 16, 12, dtype=torch.float64)
    >>> imresize(x, 1 / 4).shape, imresize(x, size=(5, 7)).shape
    (torch.Size([2, 3, 4, 3]), torch.Size([2, 3, 5, 7]))
    >>> imresize(torch.ones(1, 8, 8), 0.5)  # a constant stays constant
    tensor([[[1., 1., 1., 1.],
             [1., 1., 1., 1.],
             [1., 1., 1., 1.],
             [1., 1., 1., 1.]]])
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"imresize expects a float tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"imresize expects (..., H, W), got shape {tuple(x.shape)}")
    if (scale is None) == (size is None):
        raise ValueError("imresize: give exactly one of scale or size")
    in_h, in_w = x.shape[-2], x.shape[-1]
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"imresize: scale must be positive, got {scale}")
        sh = sw = float(scale)
        out_h, out_w = math.ceil(in_h * sh - 1e-9), math.ceil(in_w * sw - 1e-9)
    else:
        out_h, out_w = int(size[0]), int(size[1])
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"imresize: size must be positive, got {size}")
        sh, sw = out_h / in_h, out_w / in_w
    # MATLAB resizes along the dimension with the smaller scale first (stable sort: rows on ties).
    steps = [(-2, out_h, sh), (-1, out_w, sw)]
    if sw < sh:
        steps.reverse()
    for dim, out_len, s in steps:
        if out_len == x.shape[dim] and s == 1.0:
            continue
        if dim == -1:
            x = _resize_rows(x.transpose(-1, -2), out_len, s, antialias, scratch, "imresize/cols").transpose(-1, -2)
        else:
            x = _resize_rows(x, out_len, s, antialias, scratch, "imresize/rows")
    if x.is_contiguous():
        return x
    if scratch is None:
        return x.contiguous()
    return scratch.get("imresize/result", tuple(x.shape), x.dtype, x.device).copy_(x)


def mod_crop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``(..., H, W)`` at the bottom/right so that H and W are multiples of ``scale``."""
    h, w = x.shape[-2], x.shape[-1]
    return x[..., : h - h % scale, : w - w % scale]
