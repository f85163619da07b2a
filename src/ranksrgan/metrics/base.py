"""Shared torchmetrics base: the mean of a per-image score, DDP-safe."""

from __future__ import annotations

import torch
from torchmetrics import Metric

__all__ = ["PerImageMean"]


class PerImageMean(Metric):
    """Averages per-image scores over all ``update`` calls and all processes.

    Subclasses compute a B-vector of scores in ``update`` and pass it to :meth:`_accumulate`.
    States are a float64 sum and a count, both reduced by ``sum`` across DDP processes, so the
    result is the exact mean over every image seen. NaN scores propagate (they are not skipped).
    """

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _accumulate(self, scores: torch.Tensor) -> None:
        self.total += scores.detach().double().sum().to(self.total.device)
        self.count += scores.numel()

    def compute(self) -> torch.Tensor:
        return self.total / self.count
