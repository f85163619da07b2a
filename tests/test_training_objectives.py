"""The training objectives of the Lightning modules, pinned by value.

* ``SRModule.generator_losses``: each term recomputed here from the returned SR image, and the
  total as the configured weighted sum;
* ``SRModule`` validation NIQE: the PIRM convention (Y channel, border crop = scale);
* ``RankerModule.pair_loss``: margin ranking with the score clamp, by hand;
* a short GAN run with a Ranker whose preference is known (brighter = worse) lowers that
  Ranker's scores compared with the same run without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ranksrgan.checkpoints import load_ranker
from ranksrgan.export import save_state_dict
from ranksrgan.lit.ranker_module import RankerModule
from ranksrgan.lit.sr_module import SRModule
from ranksrgan.losses import discriminator_loss
from ranksrgan.metrics import niqe
from ranksrgan.metrics.niqe import release_work_buffers
from ranksrgan.nets import Ranker

SCALE = 2
TINY_G = {"name": "SRResNet", "kwargs": {"num_features": 4, "num_blocks": 1, "scale": SCALE}}
TINY_D = {"name": "VGGDiscriminator", "kwargs": {"num_features": 4, "input_size": 32}}
WEIGHTS = {"pixel": 0.7, "perceptual": 1.3, "gan": 0.25, "a": 0.03, "b": 0.6}


@pytest.fixture(scope="module")
def ranker_files(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("rankers")
    paths = []
    for seed in (3, 4, 5):
        torch.manual_seed(seed)
        paths.append(str(save_state_dict(Ranker("vgg8", num_features=2), folder / f"r{seed}.pth")))
    return paths


def tiny_module(ranker_files, kind="vanilla", function="sigmoid", reduction="sum", rank_weights=None, **overrides):
    a, b = rank_weights if rank_weights is not None else (WEIGHTS["a"], WEIGHTS["b"])
    kwargs = dict(
        generator=TINY_G,
        scale=SCALE,
        pixel={"weight": WEIGHTS["pixel"], "criterion": "l1"},
        perceptual={"weight": WEIGHTS["perceptual"], "layer": "conv1_2", "criterion": "l1", "pretrained": False},
        gan={"weight": WEIGHTS["gan"], "kind": kind},
        discriminator=TINY_D,
        rank={"function": function, "reduction": reduction},
        rankers=[
            {"name": "a", "checkpoint": ranker_files[0], "weight": a},
            {"name": "b", "checkpoint": ranker_files[1], "weight": b},
        ],
        num_logged_images=0,
    )
    kwargs.update(overrides)
    torch.manual_seed(0)
    return SRModule(**kwargs)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def softplus(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(x))


# ----------------------------------------------------------------------------- generator total

RANK_F = {"sigmoid": lambda s: 1 / (1 + np.exp(-s)), "exp": np.exp, "identity": lambda s: s}


@pytest.mark.parametrize(
    "kind,function,reduction", [("vanilla", "sigmoid", "sum"), ("ragan", "exp", "mean"), ("vanilla", "identity", "mean")]
)
def test_generator_total_is_the_weighted_sum_of_independent_terms(ranker_files, kind, function, reduction):
    module = tiny_module(ranker_files, kind=kind, function=function, reduction=reduction)
    torch.manual_seed(1)
    lr, hr = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 32, 32)
    total, terms, sr = module.generator_losses(lr, hr)
    assert set(terms) == {"pixel", "perceptual", "gan", "rank/a", "rank/b", "total"}
    sr = sr.detach()

    expected = {"pixel": np.mean(np.abs(_np(sr) - _np(hr)))}
    extractor = module.losses["perceptual"].extractor
    with torch.no_grad():
        expected["perceptual"] = np.mean(np.abs(_np(extractor(sr)) - _np(extractor(hr))))
        fake = _np(module.discriminator(sr)).ravel()
        real = _np(module.discriminator(hr)).ravel()
        scores = [_np(loss.ranker(sr)).ravel() for loss in module.rank_losses()]
    if kind == "vanilla":
        expected["gan"] = np.mean(softplus(-fake))  # BCE(D(G(x)), real)
    else:
        real_rel, fake_rel = real - fake.mean(), fake - real.mean()
        expected["gan"] = 0.5 * (np.mean(softplus(real_rel)) + np.mean(softplus(-fake_rel)))
    reduce = np.sum if reduction == "sum" else np.mean
    expected["rank/a"], expected["rank/b"] = (reduce(RANK_F[function](s)) for s in scores)

    for name, value in expected.items():
        assert math.isclose(float(terms[name].detach()), value, rel_tol=1e-5), name
    weighted = (
        WEIGHTS["pixel"] * expected["pixel"]
        + WEIGHTS["perceptual"] * expected["perceptual"]
        + WEIGHTS["gan"] * expected["gan"]
        + WEIGHTS["a"] * expected["rank/a"]
        + WEIGHTS["b"] * expected["rank/b"]
    )
    assert math.isclose(float(total), weighted, rel_tol=1e-5)
    assert float(terms["total"]) == float(total)


def test_generator_total_skips_a_weight_zero_ranker(ranker_files):
    module = tiny_module(ranker_files, rank_weights=(0.0, 0.6))
    torch.manual_seed(1)
    lr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32)
    total, terms, _ = module.generator_losses(lr, hr)
    assert "rank/a" not in terms and "rank/b" in terms
    rest = sum(WEIGHTS[k] * float(terms[k]) for k in ("pixel", "perceptual", "gan"))
    assert math.isclose(float(total), rest + 0.6 * float(terms["rank/b"]), rel_tol=1e-5)


def test_generator_losses_leave_rankers_and_discriminator_without_gradients(ranker_files):
    module = tiny_module(ranker_files)
    module.train()
    torch.manual_seed(1)
    total, _, _ = module.generator_losses(torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32))
    total.backward()
    assert all(p.grad is not None for p in module.generator.parameters())
    assert all(p.grad is None for p in module.discriminator.parameters())
    assert all(p.grad is None for loss in module.rank_losses() for p in loss.parameters())
    assert not any(loss.ranker.training for loss in module.rank_losses())


# ----------------------------------------------------------------------------- validation NIQE


def test_validation_niqe_is_pirm_y_with_scale_crop(ranker_files, demo_rgb, tmp_path):
    module = tiny_module(ranker_files, rankers=[], gan={"weight": 0.0}, perceptual={"weight": 0.0})
    module.generator = nn.Upsample(scale_factor=SCALE, mode="nearest")  # a known SR image
    image = torch.from_numpy(demo_rgb).permute(2, 0, 1).float() / 255
    lr = image[:, :52, :100].unsqueeze(0)  # SR 104×200: two 96² NIQE blocks with or without the crop
    sr = F.interpolate(lr, scale_factor=SCALE, mode="nearest")
    batch = {"lr": lr[0], "hr": sr[0], "name": "astronaut"}

    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path)
    )
    try:
        logged = trainer.validate(module, dataloaders=DataLoader([batch], batch_size=1), verbose=False)[0]
        # Lightning validates under inference mode, where NIQE's cached scratch arrays become
        # inference tensors: score under the same mode, and drop the cache afterwards.
        with torch.inference_mode():
            scores = {(c, k): float(niqe(sr, color=c, crop_border=k)) for c in ("y", "gray") for k in (0, SCALE)}
    finally:
        release_work_buffers()

    pirm = scores["y", SCALE]
    assert math.isclose(logged["val/niqe"], pirm, rel_tol=1e-5)
    # Each other convention gives a clearly different value on this image.
    for convention, other in scores.items():
        if convention != ("y", SCALE):
            assert abs(other - pirm) > 1e-3 * pirm, convention


# ----------------------------------------------------------------------------- Ranker margin loss


class FirstPixel(nn.Module):
    """Stand-in Ranker: the score of an image is its top-left red value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, 0, 0]


