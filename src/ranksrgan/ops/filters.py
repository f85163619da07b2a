"""Gaussian windows and image flips: the small filters shared by the metrics and the data.

Pure Python for the windows (``math.exp`` and the correctly rounded ``math.fsum``), so the taps
are the same on every platform and device: flat image regions make NIQE and Ma sensitive to the
last bit of a tap.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch

__all__ = ["gaussian_taps", "random_flips", "apply_flips"]

T = TypeVar("T", torch.Tensor, np.ndarray)


def gaussian_taps(size: int, sigma: float) -> tuple[float, ...]:
    """Normalised 1-D Gaussian taps centred on the middle of ``size`` samples; their outer
    product is MATLAB ``fspecial('gaussian', size, sigma)``.

    >>> [round(t, 6) for t in gaussian_taps(3, 0.5)]
    [0.106507, 0.786986, 0.106507]
    >>> round(math.fsum(gaussian_taps(11, 1.5)), 15)
    1.0
    """
    r = (size - 1) / 2
    g = [math.exp(-((k - r) ** 2) / (2.0 * sigma * sigma)) for k in range(size)]
    total = math.fsum(g)
    return tuple(v / total for v in g)


def random_flips(generator: torch.Generator | None = None) -> tuple[bool, bool, bool]:
    """Horizontal flip, vertical flip, transpose: 50 % each (from ``generator``, else torch's global RNG)."""
    f = torch.rand(3, generator=generator) < 0.5
    return bool(f[0]), bool(f[1]), bool(f[2])


def apply_flips(x: T, flips: tuple[bool, bool, bool]) -> T:
    """Apply ``(hflip, vflip, transpose)`` to an image: a tensor ``...×H×W`` or an array ``H×W×C``.
    Returns a contiguous copy (or ``x`` itself when it is contiguous and nothing is flipped).

    >>> x = torch.arange(6).reshape(1, 2, 3)
    >>> apply_flips(x, (True, False, True)).tolist()
    [[[2, 5], [1, 4], [0, 3]]]
    >>> apply_flips(x.permute(1, 2, 0).numpy(), (True, False, True))[..., 0].tolist()
    [[2, 5], [1, 4], [0, 3]]
    """
    if isinstance(x, np.ndarray):
        if flips[0]:
            x = x[:, ::-1]
        if flips[1]:
            x = x[::-1]
        if flips[2]:
            x = x.transpose(1, 0, *range(2, x.ndim))
        return np.ascontiguousarray(x)
    if flips[0]:
        x = x.flip(-1)
    if flips[1]:
        x = x.flip(-2)
    if flips[2]:
        x = x.transpose(-1, -2)
    return x.contiguous()
