"""RankerModule: loss polarity, validation metrics, checkpoints, a tiny blur Ranker that learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from ranksrgan.data.demo import demo_image
from ranksrgan.data.rank.distortion import DistortionRankDataModule
from ranksrgan.io import to_tensor, write_image
from ranksrgan.lit.ranker_module import RankerModule, pair_accuracy

TINY = dict(variant="vgg8", num_features=8)


def _trainer(tmp_path, **kw) -> pl.Trainer:
    args = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    args.update(kw)
    return pl.Trainer(**args)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets train faster on one thread (and avoid thread oversubscription on shared CI cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hr_dirs(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("hr")
    for split, names in (("train", ("astronaut", "rocket", "motorcycle_left")), ("val", ("coffee", "chelsea"))):
        (root / split).mkdir()
        for name in names:
            img = demo_image(name)
            h, w = img.shape[:2]
            crop = img[h // 2 - 96 : h // 2 + 96, w // 2 - 96 : w // 2 + 96]
            write_image(root / split / f"{name}.png", to_tensor(np.ascontiguousarray(crop)))
    return str(root / "train"), str(root / "val")


def test_margin_loss_polarity_higher_score_is_worse():
    m = RankerModule(**TINY)
    x = torch.rand(2, 3, 32, 32)
    batch = {"img1": x, "img2": x.flip(0), "target": torch.tensor([1.0, -1.0])}
    with torch.no_grad():
        loss, s1, s2 = m.pair_loss(batch)
    # target +1: img1 worse, should score higher -> loss = max(0, -(s1 - s2) + 0.5)
    expected = torch.clamp(torch.stack([-(s1[0] - s2[0]), (s1[1] - s2[1])]) + 0.5, min=0).mean()
    assert torch.allclose(loss, expected)
    assert torch.allclose(loss, F.margin_ranking_loss(s1, s2, batch["target"], margin=0.5))
    mse = RankerModule(loss="mse", **TINY)
    mse.ranker.load_state_dict(m.ranker.state_dict())
    vals = {"value1": torch.tensor([1.0, 2.0]), "value2": torch.tensor([3.0, 4.0])}
    with torch.no_grad():
        l2, a, b = mse.pair_loss(batch | vals)
    assert torch.allclose(l2, 0.5 * (F.mse_loss(a, vals["value1"]) + F.mse_loss(b, vals["value2"])))
    with pytest.raises(ValueError, match="loss"):
        RankerModule(loss="hinge", **TINY)


def test_score_clamp_matches_the_original():
    m = RankerModule(score_clamp=5.0, **TINY)
    m.ranker.classifier[2].bias.data.fill_(100.0)  # every score far above the clamp
    batch = {"img1": torch.rand(2, 3, 32, 32), "img2": torch.rand(2, 3, 32, 32), "target": torch.ones(2)}
    loss, s1, s2 = m.pair_loss(batch)
    assert torch.all(s1 == 5.0) and torch.all(s2 == 5.0) and torch.isclose(loss, torch.tensor(0.5))


def test_pair_accuracy_per_level_pair():
    scores = torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    levels = torch.tensor([[0, 1, 2], [2, 1, 0], [0, 1, 2]])
    acc = pair_accuracy(scores, levels)
    assert acc[(0, 1)] == 1.0 and acc[(0, 2)] == 1.0 and torch.isclose(acc[(1, 2)], torch.tensor(2 / 3))
    acc = pair_accuracy(torch.zeros(2, 3), levels[:2])
    assert all(v == 0 for v in acc.values())  # ties count as wrong


def _tiny_distortion_dm(kind: str, hr_dirs, val_windows: int) -> DistortionRankDataModule:
    """Blur or noise pairs from the first HR folder, validation on the second; 8 patches of 48²."""
    return DistortionRankDataModule(
        kind,
        [hr_dirs[0]],
        [hr_dirs[1]],
        patch_size=48,
        batch_size=4,
        num_workers=0,
        patches_per_epoch=8,
        val_windows_per_image=val_windows,
    )


def test_fast_dev_run_logs_validation_metrics(tmp_path, hr_dirs):
    dm = _tiny_distortion_dm("blur", hr_dirs, val_windows=2)
    module = RankerModule(**TINY)
    trainer = _trainer(tmp_path, fast_dev_run=2)
    trainer.fit(module, datamodule=dm)
    keys = set(trainer.callback_metrics)
    assert {
        "train/loss",
        "val/srocc",
        "val/pair_acc",
        "val/pair_acc/0-1",
        "val/pair_acc/0-2",
        "val/pair_acc/1-2",
        "val/score_mean/0",
        "val/score_std/2",
    } <= keys
    assert -1 <= float(trainer.callback_metrics["val/srocc"]) <= 1


def test_checkpoint_loads_with_weights_only_and_load_ranker(tmp_path, hr_dirs):
    from ranksrgan.checkpoints import load_ranker

    dm = _tiny_distortion_dm("noise", hr_dirs, val_windows=1)
    module = RankerModule(lr_step=3, **TINY)
    trainer = _trainer(
        tmp_path, max_steps=2, limit_val_batches=1, val_check_interval=2, check_val_every_n_epoch=None, enable_checkpointing=True
    )
    trainer.fit(module, datamodule=dm)
    path = tmp_path / "ranker.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["ranksrgan_arch"]["name"] == "Ranker"
    assert ckpt["hyper_parameters"]["num_features"] == 8 and ckpt["hyper_parameters"]["betas"] == [0.9, 0.999]
    ranker = load_ranker(path)
    x = torch.rand(2, 3, 40, 40)
    module.eval()
    with torch.no_grad():
        assert torch.allclose(ranker(x), module(x), atol=1e-6)
    restored = RankerModule.load_from_checkpoint(path, weights_only=True)
    assert restored.hparams.variant == "vgg8"


def _train_blur(tmp_path, train_hr: str, val_hr: str, steps: int) -> dict[str, float]:
    pl.seed_everything(0, workers=True)
    dm = DistortionRankDataModule(
        "blur",
        [train_hr],
        [val_hr],
        patch_size=48,
        batch_size=8,
        num_workers=0,
        patches_per_epoch=10_000,
        val_windows_per_image=16,
        min_sharpness=5.0,
        seed=0,
    )
    module = RankerModule(variant="vgg8", num_features=8, lr=1e-3, lr_step=300)
    trainer = _trainer(tmp_path, max_steps=steps, val_check_interval=steps, check_val_every_n_epoch=None)
    trainer.fit(module, datamodule=dm)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_tiny_blur_ranker_learns_the_order_within_a_location(tmp_path, hr_dirs):
    metrics = _train_blur(tmp_path, hr_dirs[0], hr_dirs[1], steps=40)
    assert metrics["val/pair_acc"] >= 0.75


@pytest.mark.slow
def test_tiny_blur_ranker_reaches_srocc_on_the_demo_images(tmp_path, demo_root):
    # the whole demo train set: enough content variety for scores comparable ACROSS images
    metrics = _train_blur(tmp_path, str(demo_root / "train" / "HR"), str(demo_root / "val" / "HR"), steps=500)
    assert metrics["val/pair_acc"] >= 0.95
    assert metrics["val/srocc"] >= 0.6


@pytest.mark.parametrize("family", ["blur", "noise", "interp", "sr"])
def test_ranker_configs_compose_and_instantiate(tmp_path, family, constructor_keywords):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[1] / "conf"
    overrides = [f"ranker={family}", f"paths.root={tmp_path}", "ranker.module.variant=vgg8", "ranker.module.num_features=8"]
    if family == "sr":
        overrides += [f"ranker.datamodule.labels={tmp_path / 'labels.csv'}", "ranker.datamodule.metric={niqe: 1.0, rmse: 0.4}"]
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    section = cfg.ranker
    assert set(section) == {"name", "max_steps", "val_check_interval", "monitor", "datamodule", "module"}
    assert section.name == family and section.monitor == "val/srocc"
    dm = instantiate(section.datamodule)
    module = instantiate(section.module)
    assert isinstance(module, RankerModule)
    # every datamodule / module key is a constructor argument (no dead keys)

    for node, obj in ((section.datamodule, type(dm)), (section.module, RankerModule)):
        assert set(OmegaConf.to_container(node)) - {"_target_"} <= constructor_keywords(obj)
    if family == "sr":
        assert dm.metric == {"niqe": 1.0, "rmse": 0.4}
    # hyperparameters are plain containers (weights_only checkpoints)
    assert all(isinstance(v, (int, float, str, list, type(None))) for v in module.hparams.values())