def _pairs(s1, s2, target) -> dict[str, torch.Tensor]:
    def images(scores):
        out = torch.zeros(len(scores), 3, 4, 4)
        out[:, 0, 0, 0] = torch.tensor(scores)
        return out

    return {"img1": images(s1), "img2": images(s2), "target": torch.tensor(target)}


# A: separated beyond the margin (and s1 above the clamp); B: the clamp is active (unclamped it
# would be separated, clamped it is inside the margin); C: the margin is active (right order,
# too close); D: wrong order.
PAIRS = _pairs([7.0, -7.0, 1.2, 0.0], [1.0, -4.8, 1.0, 1.0], [1.0, -1.0, 1.0, 1.0])


def ranker_module(**kw) -> RankerModule:
    module = RankerModule(variant="vgg8", num_features=1, **kw)
    module.ranker = FirstPixel()
    return module


@pytest.mark.parametrize(
    "margin,clamp,expected",
    [
        # per pair max(0, -t (c(s1) - c(s2)) + margin), c = clamp to [-5, 5]
        (0.5, 5.0, (0.0 + 0.3 + 0.3 + 1.5) / 4),  # the defaults
        (0.5, None, (0.0 + 0.0 + 0.3 + 1.5) / 4),  # B unclamped: -2.2 + 0.5 < 0
        (0.0, 5.0, (0.0 + 0.0 + 0.0 + 1.0) / 4),  # no margin: only D counts
        (1.0, 5.0, (0.0 + 0.8 + 0.8 + 2.0) / 4),  # A: -4 + 1 < 0 still
    ],
)
def test_margin_ranking_loss_by_hand(margin, clamp, expected):
    loss, s1, s2 = ranker_module(margin=margin, score_clamp=clamp).pair_loss(PAIRS)
    assert math.isclose(float(loss), expected, rel_tol=1e-6, abs_tol=1e-7)
    if clamp is not None:
        assert s1.tolist() == [5.0, -5.0, pytest.approx(1.2), 0.0] and s2.tolist() == [1.0, pytest.approx(-4.8), 1.0, 1.0]


