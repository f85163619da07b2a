"""Per-patch values of the SR rank-set labels: sharpness, the label metrics, one label from them.

Sharpness of a patch: the mean gradient magnitude of its MATLAB Y channel on the 0-255 scale,
``mean(sqrt(dx² + dy²))`` with forward differences (``dx = Y[:, 1:] - Y[:, :-1]`` cut to the
common ``(p-1)×(p-1)`` area). Flat sky is ~0-1, textured regions are ~5-30.

Metrics: the no-reference metrics of :mod:`ranksrgan.metrics.registry` (:data:`LABEL_METRICS`),
plus ``rmse`` against HR (always computed), all in the registry's ``PIRM`` convention (MATLAB Y,
``crop_border`` shaved; RankSRGAN: 4 px, 96×96 NIQE blocks).

Polarity: every label is oriented so that HIGHER = WORSE (the registry's
:meth:`~ranksrgan.metrics.registry.MetricInfo.oriented`): ``niqe``, ``pi`` and ``rmse`` as they
are, ``ma`` (higher = better) as ``10 - Ma``. A metric spec is a name (``"niqe"``) or a weighted
sum (``{"niqe": 1.0, "rmse": 0.4}`` = NIQE + 0.4·RMSE; PI = ``{"niqe": 0.5, "ma": 0.5}``).

>>> parse_metric_spec({"niqe": 1, "rmse": 0.4})
{'niqe': 1.0, 'rmse': 0.4}
>>> import numpy as np
>>> combine_metrics({"niqe": np.array([3.0]), "ma": np.array([8.0])}, {"niqe": 0.5, "ma": 0.5})
array([2.5])
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from ranksrgan.metrics.registry import METRICS, NO_REFERENCE, PIRM, compute
from ranksrgan.ops.color import quantize_uint8, rgb_to_y

__all__ = ["LABEL_METRICS", "COMBINABLE", "sharpness", "label_metrics", "parse_metric_spec", "combine_metrics"]

#: Metrics that can be computed while labelling (rmse and sharpness are always computed).
LABEL_METRICS = NO_REFERENCE
#: Metrics a label spec may combine: the label metrics and ``rmse``.
COMBINABLE = (*LABEL_METRICS, "rmse")


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude of the MATLAB Y channel (0-255): ``B×3×H×W`` [0, 1] -> ``B`` float64.

    >>> sharpness(torch.zeros(1, 3, 8, 8))
    tensor([0.], dtype=torch.float64)
    """
    y = rgb_to_y(quantize_uint8(x.double()))[:, 0] * 255.0
    dx = y[:, :-1, 1:] - y[:, :-1, :-1]
    dy = y[:, 1:, :-1] - y[:, :-1, :-1]
    return torch.sqrt(dx * dx + dy * dy).mean(dim=(1, 2))


def label_metrics(
    x: torch.Tensor, ref: torch.Tensor, metrics: tuple[str, ...] | list[str], crop_border: int
) -> list[torch.Tensor]:
    """The label columns of ``B×3×p×p`` patches in [0, 1] (``ref``: the HR patches):
    ``[sharpness, rmse, *metrics]``, each a ``B`` float64 CPU tensor, in the ``PIRM``
    convention with ``crop_border`` px shaved."""
    values = compute(["rmse", *metrics], x, ref, PIRM, crop_border=crop_border)
    return [sharpness(x).double().cpu(), *(values[m] for m in ("rmse", *metrics))]


def parse_metric_spec(spec: str | Mapping[str, float]) -> dict[str, float]:
    """``"niqe"`` -> ``{"niqe": 1.0}``; ``{"niqe": 1, "rmse": 0.4}`` -> floats. Validates names/weights."""
    if isinstance(spec, str):
        spec = {spec: 1.0}
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"metric: expected a name or a non-empty {{name: weight}} mapping, got {spec!r}")
    out = {}
    for name, weight in spec.items():
        if name not in COMBINABLE:
            raise ValueError(f"metric: unknown metric {name!r}; choose from {sorted(COMBINABLE)}")
        weight = float(weight)
        if not math.isfinite(weight) or weight == 0:
            raise ValueError(f"metric: weight of {name!r} must be a finite non-zero number, got {weight}")
        out[str(name)] = weight
    return out


def combine_metrics(columns: Mapping[str, np.ndarray], spec: str | Mapping[str, float]) -> np.ndarray:
    """Weighted sum of oriented metric columns (higher = worse); ``ma`` enters as ``10 - Ma``."""
    weights = parse_metric_spec(spec)
    total = None
    for name, weight in weights.items():
        if name not in columns:
            raise ValueError(f"metric {name!r} is not in the label file (it has: {', '.join(sorted(columns))})")
        term = weight * METRICS[name].oriented(np.asarray(columns[name], dtype=np.float64))
        total = term if total is None else total + term
    return total
