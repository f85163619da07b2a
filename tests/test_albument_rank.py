"""albumentations degradation families: fixed levels, seeded randomness, batches, configs, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ranksrgan.data.demo import demo_image
from ranksrgan.data.rank import apply_flips
from ranksrgan.data.rank.degradations import AlbumentationsRankDataModule, Degradation
from ranksrgan.io import to_tensor, write_image
from ranksrgan.metrics.fidelity import psnr_rgb

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ["jpeg", "downscale", "motion", "sensor"]


@pytest.fixture(scope="module")
def patch() -> np.ndarray:
    return demo_image("astronaut")[100:196, 150:246].copy()


@pytest.fixture(scope="module")
def hr_split(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("albument_hr")
    for split, names in (("train", ("astronaut", "rocket")), ("val", ("coffee",))):
        (root / split).mkdir()
        for name in names:
            img = demo_image(name)
            h, w = img.shape[:2]
            crop = np.ascontiguousarray(img[h // 2 - 48 : h // 2 + 48, w // 2 - 48 : w // 2 + 48])
            write_image(root / split / f"{name}.png", to_tensor(crop))
    return str(root / "train"), str(root / "val")


def _config(family: str, *extra: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"ranker={family}", *extra])


def _degradation(family: str) -> Degradation:
    c = _config(family).ranker.datamodule
    return Degradation(c.transform, c.levels, c.get("param"), c.get("fixed"), c.get("values"))


@pytest.mark.parametrize("family", FAMILIES)
def test_levels_are_fixed_seeded_and_ordered(family, patch):
    d = _degradation(family)
    hr = to_tensor(patch).unsqueeze(0)
    psnrs = []
    for k in range(len(d)):
        a, b = d(patch, k, seed=5), d(patch, k, seed=5)
        assert a.dtype == np.uint8 and a.shape == patch.shape
        assert np.array_equal(a, b)  # the same item, level and seed: the same image
        psnrs.append(float(psnr_rgb(to_tensor(a).unsqueeze(0), hr)[0]))
    # best first: every level is further from the clean patch than the one before
    assert all(q < p for p, q in zip(psnrs, psnrs[1:])), psnrs
    assert list(d.values) == sorted(d.values)


def test_random_parameters_come_from_the_seed(patch):
    d = _degradation("motion")
    assert d.levels[0] is None and np.array_equal(d(patch, 0, 1), patch)  # null = the clean image
    outs = [d(patch, 3, seed) for seed in range(4)]  # the direction of the motion differs
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])
    assert np.array_equal(d(patch, 3, 2), outs[2])
    # the levels of one item share the random draws (one direction): longer kernels, further from HR
    hr = to_tensor(patch).unsqueeze(0)
    for seed in range(3):
        psnrs = [float(psnr_rgb(to_tensor(d(patch, k, seed)).unsqueeze(0), hr)[0]) for k in range(1, len(d))]
        assert psnrs == sorted(psnrs, reverse=True), (seed, psnrs)


def test_numeric_and_mapping_levels_and_errors(patch):
    by_param = Degradation("ImageCompression", [80, 20], param="quality_range")
    by_kwargs = Degradation("albumentations.ImageCompression", [{"quality_range": [80, 80]}, {"quality_range": [20, 20]}])
    assert np.array_equal(by_param(patch, 1, 0), by_kwargs(patch, 1, 0))
    assert by_param.values == [0.0, 1.0]
    with pytest.raises(ValueError, match="no such albumentations transform"):
        Degradation("NoSuchTransform", [1, 2], param="x")
    with pytest.raises(ValueError, match="at least two levels"):
        Degradation("ImageCompression", [50], param="quality_range")
    with pytest.raises(ValueError, match="must all differ"):
        Degradation("ImageCompression", [50, 50], param="quality_range")
    with pytest.raises(ValueError, match="needs `param`"):
        Degradation("ImageCompression", [50, 10])
    with pytest.raises(ValueError, match="strictly increasing"):
        Degradation("ImageCompression", [50, 10], param="quality_range", values=[2, 1])
    with pytest.raises(ValueError) as err:
        Degradation("ImageCompression", [150, 10], param="quality_range")
    assert "\n" not in str(err.value) and "ImageCompression" in str(err.value)


def _dm(hr_split, family: str = "jpeg", **kw) -> AlbumentationsRankDataModule:
    c = _config(family).ranker.datamodule
    args = dict(patch_size=32, batch_size=4, num_workers=0, patches_per_epoch=8, val_windows_per_image=3, seed=3)
    args.update(kw)
    return AlbumentationsRankDataModule(
        c.transform,
        c.levels,
        [hr_split[0]],
        [hr_split[1]],
        param=c.get("param"),
        fixed=c.get("fixed"),
        values=c.get("values"),
        **args,
    )


def test_batches_follow_the_rank_formats_and_validation_is_reproducible(hr_split):
    dm = _dm(hr_split)
    dm.setup("fit")
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["img1"].shape == batch["img2"].shape == (4, 3, 32, 32)
    assert batch["img1"].dtype == torch.float32
    assert torch.equal(batch["target"], torch.where(batch["level1"] > batch["level2"], 1.0, -1.0))
    assert (batch["level1"] != batch["level2"]).all()
    values = torch.tensor(dm.degradation.values)
    assert torch.allclose(batch["value1"], values[batch["level1"]].float())
    # 8-bit images, as stored degraded files would be
    assert torch.allclose(batch["img1"] * 255, (batch["img1"] * 255).round(), atol=1e-4)

    val = next(iter(dm.val_dataloader()))
    assert val["images"].shape == (3, 4, 3, 32, 32) and val["levels"].tolist() == [[0, 1, 2, 3]] * 3
    other = _dm(hr_split)
    other.setup("fit")
    torch.manual_seed(123)  # validation does not depend on the global RNG
    assert torch.equal(next(iter(other.val_dataloader()))["images"], val["images"])
    # a worker process makes the same validation images as the main process
    loader = DataLoader(other.val_set, batch_size=3, num_workers=1)
    assert torch.equal(next(iter(loader))["images"], val["images"])


def test_training_pairs_are_seeded_and_share_one_geometry(hr_split, monkeypatch):
    dm = _dm(hr_split, "sensor")
    dm.setup("fit")
    torch.manual_seed(7)
    a = dm.train_set[0]
    torch.manual_seed(7)
    b = dm.train_set[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a sampler key (index, item seed) gives the same item whatever the global RNG
    c, d = dm.train_set[(0, 99)], (torch.manual_seed(1), dm.train_set[(0, 99)])[1]
    assert all(torch.equal(c[k], d[k]) for k in c)
    # the flips are drawn once (by the HR-folder base) and applied to the clean patch: both levels have the same geometry
    flips = (True, False, True)
    monkeypatch.setattr("ranksrgan.data.rank.hr_folder.random_flips", lambda gen: flips)
    monkeypatch.setattr("ranksrgan.data.rank.hr_folder.random_window", lambda img, p, s, generator: (0, 0))
    monkeypatch.setattr("ranksrgan.data.rank.hr_folder.sample_level_pair", lambda n, gen: (0, 3))
    item = dm.train_set[0]
    clean = to_tensor(np.ascontiguousarray(dm.train_set.images[0][:32, :32]))
    assert torch.equal(item["img1"], apply_flips(clean, flips))  # level 0 of `sensor` is the clean patch
    assert float((item["img2"] - item["img1"]).abs().mean()) > 0.005


@pytest.mark.parametrize("family", FAMILIES)
def test_configs_instantiate_without_dead_keys(family, tmp_path, constructor_keywords):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = _config(family, f"paths.root={tmp_path}")
    assert cfg.ranker.name == family and cfg.ranker.monitor == "val/srocc"
    dm = instantiate(cfg.ranker.datamodule)
    assert isinstance(dm, AlbumentationsRankDataModule) and len(dm.degradation) == 4
    keywords = constructor_keywords(AlbumentationsRankDataModule)
    assert set(OmegaConf.to_container(cfg.ranker.datamodule)) - {"_target_"} <= keywords


def test_recipes_name_their_rankers():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        rj = compose(config_name="config", overrides=["gan=rankrj"]).gan
        rbrj = compose(config_name="config", overrides=["gan=rankrbrj"]).gan
    assert [(r.name, r.weight) for r in rj.rankers] == [("jpeg", 0.03)]
    assert [(r.name, r.weight) for r in rbrj.rankers] == [("blur", 0.03), ("jpeg", 0.03)]


def test_train_py_ranker_jpeg_at_smoke_size(tmp_path):
    """``python train.py ranker=jpeg`` at the smoke experiment's sizes: the stage trains and is stored."""
    from hydra import compose, initialize_config_dir

    from ranksrgan import pipeline
    from ranksrgan.checkpoints import load_ranker

    overrides = [
        "ranker=jpeg",
        "data=demo",
        "trainer=cpu",
        "logger=csv",
        f"paths.root={tmp_path}",
        # the sizes of conf/experiment/smoke.yaml
        "ranker.max_steps=3",
        "ranker.val_check_interval=3",
        "ranker.datamodule.patch_size=32",
        "ranker.datamodule.batch_size=4",
        "ranker.datamodule.num_workers=0",
        "ranker.datamodule.val_windows_per_image=2",
        "ranker.module.variant=vgg8",
        "ranker.module.num_features=4",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        result = pipeline.run(cfg, overrides)
    assert [(s.kind, s.name) for s in result["all"]] == [("ranker", "jpeg")]
    ranker = load_ranker(result["stages"]["jpeg"])
    assert ranker(torch.rand(1, 3, 32, 32)).shape == (1,)


# the demo experiment's Ranker settings (conf/experiment/demo.yaml)
DEMO_RANKER = [
    "ranker.max_steps=1000",
    "ranker.val_check_interval=500",
    "ranker.datamodule.patch_size=64",
    "ranker.datamodule.batch_size=16",
    "ranker.datamodule.num_workers=0",
    "ranker.datamodule.min_sharpness=5.0",
    "ranker.datamodule.val_windows_per_image=16",
    "ranker.module.variant=vgg8",
    "ranker.module.num_features=16",
    "ranker.module.lr_step=400",
    "ranker.module.margin=2.0",
]


@pytest.mark.slow
def test_jpeg_ranker_orders_the_levels_of_the_demo_validation_images(tmp_path):
    """Demo size (~1.5 min on 2 cores): within-image pair accuracy 1.0 and SROCC 0.93 measured."""
    from hydra import compose, initialize_config_dir

    from ranksrgan import pipeline

    overrides = ["ranker=jpeg", "data=demo", "trainer=cpu", "logger=csv", f"paths.root={tmp_path}", *DEMO_RANKER]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        result = pipeline.run(cfg, overrides)
    assert result["metrics"]["val/pair_acc"] >= 0.9
    assert result["metrics"]["val/srocc"] >= 0.8


def test_a_new_family_is_a_few_lines_of_config(tmp_path, hr_split):
    """The documented example (a WebP Ranker, docs/rank-datasets.md) composes, instantiates and degrades."""
    import re
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    page = (REPO / "docs" / "rank-datasets.md").read_text(encoding="utf-8")
    example = re.search(r"`conf/ranker/webp.yaml`:\n\n```yaml\n(.*?)```", page, re.S).group(1)
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "ranker" / "webp.yaml").write_text(example)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["ranker=webp", f"paths.root={tmp_path}"])
    assert cfg.ranker.name == "webp" and cfg.ranker.module.variant == "vgg12"
    dm = instantiate(cfg.ranker.datamodule, train_hr=[hr_split[0]], val_hr=[hr_split[1]], patch_size=32, num_workers=0)
    dm.setup("fit")
    assert dm.val_set[0]["images"].shape == (4, 3, 32, 32)
