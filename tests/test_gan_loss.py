"""GANLoss: one object owning the adversarial kind and weight, over the functional core."""

from __future__ import annotations

import math

import pytest
import torch

from ranksrgan.losses import GANLoss


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


@pytest.mark.parametrize("kind", ["vanilla", "ragan"])
def test_gan_loss_values_by_hand(kind):
    real, fake = torch.tensor([[2.0], [0.5]]), torch.tensor([[-1.0], [0.3]])
    loss = GANLoss(kind, weight=0.25)
    if kind == "vanilla":  # BCE(fake, 1) = softplus(-fake); D: softplus(-real) + softplus(fake)
        g = (_softplus(1.0) + _softplus(-0.3)) / 2
        d = (_softplus(-2.0) + _softplus(-0.5)) / 2 + (_softplus(-1.0) + _softplus(0.3)) / 2
    else:  # relativistic: real - mean(fake) = real - (-0.35); fake - mean(real) = fake - 1.25
        rr, fr = [2.35, 0.85], [-2.25, -0.95]
        g = 0.5 * (sum(_softplus(x) for x in rr) / 2 + sum(_softplus(-x) for x in fr) / 2)
        d = 0.5 * (sum(_softplus(-x) for x in rr) / 2 + sum(_softplus(x) for x in fr) / 2)
    assert loss.needs_real_logits == (kind == "ragan")
    assert float(loss.generator(fake, real)) == pytest.approx(g, rel=1e-6)
    assert float(loss(fake, real)) == pytest.approx(0.25 * g, rel=1e-6)
    assert float(loss.discriminator(real, fake)) == pytest.approx(d, rel=1e-6)
    assert list(loss.state_dict()) == []  # nothing enters checkpoints


def test_gan_loss_rejects_bad_kind_and_weight():
    with pytest.raises(ValueError, match="GAN kind must be one of"):
        GANLoss("wgan")
    with pytest.raises(ValueError, match="GAN weight must be >= 0"):
        GANLoss("vanilla", weight=-0.005)
