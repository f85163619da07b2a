"""The periodic artifact of an SR output at the scale's period: a no-reference measure.

A generator that upscales by ``s`` can draw a pattern locked to its LR pixel grid: the same small
``s×s`` motif repeated over flat areas (a trained RankSRGAN at x4 draws one of about 10 grey
levels peak to peak, which NIQE does not penalise). :func:`grid_amplitude` measures it; higher =
stronger regular pattern, 0 for a flat image. Lower is better.

Definition (``s`` = ``scale``, all arithmetic exact):

1. Luminance: the image rounded to 8 bits (as a saved PNG), MATLAB ``rgb2ycbcr`` Y
   (``color="y"``) or ``rgb2gray`` (``"gray"``), rounded to 8 bits as MATLAB returns it for a
   uint8 image, on the 0-255 scale: what NIQE sees. A 1-channel input is taken as the
   luminance and only rounded. Then ``crop_border`` px are shaved per side.
2. High-pass residual ``r = Y - K * Y`` ('valid': only where the kernel fits), with
   ``K = k ⊗ k`` the centred moving average over one period: ``k = ones(s) / s`` for odd ``s``,
   ``[1/2, 1, ..., 1, 1/2] / s`` (``s + 1`` taps) for even ``s``. ``K`` sums every whole period
   of a period-``s`` pattern, so it removes the pattern from the smooth part (``r`` keeps it, less
   its mean), and it is symmetric, so a linear ramp leaves no residual.
3. Phase means: ``P[i, j]`` = mean of ``r`` over every residual pixel at row ``y ≡ i`` and column
   ``x ≡ j (mod s)`` (coordinates of the cropped image), the ``s×s`` motif
   (:func:`grid_pattern`). Content not locked to the grid averages out (on a 512² image each
   phase averages ~16K pixels at x4); a pattern repeated at period ``s`` survives whole.
4. ``grid = max(P) - min(P)``: peak-to-peak amplitude of the motif, in grey levels of the
   luminance (0-255 scale); range [0, 255], 0 for a flat image.

A period-``s`` pattern of peak-to-peak amplitude ``A`` (in luminance levels) added to any image
raises the score to about ``A`` over the image's own value (rounding aside); a pattern covering a
fraction ``f`` of the image counts about ``f·A``. Patterns of a period that divides ``s`` count
too (a period-2 checkerboard at ``s = 4``), patterns of another period mostly do not (a period-4
stripe ``+a, +a, -a, -a`` scores 0 at ``s = 2`` over whole stripes, ``a / n`` with ``n`` residual
columns per phase when one phase keeps an unpaired one). The torchmetrics mean:
:class:`ranksrgan.metrics.classes.Grid`. Photographs score a fraction of a grey level
(0.12-0.43 at x4, ``crop_border=4``, on five of skimage's images), their MATLAB bicubic x4
upscalings less (0.01-0.16), the same photographs with a period-4 pattern of 10 RGB levels
added 8.1-9.0.
"""

from __future__ import annotations

import torch

from ranksrgan.ops.color import quantize_uint8, rgb_to_gray, rgb_to_y, round_levels

__all__ = ["grid_amplitude", "grid_pattern"]

_COLORS = ("y", "gray")


def _luminance_255(x: torch.Tensor, color: str) -> torch.Tensor:
    """``B×C×H×W`` in [0, 1] -> 8-bit luminance ``B×H×W`` (integers 0..255 as float64)."""
    x = quantize_uint8(x.double())
    if x.shape[1] == 3:
        x = rgb_to_y(x) if color == "y" else rgb_to_gray(x)
    return round_levels(x[:, 0].clamp(0.0, 1.0))


def _period_taps(s: int) -> list[float]:
    """Taps of the centred period-``s`` moving sum (they add up to ``s``)."""
    return [1.0] * s if s % 2 else [0.5] + [1.0] * (s - 1) + [0.5]


