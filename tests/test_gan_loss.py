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
    assert loss.weight == 0.25
    assert float(loss.discriminator(real, fake)) == pytest.approx(d, rel=1e-6)
    assert list(loss.state_dict()) == []  # nothing enters checkpoints


def test_gan_loss_rejects_bad_kind_and_weight():
    with pytest.raises(ValueError, match="GAN kind must be one of"):
        GANLoss("wgan")
    with pytest.raises(ValueError, match="gan weight must be a finite number >= 0"):
        GANLoss("vanilla", weight=-0.005)


def test_gan_loss_forward_scores_images_with_its_discriminator_frozen():
    """``forward(sr, hr)``: the unweighted generator term on the network's logits; the network
    gets no gradient and is trainable again afterwards."""
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, -2.0]]))
        net.bias.fill_(0.5)
    sr = torch.tensor([[0.2, 0.4], [1.0, 0.0]], requires_grad=True)  # logits -0.1, 1.5
    hr = torch.tensor([[0.0, 0.0], [0.5, 1.0]])  # logits 0.5, -1.0
    vanilla = GANLoss("vanilla", 0.5, net)(sr, hr)
    assert float(vanilla.detach()) == pytest.approx((_softplus(0.1) + _softplus(-1.5)) / 2, rel=1e-6)
    vanilla.backward()
    assert sr.grad is not None and net.weight.grad is None and net.weight.requires_grad
    rr, fr = [0.5 - 0.7, -1.0 - 0.7], [-0.1 + 0.25, 1.5 + 0.25]  # real - mean(fake), fake - mean(real)
    expected = 0.5 * (sum(_softplus(x) for x in rr) / 2 + sum(_softplus(-x) for x in fr) / 2)
    assert float(GANLoss("ragan", 0.5, net)(sr, hr)) == pytest.approx(expected, rel=1e-6)
