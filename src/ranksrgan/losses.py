"""Generator losses of SRGAN / ESRGAN / RankSRGAN, one module per term (BasicSR style).

Every generator term is a :class:`GeneratorLoss`: it owns its ``weight`` (>= 0; 0 switches the term
off) and its ``forward(sr, hr)`` returns the UNWEIGHTED scalar, for images in [0, 1]. The training
objective is ``sum(term.weight * term(sr, hr))`` over the :class:`~torch.nn.ModuleDict` that
:func:`build_generator_losses` makes from the config, keyed by the names the logs use: ``pixel``,
``perceptual``, ``gan`` and ``rank/<Ranker name>``.

Score conventions of the networks:

* discriminator logits: higher = more "real";
* Ranker scores: higher = WORSE image (the original's convention). The rank-content loss is
  therefore ``f(R(G(x)))`` with a monotonically INCREASING ``f``, and minimising it pushes the
  generator toward images that the Ranker scores as better.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GAN_KINDS",
    "MONOTONIC_FUNCTIONS",
    "RANK_FLOORS",
    "jitter_crop",
    "GeneratorLoss",
    "PixelLoss",
    "PerceptualLoss",
    "LearnedPerceptualLoss",
    "GANLoss",
    "RankLoss",
    "build_perceptual_loss",
    "build_generator_losses",
    "generator_adversarial_loss",
    "discriminator_loss",
]


def _distance(x: torch.Tensor, y: torch.Tensor, criterion: str) -> torch.Tensor:
    """Mean over elements of ``|x - y|`` (``l1``) or ``(x - y)^2`` (``mse`` / ``l2sq``)."""
    return F.l1_loss(x, y) if criterion == "l1" else F.mse_loss(x, y)


class GeneratorLoss(nn.Module):
    """One term of the generator objective: owns its ``weight``; ``forward(sr, hr)`` returns the
    unweighted scalar (``sr``, ``hr``: ``B×3×H×W`` in [0, 1]).

    ``uses_loss_network``: the term runs a frozen network (VGG, LPIPS/DISTS, a Ranker), which the
    SR module may run under bf16 autocast.
    """

    uses_loss_network = False

    def __init__(self, name: str, weight: float) -> None:
        super().__init__()
        weight = float(weight)
        if not weight >= 0 or math.isinf(weight):
            raise ValueError(f"{name} weight must be a finite number >= 0, got {weight}")
        self.name, self.weight = name, weight

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}"


class PixelLoss(GeneratorLoss):
    """Mean ``|sr - hr|`` (``criterion="l1"``) or ``(sr - hr)^2`` (``"mse"``) over all elements."""

    CRITERIA = ("l1", "mse")

    def __init__(self, weight: float = 0.0, criterion: str = "l1") -> None:
        super().__init__("pixel", weight)
        if criterion not in self.CRITERIA:
            raise ValueError(f"pixel criterion must be one of {self.CRITERIA}, got {criterion!r}")
        self.criterion = criterion

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return _distance(sr, hr, self.criterion)


class PerceptualLoss(GeneratorLoss):
    """Distance between frozen feature maps of SR and HR (paper Eq. 7), no gradient into HR.

    Args:
        extractor: a frozen feature network, e.g. ``VGGFeatureExtractor`` (conv5_4 before ReLU).
        weight: the term's weight.
        criterion: ``"l1"``: mean ``|phi(sr) - phi(hr)|`` (the authors' code); ``"l2sq"``: mean
            ``(phi(sr) - phi(hr))^2``, Eq. 7's squared L2 norm divided by the number of elements.
    """

    uses_loss_network = True
    CRITERIA = ("l1", "l2sq")

    def __init__(self, extractor: nn.Module, weight: float = 0.0, criterion: str = "l1") -> None:
        super().__init__("perceptual", weight)
        if criterion not in self.CRITERIA:
            raise ValueError(f"perceptual criterion must be one of {self.CRITERIA}, got {criterion!r}")
        self.extractor = extractor
        self.criterion = criterion

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.extractor(hr)
        return _distance(self.extractor(sr), target, self.criterion)


class LearnedPerceptualLoss(GeneratorLoss):
    """A frozen learned metric (LPIPS or DISTS, :mod:`ranksrgan.metrics.perceptual`) as the
    perceptual term: its batch mean, lower = closer to HR."""

    uses_loss_network = True

    def __init__(self, metric: nn.Module, weight: float = 0.0) -> None:
        super().__init__("perceptual", weight)
        self.metric = metric

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.metric(sr, hr)


def build_perceptual_loss(
    weight: float = 0.0, kind: str = "vgg", layer: str = "conv5_4", criterion: str = "l1", pretrained: bool = True
) -> GeneratorLoss:
    """The perceptual term of the config ``perceptual:`` section.

    ``kind``: ``vgg`` (VGG19 features up to ``layer``, distance ``criterion``) or ``lpips`` /
    ``dists`` (piq's metrics as the loss; ``layer`` and ``criterion`` do not apply).
    ``pretrained``: ImageNet / released weights (False: random, for tests without network).
    """
    if kind == "vgg":
        from ranksrgan.nets import VGGFeatureExtractor

        return PerceptualLoss(VGGFeatureExtractor(layer=layer, pretrained=pretrained), weight, criterion)
    if kind in ("lpips", "dists"):
        from ranksrgan.metrics.perceptual import perceptual_metric_loss

        return LearnedPerceptualLoss(perceptual_metric_loss(kind, pretrained=pretrained), weight)
    raise ValueError(f"perceptual.kind must be 'vgg', 'lpips' or 'dists', got {kind!r}")


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
        return _relativistic_loss(real_logits, fake_logits, real_target=0.0)
    raise ValueError(f"GAN kind must be 'vanilla' or 'ragan', got {kind!r}")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """The discriminator's loss for the same two GAN kinds (fake logits from detached SR)."""
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + F.binary_cross_entropy_with_logits(
            fake_logits, torch.zeros_like(fake_logits)
        )
    if kind == "ragan":
        return _relativistic_loss(real_logits, fake_logits, real_target=1.0)
    raise ValueError(f"GAN kind must be 'vanilla' or 'ragan', got {kind!r}")


def _relativistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_target: float) -> torch.Tensor:
    """Relativistic average BCE: ``D(real) - mean D(fake)`` towards ``real_target`` and
    ``D(fake) - mean D(real)`` towards ``1 - real_target``, averaged (1: the discriminator's
    side, 0: the generator's)."""
    real_rel = real_logits - fake_logits.mean()
    fake_rel = fake_logits - real_logits.mean()
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_rel, torch.full_like(real_rel, real_target))
        + F.binary_cross_entropy_with_logits(fake_rel, torch.full_like(fake_rel, 1.0 - real_target))
    )