def _moving_sum(y: torch.Tensor, taps: list[float], dim: int) -> torch.Tensor:
    """'Valid' weighted sum along ``dim`` (shifted slices; exact on multiples of 1/4)."""
    n = y.shape[dim] - len(taps) + 1
    out = taps[0] * y.narrow(dim, 0, n)
    for k, t in enumerate(taps[1:], start=1):
        out = out + t * y.narrow(dim, k, n)
    return out


def _check(x: torch.Tensor, scale: int, crop_border: int, color: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not torch.is_floating_point(x):
        raise TypeError(f"grid: x must be a float tensor in [0, 1], got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"grid: x must be B×C×H×W or C×H×W with C = 1 or 3, got shape {tuple(x.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ValueError(f"grid: scale (the pattern's period) must be an int >= 2, got {scale!r}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"grid: crop_border must be a non-negative int, got {crop_border!r}")
    if color not in _COLORS:
        raise ValueError(f"grid: color must be one of {_COLORS}, got {color!r}")
    need = 2 * crop_border + 2 * (scale // 2) + scale
    if min(x.shape[-2:]) < need:
        raise ValueError(
            f"grid: image {x.shape[-2]}×{x.shape[-1]} is too small for scale {scale} with crop_border={crop_border} "
            f"(needs at least {need}×{need})"
        )
    return x


@torch.no_grad()
def grid_pattern(x: torch.Tensor, scale: int = 4, crop_border: int = 0, color: str = "y") -> torch.Tensor:
    """The ``s×s`` phase-mean motif ``P`` of the module docstring, in grey levels (0-255 scale).

    ``x``: ``(B,)C×H×W`` in [0, 1], C = 3 (RGB) or 1 (luminance). Returns ``B×s×s`` float64 on
    ``x.device`` (``s×s`` for an unbatched input); ``P[b, i, j]`` belongs to the pixels at
    ``(y, x) ≡ (i, j) mod s``, counted from the top-left of the cropped image.

    >>> x = torch.full((1, 1, 16, 16), 100 / 255)
    >>> x[..., ::2, ::2] = 104 / 255  # a period-2 motif: one bright pixel in four
    >>> grid_pattern(x, scale=2)
    tensor([[[ 3., -1.],
             [-1., -1.]]], dtype=torch.float64)
    """
    unbatched = x.dim() == 3
    x = _check(x, scale, crop_border, color)
    y = _luminance_255(x, color)
    if crop_border:
        y = y[:, crop_border:-crop_border, crop_border:-crop_border]
    taps = _period_taps(scale)
    half = scale // 2
    smooth = _moving_sum(_moving_sum(y, taps, 1), taps, 2)  # s² × (K * Y), exact
    r = scale * scale * y[:, half : y.shape[1] - half, half : y.shape[2] - half] - smooth  # s² × residual, exact
    pattern = torch.empty(r.shape[0], scale, scale, dtype=torch.float64, device=r.device)
    for i in range(scale):
        for j in range(scale):
            phase = r[:, (i - half) % scale :: scale, (j - half) % scale :: scale]
            pattern[:, i, j] = phase.sum(dim=(1, 2)) / (phase.shape[1] * phase.shape[2] * scale * scale)
    return pattern[0] if unbatched else pattern


def grid_amplitude(x: torch.Tensor, scale: int = 4, crop_border: int = 0, color: str = "y") -> torch.Tensor:
    """Peak-to-peak amplitude of the period-``scale`` motif (module docstring), grey levels of
    the 8-bit luminance: ``(B,)C×H×W`` in [0, 1] -> ``(B,)`` float64 in [0, 255]. Higher =
    stronger regular pattern (worse); 0 for a flat image.

    >>> x = torch.full((1, 3, 32, 32), 0.5)
    >>> grid_amplitude(x, scale=4)
    tensor([0.], dtype=torch.float64)
    >>> x[..., 1::4, 2::4] = 0.5 + 10 / 255  # +10 RGB levels on one pixel in 16: +9 levels of Y
    >>> grid_amplitude(x, scale=4)
    tensor([9.], dtype=torch.float64)
    """
    p = grid_pattern(x, scale=scale, crop_border=crop_border, color=color)
    return p.amax(dim=(-2, -1)) - p.amin(dim=(-2, -1))
