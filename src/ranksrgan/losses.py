"""Generator losses of SRGAN / ESRGAN / RankSRGAN.

Every loss maps images in [0, 1] to a scalar tensor. The GAN and rank-content losses follow the
score conventions of the networks:

* discriminator logits: higher = more "real";
* Ranker scores: higher = WORSE image (the original's convention). The rank-content loss is
  therefore ``f(R(G(x)))`` with a monotonically INCREASING ``f``, and minimising it pushes the
  generator toward images that the Ranker scores as better.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GAN_KINDS",
    "GANLoss",
    "MONOTONIC_FUNCTIONS",
    "pixel_loss",
    "PerceptualLoss",
    "generator_adversarial_loss",
    "discriminator_loss",
    "RankContentLoss",
]


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, criterion: str = "l1") -> torch.Tensor:
    """Mean L1 or MSE between ``sr`` and ``hr`` (any equal shapes)."""
    if criterion == "l1":
        return F.l1_loss(sr, hr)
    if criterion == "mse":
        return F.mse_loss(sr, hr)
    raise ValueError(f"pixel criterion must be 'l1' or 'mse', got {criterion!r}")


class PerceptualLoss(nn.Module):
    """Distance between frozen VGG features of SR and HR (paper Eq. 7).

    Args:
        extractor: a frozen feature network, e.g. ``VGGFeatureExtractor`` (conv5_4 before ReLU).
        criterion: "l1" (the official code) or "mse" (the paper's squared L2, averaged).
    """

    def __init__(self, extractor: nn.Module, criterion: str = "l1") -> None:
        super().__init__()
        if criterion not in ("l1", "mse"):
            raise ValueError(f"perceptual criterion must be 'l1' or 'mse', got {criterion!r}")
        self.extractor = extractor
        self.criterion = criterion

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.extractor(hr)
        return pixel_loss(self.extractor(sr), target, self.criterion)


def generator_adversarial_loss(fake_logits: torch.Tensor, real_logits: torch.Tensor | None, kind: str) -> torch.Tensor:
    """The generator's GAN loss (paper Eq. 8).

    ``vanilla``: BCE(D(G(x)), real). ``ragan`` (ESRGAN's relativistic average GAN): symmetric BCE of
    ``D(real) - mean D(fake)`` as fake and ``D(fake) - mean D(real)`` as real; needs ``real_logits``.
    """
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind == "ragan":
        if real_logits is None:
            raise ValueError("the 'ragan' loss needs the discriminator's logits on real images")
        real_rel = real_logits - fake_logits.mean()
        fake_rel = fake_logits - real_logits.mean()
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real_rel, torch.zeros_like(real_rel))
            + F.binary_cross_entropy_with_logits(fake_rel, torch.ones_like(fake_rel))
        )
    raise ValueError(f"GAN kind must be 'vanilla' or 'ragan', got {kind!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """The discriminator's loss for the same two GAN kinds (fake logits from detached SR)."""
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits)
        )
    if kind == "ragan":
        real_rel = real_logits - fake_logits.mean()
        fake_rel = fake_logits - real_logits.mean()
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real_rel, torch.ones_like(real_rel))
            + F.binary_cross_entropy_with_logits(fake_rel, torch.zeros_like(fake_rel))
        )
    raise ValueError(f"GAN kind must be 'vanilla' or 'ragan', got {kind!r}")


GAN_KINDS = ("vanilla", "ragan")