GAN_KINDS = ("vanilla", "ragan")


class GANLoss(GeneratorLoss):
    """The adversarial term of one kind (paper Eq. 8).

    Args:
        kind: "vanilla" (BCE against the real / fake labels) or "ragan" (ESRGAN's relativistic
            average GAN, which also needs the discriminator's logits on real images).
        weight: the generator term's weight; the discriminator's own loss is not weighted.
        discriminator: the network ``forward(sr, hr)`` scores (logits ``(B, 1)``, higher = more
            "real"). It is NOT a submodule: the SR module owns it (its checkpoint keys stay
            ``discriminator.*``) and trains it; here it is called with its parameters frozen, so
            the generator step leaves no gradient in it.

    >>> loss = GANLoss("vanilla", weight=0.005)
    >>> fake, real = torch.zeros(4, 1), torch.ones(4, 1)
    >>> round(float(loss.generator(fake)), 4)  # log 2
    0.6931
    >>> round(float(loss.discriminator(real, fake)), 4)
    1.0064
    """

    def __init__(self, kind: str = "vanilla", weight: float = 0.0, discriminator: nn.Module | None = None) -> None:
        super().__init__("gan", weight)
        if kind not in GAN_KINDS:
            raise ValueError(f"GAN kind must be one of {GAN_KINDS}, got {kind!r}")
        self.kind = kind
        object.__setattr__(self, "network", discriminator)

    @property
    def needs_real_logits(self) -> bool:
        """Whether :meth:`generator` needs the discriminator's logits on real images (RaGAN)."""
        return self.kind == "ragan"

    def generator(self, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None) -> torch.Tensor:
        """The generator's unweighted adversarial term from logits (scalar)."""
        return generator_adversarial_loss(fake_logits, real_logits, self.kind)

    def discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss (scalar; fake logits from detached SR images)."""
        return discriminator_loss(real_logits, fake_logits, self.kind)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """:meth:`generator` on the discriminator's logits of ``sr`` (and of ``hr`` for RaGAN)."""
        if self.network is None:
            raise ValueError("GANLoss needs its discriminator network to score images")
        self.network.requires_grad_(False)
        try:
            fake_logits = self.network(sr)
            real_logits = self.network(hr).detach() if self.needs_real_logits else None
        finally:
            self.network.requires_grad_(True)
        return self.generator(fake_logits, real_logits)