def test_defaults_are_the_papers_margin_and_the_authors_clamp():
    module = RankerModule(variant="vgg8", num_features=1)
    assert module.hparams.margin == 0.5 and module.hparams.score_clamp == 5.0 and module.hparams.loss == "margin"


def test_regression_ranker_loss_by_hand():
    batch = _pairs([1.0, 2.0], [3.0, -1.0], [1.0, 1.0]) | {
        "value1": torch.tensor([0.0, 4.0]),
        "value2": torch.tensor([3.0, 1.0]),
    }
    loss, _, _ = ranker_module(loss="mse").pair_loss(batch)
    # mse1 = (1 + 4) / 2, mse2 = (0 + 4) / 2, loss = (2.5 + 2) / 2 (no clamp for the regression loss)
    assert math.isclose(float(loss), 2.25, rel_tol=1e-6)


@pytest.mark.filterwarnings("ignore:.*reference is not registered")
def test_training_step_returns_the_pair_loss():
    module = ranker_module()
    loss = module.training_step(PAIRS, 0)
    assert math.isclose(float(loss), 0.525, rel_tol=1e-6)


# ----------------------------------------------------------------------------- a short GAN run


def brightness_ranker() -> Ranker:
    """A real (tiny) Ranker whose score is a positive combination of the pixel values: the
    brighter the image, the higher (worse) the score."""
    ranker = Ranker("vgg8", num_features=1)
    with torch.no_grad():
        for p in ranker.parameters():
            p.zero_()
        ranker.conv0_0.weight[0, :, 1, 1] = 1 / 3  # channel 0 = mean of R, G, B
        for tag, _ in ranker.layers[1:]:
            getattr(ranker, f"conv{tag}").weight[0, 0] = 1 / 16  # 4x4 box average of channel 0
        for m in ranker.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
        ranker.classifier[0].weight[0, 0] = 10.0  # a mid-grey 32² image scores about 0.56
        ranker.classifier[2].weight[0, 0] = 1.0
    return ranker.eval()


def _train(module: SRModule, lr: torch.Tensor, hr: torch.Tensor, iterations: int) -> None:
    (opt_g, opt_d), _ = module.configure_optimizers()
    module.train()
    for _ in range(iterations):
        loss, _, sr = module.generator_losses(lr, hr)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        d_loss = discriminator_loss(module.discriminator(hr), module.discriminator(sr.detach()), module.gan_loss.kind)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()