class GANLoss(nn.Module):
    """The adversarial loss of one kind (paper Eq. 8), owning its weight in the generator objective.

    A thin module over :func:`generator_adversarial_loss` and :func:`discriminator_loss`.

    Args:
        kind: "vanilla" (BCE against the real / fake labels) or "ragan" (ESRGAN's relativistic
            average GAN, which also needs the discriminator's logits on real images).
        weight: the generator term's weight in the total loss (>= 0); the discriminator's own
            loss is not weighted.

    Logits: ``(B, 1)`` (or any shape), higher = more "real".

    >>> loss = GANLoss("vanilla", weight=0.005)
    >>> fake, real = torch.zeros(4, 1), torch.ones(4, 1)
    >>> round(float(loss.generator(fake)), 4), round(float(loss(fake)), 6)  # log 2, weighted
    (0.6931, 0.003466)
    >>> round(float(loss.discriminator(real, fake)), 4)
    1.0064
    """

    def __init__(self, kind: str = "vanilla", weight: float = 1.0) -> None:
        super().__init__()
        if kind not in GAN_KINDS:
            raise ValueError(f"GAN kind must be one of {GAN_KINDS}, got {kind!r}")
        if weight < 0:
            raise ValueError(f"GAN weight must be >= 0, got {weight}")
        self.kind, self.weight = kind, float(weight)

    @property
    def needs_real_logits(self) -> bool:
        """Whether :meth:`generator` needs the discriminator's logits on real images (RaGAN)."""
        return self.kind == "ragan"

    def generator(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        """The generator's unweighted adversarial term (scalar)."""
        return generator_adversarial_loss(fake_logits, real_logits, self.kind)

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss (scalar; fake logits from detached SR images)."""
        return discriminator_loss(real_logits, fake_logits, self.kind)

    def forward(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        """``weight`` times :meth:`generator`."""
        return self.weight * self.generator(fake_logits, real_logits)


MONOTONIC_FUNCTIONS = {
    "sigmoid": torch.sigmoid,  # the paper's Eq. 9: loss in (0, 1)
    "exp": torch.exp,
    "identity": lambda s: s,
}


class RankContentLoss(nn.Module):
    """Weighted sum of rank-content losses from several frozen Rankers (paper Eq. 9 and §6).

    ``loss = sum_k weight_k * reduce_over_batch(f(R_k(sr)))``.

    Args:
        rankers: :class:`~ranksrgan.nets.Ranker` s mapping ``B×3×H×W`` in [0, 1] to scores ``(B,)``,
            higher = worse. They are frozen here (``Ranker.freeze``).
        weights: one weight per Ranker (0 disables it without removing it).
        function: the increasing map ``f``: "sigmoid" (paper), "exp" or "identity" (§5.4).
        reduction: "sum" over the batch (the official code, for which the paper's weight 0.03 was
            tuned at batch 8) or "mean" (independent of the batch size: weight x batch gives the same).

    The Rankers are frozen (no gradients to their weights) and stay in eval mode even when the
    parent module is put in training mode, so their BatchNorm statistics never drift (a defect of
    the original code). Gradients still flow through them to the SR image.
    """

    def __init__(
        self, rankers: Sequence[nn.Module], weights: Sequence[float], function: str = "sigmoid", reduction: str = "sum"
    ) -> None:
        super().__init__()
        if len(rankers) != len(weights):
            raise ValueError(f"got {len(rankers)} Rankers but {len(weights)} weights")
        if function not in MONOTONIC_FUNCTIONS:
            raise ValueError(f"rank function must be one of {sorted(MONOTONIC_FUNCTIONS)}, got {function!r}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"rank reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction = reduction
        self.rankers = nn.ModuleList(rankers)
        self.weights = [float(w) for w in weights]
        self.function = function
        for ranker in self.rankers:
            ranker.freeze()
        self.rankers.eval()

    def train(self, mode: bool = True) -> RankContentLoss:
        super().train(mode)
        self.rankers.eval()
        return self

    def forward(self, sr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Returns ``(weighted total, per-Ranker unweighted reduced f(R_k(sr)))``; a Ranker with
        weight 0 is not evaluated (its entry is None)."""
        f = MONOTONIC_FUNCTIONS[self.function]
        total = sr.new_zeros(())
        terms: list[torch.Tensor | None] = []
        for weight, ranker in zip(self.weights, self.rankers):
            term = None
            if weight:
                values = f(ranker(sr).reshape(-1))
                term = values.sum() if self.reduction == "sum" else values.mean()
            if term is not None:
                total = total + weight * term
            terms.append(term)
        return total, terms