MONOTONIC_FUNCTIONS = {
    "sigmoid": torch.sigmoid,  # the paper's Eq. 9: loss in (0, 1)
    "exp": torch.exp,
    "identity": lambda s: s,
}
#: ``rank.floor`` choices: None (the paper) or ``"hr"`` (no reward below the HR patch's score).
RANK_FLOORS = (None, "hr")


class RankLoss(GeneratorLoss):
    """The rank-content term of one frozen Ranker (paper Eq. 9; several Rankers: §6).

    ``loss = reduce_over_batch(f(R(sr)))``, or with ``floor="hr"``
    ``reduce_over_batch(f(max(R(sr), R(hr))))`` with ``R(hr)`` detached: per image, no reward (zero
    gradient) once the output scores better (lower) than its HR patch, the plain loss's gradient
    elsewhere (an addition to the paper against rewarding the Ranker's blind spots).

    With ``jitter=j > 0`` (not in the paper) the Ranker sees each image of the batch cropped by
    ``j`` px per axis at its own random offset in ``0..j`` (the HR patch of the floor at the same
    offset). The Ranker's stride-2 convolutions give its input gradient a pattern locked to its
    own pixel grid (period 2, 4, 8...), and the SR patch's grid is the generator's sub-pixel grid:
    without jitter the two always line up, and the generator is rewarded for writing that pattern
    into every image (a dot grid at the scale's period). ``j = scale - 1`` averages it over every
    phase. Offsets come from the global torch RNG (saved with the training checkpoint).

    Args:
        ranker: a :class:`~ranksrgan.nets.Ranker`, ``B×3×H×W`` in [0, 1] -> scores ``(B,)``,
            higher = worse. It is frozen here (``Ranker.freeze``) and stays in eval mode even when
            the parent module is put in training mode, so its BatchNorm statistics never drift
            (a defect of the original code). Gradients still flow through it to the SR image.
        weight: the term's weight.
        name: the Ranker's label (the term is logged as ``rank/<name>``).
        function: the increasing map ``f``: "sigmoid" (paper), "exp" or "identity" (§5.4).
        reduction: "sum" over the batch (the official code, for which the paper's weight 0.03 was
            tuned at batch 8) or "mean" (independent of the batch size: weight x batch gives the same).
        floor: None or "hr" (above).
        jitter: 0 (the paper) or the largest random offset in px (above).
    """

    uses_loss_network = True

    def __init__(
        self,
        ranker: nn.Module,
        weight: float = 0.0,
        name: str = "ranker",
        function: str = "sigmoid",
        reduction: str = "sum",
        floor: str | None = None,
        jitter: int = 0,
    ) -> None:
        super().__init__(f"rank/{name}", weight)
        if function not in MONOTONIC_FUNCTIONS:
            raise ValueError(f"rank function must be one of {sorted(MONOTONIC_FUNCTIONS)}, got {function!r}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"rank reduction must be 'sum' or 'mean', got {reduction!r}")
        if floor not in RANK_FLOORS:
            raise ValueError(f"rank floor must be null or 'hr', got {floor!r}")
        if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
            raise ValueError(f"rank jitter must be an integer >= 0 (pixels), got {jitter!r}")
        self.function, self.reduction, self.floor, self.jitter = function, reduction, floor, jitter
        self.ranker = ranker.freeze()
        self.ranker.eval()

    def train(self, mode: bool = True) -> RankLoss:
        super().train(mode)
        self.ranker.eval()
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
        if self.floor == "hr" and hr is None:
            raise ValueError(f"{self.name}: floor='hr' needs the HR images")
        if self.jitter:
            sr, hr = jitter_crop(sr, hr, self.jitter)
        scores = self.ranker(sr).reshape(-1)
        if self.floor == "hr":
            with torch.no_grad():
                hr_scores = self.ranker(hr).reshape(-1)
            scores = torch.where(scores > hr_scores, scores, hr_scores)
        values = MONOTONIC_FUNCTIONS[self.function](scores)
        return values.sum() if self.reduction == "sum" else values.mean()


def jitter_crop(
    sr: torch.Tensor, hr: torch.Tensor | None, jitter: int, offsets: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each ``B×C×H×W`` image cropped to ``(H - jitter)×(W - jitter)`` at offset ``offsets[b] = (dy, dx)``
    (default: drawn uniformly from ``0..jitter`` per image and axis); ``hr`` (or None) at the same offsets.

    >>> x = torch.arange(2 * 16.0).reshape(2, 1, 4, 4)
    >>> a, _ = jitter_crop(x, None, 1, torch.tensor([[0, 0], [1, 1]]))
    >>> a[:, 0, 0, 0].tolist()  # image 0 from (0, 0), image 1 from (1, 1)
    [0.0, 21.0]
    """
    batch, _, height, width = sr.shape
    if offsets is None:
        offsets = torch.randint(0, jitter + 1, (batch, 2))
    h, w = height - jitter, width - jitter
    offsets = offsets.tolist()

    def crop(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[b, :, dy : dy + h, dx : dx + w] for b, (dy, dx) in enumerate(offsets)])

    return crop(sr), None if hr is None else crop(hr)


def build_generator_losses(
    pixel: Mapping | None = None,
    perceptual: Mapping | None = None,
    gan: Mapping | None = None,
    rank: Mapping | None = None,
    rankers: Sequence[tuple[str, nn.Module | str | os.PathLike, float]] = (),
    discriminator: nn.Module | None = None,
) -> nn.ModuleDict:
    """The generator's loss terms from the config sections, keyed ``pixel``, ``perceptual``, ``gan``,
    ``rank/<name>`` (in that order, the order of the weighted sum).

    Each section's keys are the keyword arguments of its term (``pixel``: :class:`PixelLoss`;
    ``perceptual``: :func:`build_perceptual_loss`; ``gan``: :class:`GANLoss` without the network;
    ``rank``: :class:`RankLoss`'s ``function``, ``reduction``, ``floor``, ``jitter`` for every Ranker),
    whose signatures hold the defaults. ``rankers``: ``(name, Ranker or its checkpoint file, weight)``
    each (files are loaded after the perceptual network is built, so a seeded build is
    reproducible). The perceptual and GAN terms exist only with a weight > 0 (they need networks;
    the GAN term needs ``discriminator``); the pixel term and every Ranker's term always exist
    (weight 0 = skipped).
    """
    terms: dict[str, GeneratorLoss] = {"pixel": PixelLoss(**(pixel or {}))}
    perceptual = dict(perceptual or {})
    if float(perceptual.get("weight", 0.0)) > 0:
        terms["perceptual"] = build_perceptual_loss(**perceptual)
    gan_term = GANLoss(**(gan or {}), discriminator=discriminator)
    if gan_term.weight > 0:
        if discriminator is None:
            raise ValueError("gan.weight > 0 needs a discriminator config")
        terms["gan"] = gan_term
    for name, ranker, weight in rankers:
        key = f"rank/{name}"
        if key in terms:
            raise ValueError(f"two Rankers are named {name!r}")
        if not isinstance(ranker, nn.Module):
            from ranksrgan.checkpoints import load_ranker

            ranker = load_ranker(ranker)
        terms[key] = RankLoss(ranker, weight, name, **(rank or {}))
    return nn.ModuleDict(terms)