def test_short_gan_run_with_a_ranker_lowers_its_scores(tmp_path):
    ranker = brightness_ranker()
    with torch.no_grad():
        dark, bright = ranker(torch.full((1, 3, 32, 32), 0.2)), ranker(torch.full((1, 3, 32, 32), 0.8))
    assert float(bright) > float(dark) > 0  # the known preference: brighter scores worse
    path = str(save_state_dict(ranker, tmp_path / "brightness.pth"))

    torch.manual_seed(7)
    hr = F.interpolate(torch.rand(4, 3, 8, 8), size=32, mode="bilinear", align_corners=False)
    lr = F.avg_pool2d(hr, SCALE)

    means = {}
    for weight in (0.0, 1.0):
        module = tiny_module(
            [path, path],
            rankers=[{"name": "brightness", "checkpoint": path, "weight": weight}],
            pixel={"weight": 1.0, "criterion": "l1"},
            perceptual={"weight": 1.0, "layer": "conv1_2", "pretrained": False},
            gan={"weight": 0.005, "kind": "vanilla"},
            optimizer={"lr": 2e-3},
        )
        with torch.no_grad():  # start about as bright as HR, as a pre-trained generator would
            module.generator.conv_last.bias.fill_(0.5)
        torch.manual_seed(8)
        _train(module, lr, hr, iterations=30)
        with torch.no_grad():
            means[weight] = float(load_ranker(path)(module.generator(lr)).mean())
    # Without the Ranker the outputs stay near HR's score; with it the score drops (darker outputs).
    assert abs(means[0.0] - float(load_ranker(path)(hr).mean())) < 0.05, means
    assert means[1.0] < means[0.0] - 0.05, means


# ----------------------------------------------------------------------------- the demo config


def test_demo_config_losses_total_by_hand(tmp_path):
    """The loss terms built from ``experiment=demo`` (pixel L1 1, vanilla GAN 0.005, Rankers blur and
    interp at the recipe's weight, sigmoid, batch mean), and the module's weighted total recomputed
    here from the returned SR image."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=demo"])
    module_cfg = OmegaConf.to_container(cfg.gan.module, resolve=True)
    for key in ("_target_", "_convert_"):
        module_cfg.pop(key)
    module_cfg["generator"]["kwargs"].update(num_features=4, num_blocks=1)
    module_cfg["discriminator"]["kwargs"].update(num_features=4)
    rankers = []
    for i, entry in enumerate(cfg.gan.rankers):
        torch.manual_seed(20 + i)
        path = save_state_dict(Ranker("vgg8", num_features=2), tmp_path / f"{entry.name}.pth")
        rankers.append({"name": entry.name, "checkpoint": str(path), "weight": float(entry.weight)})
    torch.manual_seed(0)
    module = SRModule(**module_cfg, rankers=rankers)
    assert list(module.losses) == ["pixel", "gan", "rank/blur", "rank/interp"]
    assert module.term_weights() == {"pixel": 1.0, "gan": 0.005, "rank/blur": 0.03, "rank/interp": 0.03}

    torch.manual_seed(1)
    lr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 64, 64)
    total, terms, sr = module.generator_losses(lr, hr)
    sr = sr.detach()
    with torch.no_grad():
        fake = _np(module.discriminator(sr)).ravel()
        scores = [_np(load_ranker(r["checkpoint"])(sr)).ravel() for r in rankers]
    pixel = np.mean(np.abs(_np(sr) - _np(hr)))
    gan = np.mean(softplus(-fake))
    rank = [np.mean(1 / (1 + np.exp(-s))) for s in scores]
    assert math.isclose(float(total), pixel + 0.005 * gan + 0.03 * rank[0] + 0.03 * rank[1], rel_tol=1e-5)
    for name, value in {"pixel": pixel, "gan": gan, "rank/blur": rank[0], "rank/interp": rank[1]}.items():
        assert math.isclose(float(terms[name].detach()), value, rel_tol=1e-5), name
