"""Tiled super-resolution inference with memory bounded by the tile size.

How a large image is processed (:func:`upscale`):

1. The LR image is cut into a grid of non-overlapping *core* tiles of ``tile × tile`` LR pixels
   (the last row/column of cores may be smaller).
2. Each core is run through the generator inside a *window* that adds up to ``overlap`` LR pixels
   of real image context on every side (neighbouring windows therefore share ``2 * overlap`` LR
   pixels). All windows have the same size, ``tile + 2 * overlap`` along every axis that is cut
   (an axis no longer than that is not cut at all): at the image border the window is shifted
   inwards instead of shrunk, so the network sees one input shape throughout (good for cuDNN
   autotuning and exported graphs).
3. From each SR window only the SR pixels of its core are kept (the context margin, at least
   ``overlap * scale`` SR pixels on each interior side, is cropped) and copied into a
   preallocated output. Cores tile the image exactly, so no pixel is blended or written twice.

Why cropping rather than feathering: an SR pixel depends only on the LR pixels within the
generator's receptive-field radius ``r`` (in LR pixels). When ``overlap >= r`` every kept SR
pixel sees exactly the input it would see in one whole-image pass (zero padding happens at the
true image border in both cases), so the tiled result EQUALS the untiled one up to float
rounding (< 1e-5 in the tests), with no seam at all. Feathering would instead average two
different approximations. With ``overlap < r`` the pixels next to a core edge lose some far
context; how much that changes them depends on the trained weights and is not bounded here:
compare with ``tile=None`` on a crop, or use ``overlap >= r``.

Receptive-field radius in LR pixels (measured with :func:`receptive_field_radius`):

* SRResNet (x2, x3 and x4) with ``B`` residual blocks: ``2 * B + 4``, i.e. 36 for the standard
  16 blocks. The CLI default ``--tile-overlap 16`` is therefore NOT guaranteed exact for it;
  use ``overlap >= 36`` for a result equal to whole-image inference.
* RRDBNet x4 with ``B`` RRDBs: ``15 * B + 4`` (349 for ESRGAN's 23 blocks); x2 doubles that.
  Tiles for ESRGAN are never exact at usual overlaps.

:func:`receptive_field_radius` measures ``r`` for any generator with autograd.

Memory: one window at a time lives on the device (activations scale with ``(tile + 2 *
overlap)²``); the assembled output (``B × 3 × sH × sW`` float32) lives on the CPU.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["infer_scale", "input_multiple", "tile_windows", "upscale", "receptive_field_radius"]


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def input_multiple(model: nn.Module) -> int:
    """LR side lengths the generator needs to be divisible by (``RRDBNet`` at x2/x1 pixel-unshuffles
    its input by ``4 // scale``; every other generator here takes any size)."""
    return int(getattr(model, "unshuffle", 1) or 1)


@torch.no_grad()
def infer_scale(model: nn.Module) -> int:
    """The integer upscaling factor of a generator.

    Uses the ``scale`` attribute when present (``SRResNet``, ``RRDBNet``); otherwise runs an
    ``1×C×8×8`` zero input and reads the factor off the output size.

    Raises:
        ValueError: the output is not an integer multiple of the input size in both directions.
    """
    scale = getattr(model, "scale", None)
    if isinstance(scale, int) and not isinstance(scale, bool) and scale >= 1:
        return scale
    in_ch = int(getattr(model, "in_channels", 3))
    side = 8 * input_multiple(model)
    out = model(torch.zeros(1, in_ch, side, side, device=_model_device(model)))
    oh, ow = out.shape[-2:]
    if oh % side or ow % side or oh != ow:
        raise ValueError(f"cannot infer the scale: a {side}x{side} input gave a {oh}x{ow} output")
    return oh // side


def _axis_windows(n: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int, int, int]]:
    """Along one axis of length ``n``: ``(core_start, core_end, window_start, window_end)`` list."""
    if tile + 2 * overlap >= n:  # one window spans the axis: no need to cut it
        return [(0, n, 0, n)]
    size = tile + 2 * overlap
    size -= size % multiple
    out = []
    for c0 in range(0, n, tile):
        c1 = min(c0 + tile, n)
        w0 = min(max(c0 - overlap, 0), n - size)
        w0 -= w0 % multiple
        out.append((c0, c1, w0, w0 + size))
    return out


def tile_windows(h: int, w: int, tile: int | None, overlap: int, multiple: int = 1) -> list[tuple[slice, slice, slice, slice]]:
    """The tiling plan of an ``h × w`` LR image (see the module docstring).

    Returns a list of ``(core_rows, core_cols, window_rows, window_cols)`` slices in LR pixels.
    Cores partition the image; each window contains its core plus up to ``overlap`` pixels of
    context per side (more where the window was shifted inwards at the border). ``tile=None``
    gives one window covering the image.

    Raises:
        ValueError: ``tile < 1``, ``overlap < 0``, or ``tile``/``overlap`` not multiples of ``multiple``.
    """
    if tile is None:
        return [(slice(0, h), slice(0, w), slice(0, h), slice(0, w))]
    if tile < 1:
        raise ValueError(f"tile must be >= 1 LR pixels, got {tile}")
    if overlap < 0:
        raise ValueError(f"tile overlap must be >= 0, got {overlap}")
    if tile % multiple or overlap % multiple:
        raise ValueError(f"this generator needs tile and overlap to be multiples of {multiple}, got {tile} and {overlap}")
    rows = _axis_windows(h, tile, overlap, multiple)
    cols = _axis_windows(w, tile, overlap, multiple)
    return [
        (slice(r0, r1), slice(c0, c1), slice(wr0, wr1), slice(wc0, wc1))
        for (r0, r1, wr0, wr1) in rows
        for (c0, c1, wc0, wc1) in cols
    ]


