"""Every loss of ``ranksrgan.losses`` pinned by value against hand arithmetic on tiny tensors.

The expected numbers are computed here with ``math`` / numpy (closed forms of BCE, sigmoid, exp),
never by the function under test; the logits are asymmetric so that swapped labels, flipped
targets or a different reduction change the value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ranksrgan.losses import (
    MONOTONIC_FUNCTIONS,
    GANLoss,
    PerceptualLoss,
    PixelLoss,
    RankLoss,
    discriminator_loss,
    generator_adversarial_loss,
    jitter_crop,
)
from ranksrgan.nets import Ranker


def softplus(x: float) -> float:
    """``log(1 + e^x)``: BCE-with-logits of logit ``x`` against label 0 (``softplus(-x)``: label 1)."""
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def close(actual: torch.Tensor, expected: float, rel: float = 1e-6) -> bool:
    return actual.dim() == 0 and math.isclose(float(actual.detach()), expected, rel_tol=rel, abs_tol=1e-9)


# ----------------------------------------------------------------------------- pixel


SR = torch.tensor([[0.0, 0.5], [1.0, 0.25]])
HR = torch.tensor([[0.5, 0.5], [0.0, 1.0]])


def test_pixel_l1_is_the_mean_absolute_difference():
    # |d| = 0.5, 0, 1, 0.75 -> mean 2.25 / 4; the value is unweighted
    assert close(PixelLoss(3.0, "l1")(SR, HR), 2.25 / 4)
    assert close(PixelLoss(3.0)(SR, HR), 2.25 / 4)  # l1 is the default


def test_pixel_mse_is_the_mean_squared_difference():
    # d^2 = 0.25, 0, 1, 0.5625 -> mean 1.8125 / 4
    assert close(PixelLoss(1.0, "mse")(SR, HR), 1.8125 / 4)


def test_pixel_loss_rejects_an_unknown_criterion():
    with pytest.raises(ValueError, match="pixel criterion"):
        PixelLoss(1.0, "l2")


@pytest.mark.parametrize(
    "make,name",
    [
        (lambda w: PixelLoss(w), "pixel"),
        (lambda w: PerceptualLoss(Scale1x1(), w), "perceptual"),
        (lambda w: GANLoss("vanilla", w), "gan"),
        (lambda w: RankLoss(AffineRanker(1.0, 0.0), w, "blur"), "rank/blur"),
    ],
)
def test_every_term_owns_its_weight_and_refuses_a_negative_one(make, name):
    assert make(0.25).weight == 0.25 and make(0.25).name == name
    for bad in (-0.03, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"^{name} weight must be a finite number >= 0"):
            make(bad)


# ----------------------------------------------------------------------------- perceptual


class Scale1x1(nn.Module):
    """A fixed 1x1 conv on one channel: ``feature = a * x + b``."""

    def __init__(self, a: float = 3.0, b: float = -0.5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(a)
            self.conv.bias.fill_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


SR_IMG = torch.tensor([0.1, 0.4, 0.8, 0.3]).reshape(1, 1, 2, 2)
HR_IMG = torch.tensor([0.2, 0.2, 0.5, 0.9]).reshape(1, 1, 2, 2)


def test_perceptual_criteria_by_hand():
    # features 3x - 0.5: differences 3 * (-0.1, 0.2, 0.3, -0.6) = (-0.3, 0.6, 0.9, -1.8)
    # l1 (the authors' code): mean |d| = 3.6 / 4; l2sq (Eq. 7, per element): mean d^2 = 4.5 / 4
    assert close(PerceptualLoss(Scale1x1(3.0), 1.0, "l1")(SR_IMG, HR_IMG), 3.6 / 4, rel=1e-5)
    assert close(PerceptualLoss(Scale1x1(3.0), 1.0, "l2sq")(SR_IMG, HR_IMG), 4.5 / 4, rel=1e-5)


def test_perceptual_loss_default_is_l1_and_bad_criterion_raises():
    loss = PerceptualLoss(Scale1x1(2.0))(SR_IMG, HR_IMG)
    assert close(loss, float(np.mean(np.abs(2.0 * (SR_IMG - HR_IMG).numpy()))), rel=1e-5)
    with pytest.raises(ValueError, match="perceptual criterion"):
        PerceptualLoss(Scale1x1(), 1.0, "mse")  # the former name of l2sq


def test_perceptual_gradient_flows_through_sr_only():
    a, b = 3.0, -0.5
    extractor = Scale1x1(a, b)
    sr = SR_IMG.clone().requires_grad_(True)
    hr = HR_IMG.clone().requires_grad_(True)
    PerceptualLoss(extractor, 1.0, "l1")(sr, hr).backward()
    assert hr.grad is None, "the target (HR) branch must not receive gradients"
    sign = torch.sign(SR_IMG - HR_IMG)
    # d/d sr of mean|a sr + b - target| = a sign / n
    assert torch.allclose(sr.grad, a * sign / 4)
    # The extractor weight's gradient comes from the SR branch alone: mean(sign * sr);
    # with a differentiable target it would be mean(sign * (sr - hr)).
    assert math.isclose(float(extractor.conv.weight.grad), float((sign * SR_IMG).mean()), rel_tol=1e-6)


# ----------------------------------------------------------------------------- adversarial

REAL = torch.tensor([2.0, 0.5])
FAKE = torch.tensor([-1.0, 0.3])


def test_vanilla_generator_loss_targets_real():
    # BCE(fake, 1) = mean softplus(-fake)
    expected = (softplus(1.0) + softplus(-0.3)) / 2
    assert close(generator_adversarial_loss(FAKE, None, "vanilla"), expected)
    # real logits are ignored by the vanilla loss
    assert close(generator_adversarial_loss(FAKE, REAL, "vanilla"), expected)


def test_vanilla_discriminator_loss_is_the_sum_of_both_bce():
    real_part = (softplus(-2.0) + softplus(-0.5)) / 2  # real -> 1
    fake_part = (softplus(-1.0) + softplus(0.3)) / 2  # fake -> 0
    assert close(discriminator_loss(REAL, FAKE, "vanilla"), real_part + fake_part)


def _relativistic() -> tuple[list[float], list[float]]:
    mean_real, mean_fake = (2.0 + 0.5) / 2, (-1.0 + 0.3) / 2
    real_rel = [r - mean_fake for r in (2.0, 0.5)]
    fake_rel = [f - mean_real for f in (-1.0, 0.3)]
    return real_rel, fake_rel


def test_ragan_generator_loss():
    real_rel, fake_rel = _relativistic()
    # generator: real relative to fake -> label 0, fake relative to real -> label 1
    expected = 0.5 * (sum(softplus(x) for x in real_rel) / 2 + sum(softplus(-x) for x in fake_rel) / 2)
    assert close(generator_adversarial_loss(FAKE, REAL, "ragan"), expected)


def test_ragan_discriminator_loss():
    real_rel, fake_rel = _relativistic()
    expected = 0.5 * (sum(softplus(-x) for x in real_rel) / 2 + sum(softplus(x) for x in fake_rel) / 2)
    assert close(discriminator_loss(REAL, FAKE, "ragan"), expected)


def test_gan_losses_reject_bad_arguments():
    with pytest.raises(ValueError, match="real images"):
        generator_adversarial_loss(FAKE, None, "ragan")
    with pytest.raises(ValueError, match="GAN kind"):
        generator_adversarial_loss(FAKE, REAL, "lsgan")
    with pytest.raises(ValueError, match="GAN kind"):
        discriminator_loss(REAL, FAKE, "lsgan")


def test_adversarial_gradient_sign():
    # The generator's vanilla loss must push the fake logits UP (towards "real").
    fake = FAKE.clone().requires_grad_(True)
    generator_adversarial_loss(fake, None, "vanilla").backward()
    assert torch.all(fake.grad < 0)
    # d/dx mean softplus(-x) = -(1 - sigmoid(x)) / n
    assert torch.allclose(fake.grad, torch.tensor([-(1 - sigmoid(-1.0)) / 2, -(1 - sigmoid(0.3)) / 2]))


# ----------------------------------------------------------------------------- rank content

# Two images, constant per image, so the stand-in Rankers' scores are known: mean 0.2 and -0.7.
IMAGE_MEANS = (0.2, -0.7)


def sr_batch() -> torch.Tensor:
    return torch.stack([torch.full((3, 4, 4), m) for m in IMAGE_MEANS])


class AffineRanker(nn.Module):
    """Stand-in Ranker: ``score = gain * mean(image) + offset``; counts its calls."""

    def __init__(self, gain: float, offset: float) -> None:
        super().__init__()
        self.gain, self.offset = gain, offset
        self.param = nn.Parameter(torch.ones(()))  # to check that freezing reaches parameters
        self.calls = 0
        self.frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.param * (self.gain * x.mean(dim=(1, 2, 3)) + self.offset)

    def freeze(self) -> AffineRanker:
        self.requires_grad_(False)
        self.frozen = True
        return self.eval()

    def scores(self) -> list[float]:
        return [self.gain * m + self.offset for m in IMAGE_MEANS]


FUNCTIONS = {"sigmoid": sigmoid, "exp": math.exp, "identity": lambda s: s}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_monotonic_functions(name):
    x = torch.tensor([-1.5, 0.0, 0.7], dtype=torch.float64)
    got = MONOTONIC_FUNCTIONS[name](x)
    assert np.allclose(got.numpy(), [FUNCTIONS[name](v) for v in x.tolist()], rtol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_rank_loss_single_ranker(name, reduction):
    ranker = AffineRanker(1.5, 0.4)  # scores 0.7 and -0.65
    loss = RankLoss(ranker, 0.5, "a", function=name, reduction=reduction)(sr_batch())
    values = [FUNCTIONS[name](s) for s in ranker.scores()]
    expected = sum(values) if reduction == "sum" else sum(values) / len(values)
    assert close(loss, expected, rel=1e-5)  # unweighted


def test_rank_loss_sum_scales_with_the_batch_and_mean_does_not():
    x = sr_batch()
    doubled = torch.cat([x, x])
    for reduction, factor in (("sum", 2.0), ("mean", 1.0)):
        loss = RankLoss(AffineRanker(1.5, 0.4), 1.0, reduction=reduction)
        assert math.isclose(float(loss(doubled)), factor * float(loss(x)), rel_tol=1e-6), reduction


def test_rank_loss_gradient_pushes_scores_down():
    # d/dx sum sigmoid(g * mean(x) + o) = sigmoid' * g / numel(image), per pixel of each image
    gain, offset = 1.5, 0.4
    ranker = AffineRanker(gain, offset)
    sr = sr_batch().requires_grad_(True)
    RankLoss(ranker, 2.0)(sr).backward()
    for i, s in enumerate(ranker.scores()):
        slope = sigmoid(s) * (1 - sigmoid(s)) * gain / 48
        assert torch.allclose(sr.grad[i], torch.full((3, 4, 4), slope)), i
    assert ranker.param.grad is None


def test_rank_loss_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank function"):
        RankLoss(AffineRanker(1, 0), 1.0, function="tanh")
    with pytest.raises(ValueError, match="reduction"):
        RankLoss(AffineRanker(1, 0), 1.0, reduction="max")
    with pytest.raises(ValueError, match="rank floor must be null or 'hr'"):
        RankLoss(AffineRanker(1, 0), 1.0, floor="lr")


def test_rank_loss_keeps_any_ranker_in_eval_mode():
    # The stand-in has no eval pin of its own: RankLoss itself must keep it in eval mode.
    rankers = [AffineRanker(1.0, 0.0), AffineRanker(2.0, 0.0)]
    losses = nn.ModuleList([RankLoss(r, 1.0) for r in rankers])
    assert all(r.frozen and not r.training for r in rankers)
    losses.train()
    assert all(loss.training for loss in losses) and not any(r.training for r in rankers)
    nn.Sequential(losses).train()  # also when a parent module switches to training mode
    assert not any(r.training for r in rankers)


def test_real_rankers_stay_frozen_in_eval_and_pass_gradients_to_sr():
    torch.manual_seed(0)
    rankers = [Ranker("vgg8", num_features=2), Ranker("vgg8", num_features=2)]
    for r in rankers:  # non-trivial BatchNorm statistics, so train-mode BN would change the scores
        for m in r.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        scores = [r.eval()(x) for r in rankers]
    stats = [{k: v.clone() for k, v in r.state_dict().items()} for r in rankers]

    losses = nn.ModuleList([RankLoss(r, w, function="exp", reduction="mean") for r, w in zip(rankers, (0.25, 4.0))])
    losses.train()
    assert not any(r.training for r in rankers)
    assert all(not p.requires_grad for r in rankers for p in r.parameters())

    sr = x.clone().requires_grad_(True)
    terms = [loss(sr) for loss in losses]
    expected = [float(torch.exp(s.double()).mean()) for s in scores]
    for term, value in zip(terms, expected):
        assert close(term, value, rel=1e-5)

    (0.25 * terms[0] + 4.0 * terms[1]).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for r in rankers for p in r.parameters())
    for r, before in zip(rankers, stats):
        after = r.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items()), "Ranker state changed"


def test_rank_floor_hr_stops_the_reward_where_the_output_beats_hr():
    """``floor="hr"``: f(max(R(sr), R(hr))). Image 0 scores 0.7 against its HR's 0.4 (worse than HR):
    the plain gradient; image 1 scores -0.65 against 0.4 (better than HR): exactly zero."""
    gain, offset = 1.5, 0.4
    hr = torch.zeros(2, 3, 4, 4)  # both HR patches score 0.4
    grads = {}
    for floor in (None, "hr"):
        sr = sr_batch().requires_grad_(True)
        loss = RankLoss(AffineRanker(gain, offset), 1.0, function="sigmoid", reduction="sum", floor=floor)(sr, hr)
        loss.backward()
        grads[floor] = sr.grad
        expected = sigmoid(0.7) + (sigmoid(-0.65) if floor is None else sigmoid(0.4))
        assert close(loss, expected, rel=1e-6), floor
    slope = sigmoid(0.7) * (1 - sigmoid(0.7)) * gain / 48
    assert torch.allclose(grads["hr"][0], torch.full((3, 4, 4), slope), rtol=1e-6, atol=0)
    assert torch.equal(grads["hr"][0], grads[None][0])
    assert torch.equal(grads["hr"][1], torch.zeros(3, 4, 4))
    assert grads[None][1].abs().min() > 0
    with pytest.raises(ValueError, match="floor='hr' needs the HR images"):
        RankLoss(AffineRanker(gain, offset), 1.0, floor="hr")(sr_batch())


class PhaseRanker(nn.Module):
    """Stand-in for a strided Ranker: it scores only the pixels at even rows and columns, so its
    input gradient is locked to its own 2-px grid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., ::2, ::2].mean(dim=(1, 2, 3))

    def freeze(self) -> PhaseRanker:
        return self.requires_grad_(False).eval()


def test_jitter_crop_takes_each_image_and_its_hr_at_the_same_offset():
    x = torch.arange(2 * 25.0).reshape(2, 1, 5, 5)
    sr, hr = jitter_crop(x, x + 100, 2, torch.tensor([[0, 1], [2, 0]]))
    assert sr.shape == hr.shape == (2, 1, 3, 3)
    assert sr[0, 0].tolist() == [[1.0, 2.0, 3.0], [6.0, 7.0, 8.0], [11.0, 12.0, 13.0]]
    assert sr[1, 0, 0].tolist() == [35.0, 36.0, 37.0]  # image 1 (25..49) from row 2, column 0
    assert torch.equal(hr, sr + 100)
    torch.manual_seed(0)
    drawn, _ = jitter_crop(x, None, 2)
    assert drawn.shape == (2, 1, 3, 3)


def test_rank_jitter_spreads_a_grid_locked_gradient_over_every_phase():
    """Without jitter a Ranker that sees only even pixels pushes only those, in every image (a
    2-px dot grid); with jitter=1 the 32 images' offsets reach all four phases."""
    sr = torch.full((32, 3, 8, 8), 0.5)
    phases = {}
    for jitter in (0, 1):
        torch.manual_seed(0)
        x = sr.clone().requires_grad_(True)
        RankLoss(PhaseRanker(), 1.0, function="identity", reduction="sum", jitter=jitter)(x).backward()
        g = x.grad.sum(dim=(0, 1))
        phases[jitter] = [float(g[dy::2, dx::2].sum()) for dy in (0, 1) for dx in (0, 1)]
        assert math.isclose(float(x.grad.sum()), 32.0, rel_tol=1e-5)  # each image's score has gradient sum 1
    assert phases[0][0] == pytest.approx(32.0) and phases[0][1:] == [0.0, 0.0, 0.0]
    assert min(phases[1]) >= 1.0 and sum(phases[1]) == pytest.approx(32.0), phases[1]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="rank jitter must be an integer >= 0"):
            RankLoss(PhaseRanker(), 1.0, jitter=bad)


def test_base_recipe_writes_the_code_defaults_of_every_loss_option_it_lists():
    """conf/gan/srresnet.yaml lists the loss options (so that overrides need no "+"); their values
    are the defaults of the term signatures, the one place where the defaults are decided."""
    import inspect
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from ranksrgan.lit.sr_module import HR_ALARM_MARGIN, SRModule
    from ranksrgan.losses import build_perceptual_loss

    def defaults(fn):
        return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        module = compose(config_name="config", overrides=["gan=srresnet"]).gan.module
    sections = {
        "pixel": defaults(PixelLoss),
        "perceptual": defaults(build_perceptual_loss),
        "gan": defaults(GANLoss),
        "rank": {**defaults(RankLoss), "hr_alarm_margin": HR_ALARM_MARGIN},
    }
    for section, code in sections.items():
        for key, value in module[section].items():
            if key != "weight":  # the recipe's choice (srresnet: pixel only)
                assert value == code[key], f"{section}.{key}: yaml {value!r}, code {code[key]!r}"
    assert set(module.rank) == {"function", "reduction", "floor", "jitter", "hr_alarm_margin"}
    assert module.ema_decay == defaults(SRModule)["ema_decay"] == 0.0