@torch.inference_mode()
def upscale(
    model: nn.Module,
    lr: torch.Tensor,
    tile: int | None = None,
    overlap: int = 16,
    scale: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Super-resolve ``lr`` with ``model``, optionally tile by tile (see the module docstring).

    Args:
        model: generator in eval mode, mapping ``B×3×h×w`` in [0, 1] to ``B×3×(s·h)×(s·w)``.
            It runs on the device its parameters are on; each window is moved there.
        lr: ``3×h×w`` or ``B×3×h×w`` float tensor in [0, 1], on any device.
        tile: core tile side in LR pixels; ``None`` = one pass. An axis no longer than
            ``tile + 2 * overlap`` is not cut.
        overlap: LR pixels of context added around each core and cropped from its SR output.
            Tiled output equals the untiled output (float rounding aside) when ``overlap`` is at
            least the generator's receptive-field radius (:func:`receptive_field_radius`).
        scale: the generator's factor; inferred with :func:`infer_scale` when ``None``.
        progress: show a tqdm bar over tiles (stderr, only when it is a terminal).

    Returns:
        float32 CPU tensor ``(B,)3×(s·h)×(s·w)`` (same batch-ness as ``lr``), clamped to [0, 1].

    Raises:
        ValueError: bad shapes, tile or overlap; or the generator returned an unexpected size.
    """
    unbatched = lr.dim() == 3
    if unbatched:
        lr = lr.unsqueeze(0)
    if lr.dim() != 4 or not torch.is_floating_point(lr):
        raise ValueError(f"upscale: expected a float B×C×h×w or C×h×w tensor, got {lr.dtype} {tuple(lr.shape)}")
    s = infer_scale(model) if scale is None else scale
    device = _model_device(model)
    b, c, h, w = lr.shape
    plan = tile_windows(h, w, tile, overlap, input_multiple(model))
    out: torch.Tensor | None = None
    bar = None
    if progress and len(plan) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), desc="tiles", unit="tile", leave=False, disable=None)
    try:
        for rows, cols, wrows, wcols in plan:
            window = lr[:, :, wrows, wcols].to(device=device, dtype=torch.float32)
            sr = model(window)
            wh, ww = wrows.stop - wrows.start, wcols.stop - wcols.start
            if sr.dim() != 4 or sr.shape[-2:] != (s * wh, s * ww):
                raise ValueError(
                    f"upscale: generator (scale {s}) returned {tuple(sr.shape)} for a {wh}x{ww} input; expected {s * wh}x{s * ww}"
                )
            if out is None:
                out = torch.empty(b, sr.shape[1], s * h, s * w, dtype=torch.float32)
            r0, c0 = (rows.start - wrows.start) * s, (cols.start - wcols.start) * s
            core = sr[:, :, r0 : r0 + (rows.stop - rows.start) * s, c0 : c0 + (cols.stop - cols.start) * s]
            out[:, :, rows.start * s : rows.stop * s, cols.start * s : cols.stop * s] = core.clamp(0, 1).float().cpu()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    assert out is not None
    return out[0] if unbatched else out


def receptive_field_radius(model: nn.Module, max_radius: int = 128, channels: int = 3) -> int:
    """Measure the generator's receptive-field radius ``r`` in LR pixels with autograd.

    ``r`` is the largest distance (rows or columns) between an LR pixel ``p`` and an LR pixel
    that influences any of the ``s × s`` SR pixels produced "from" ``p``. It is found as the
    support of the gradient of those SR pixels (central ``p``) with respect to a random input.
    Tiles with ``overlap >= r`` reproduce the untiled output.

    Args:
        model: generator (run on the device of its parameters, in its current mode).
        max_radius: the largest radius probed (input side ``2 * max_radius + 1``, rounded up to
            the generator's input multiple).
        channels: input channels.

    Raises:
        ValueError: the influence reaches the probe's border (radius >= ``max_radius``).
    """
    m = input_multiple(model)
    side = int(math.ceil((2 * max_radius + 1) / m) * m)
    device = _model_device(model)
    # float64 copy: in float32 the gradient through many small-weight layers underflows to 0
    model = copy.deepcopy(model).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, side, side, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
    p = side // 2
    with torch.enable_grad():
        y = model(x)
        s = y.shape[-2] // side
        y[0, :, p * s : (p + 1) * s, p * s : (p + 1) * s].sum().backward()
    nz = torch.nonzero(x.grad.abs().sum(dim=(0, 1)))
    if nz.numel() == 0:
        return 0
    if int(nz.min()) == 0 or int(nz.max()) == side - 1:
        raise ValueError(f"receptive field reaches the probe border; raise max_radius above {max_radius}")
    return int((nz - p).abs().max())
