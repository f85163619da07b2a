"""The paper's experiment and where the run departs from it: the DF2K rank sets split by image,
the paper-versus-code options (noise levels, the Ranker's pair forward, the SR rank set's gap
filter), the dry run's estimate, and the list of non-paper choices."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from ranksrgan import pipeline
from ranksrgan.data.rank import image_names, split_by_image
from ranksrgan.data.rank.distortion import DistortionRankDataModule, distort, noise_std255
from ranksrgan.io import to_tensor, write_image
from ranksrgan.pipeline.departures import departures
from ranksrgan.pipeline.estimate import describe_estimate, estimate_stages

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _plan(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        return cfg, pipeline.Planner(cfg, overrides).plan()


def _pool(root: Path, counts: dict[str, int], size: int = 24) -> list[str]:
    """Folders of tiny distinct images: ``{folder name: image count}``."""
    rng = np.random.default_rng(0)
    folders = []
    for name, n in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            write_image(folder / f"{i:04d}.png", to_tensor(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
        folders.append(str(folder))
    return folders


def _paper_folders(root: Path, flickr: bool = True) -> None:
    """The folders data=df2k and experiment=fig22 name (empty: planning only fingerprints them)."""
    for sub in ("DIV2K/DIV2K_train_HR", "DIV2K/valid_0801-0850", "DIV2K/valid_0851-0900") + (
        ("Flickr2K/Flickr2K_HR",) if flickr else ()
    ):
        (root / "data" / sub).mkdir(parents=True, exist_ok=True)


# ----------------------------------------------------------------------------- DF2K split


def test_pool_split_is_by_image_disjoint_and_seeded(tmp_path):
    folders = _pool(tmp_path, {"DIV2K_train_HR": 12, "Flickr2K_HR": 28})
    names = list(image_names(folders))
    assert len(names) == 40 and names[0] == "DIV2K_train_HR/0000" and names[-1] == "Flickr2K_HR/0027"
    train, val = split_by_image(names, 0.1, seed=0)
    assert len(val) == 4 and len(train) == 36 and not train & val and train | val == set(names)
    assert split_by_image(list(reversed(names)), 0.1, seed=0) == (train, val)  # order-free, same seed: same split
    assert split_by_image(names, 0.1, seed=1)[1] != val

    def module(seed: int) -> DistortionRankDataModule:
        return DistortionRankDataModule(
            "blur", folders, [], val_fraction=0.1, split_seed=seed, patch_size=16, num_workers=0, val_windows_per_image=1
        )

    dm = module(0)
    train_images, val_images = dm.load_images()
    assert {i.name for i in val_images} == val and {i.name for i in train_images} == train
    dm.setup()
    assert len(dm.train_set.images) == 36 and len(dm.val_set) == 4  # one window per validation image
    assert module(5).split()[1] != val
    with pytest.raises(ValueError, match="val_hr must then be empty"):
        DistortionRankDataModule("blur", folders, [folders[0]], val_fraction=0.1)
    with pytest.raises(ValueError, match="val_hr is empty"):
        DistortionRankDataModule("blur", folders, [])


def test_df2k_split_enters_the_ranker_key_and_record(tmp_path):
    _pool(tmp_path / "data" / "DIV2K", {"DIV2K_train_HR": 6, "DIV2K_valid_HR": 2})
    _pool(tmp_path / "data" / "Flickr2K", {"Flickr2K_HR": 14})
    base = ["data=df2k", "ranker=blur", f"paths.root={tmp_path}"]
    cfg, (stage,) = _plan(base)
    assert list(stage.cfg.ranker.datamodule.train_hr) == [
        f"{tmp_path}/data/DIV2K/DIV2K_train_HR",
        f"{tmp_path}/data/Flickr2K/Flickr2K_HR",
    ]
    split = {k: v for k, v in stage.inputs.items() if k.startswith("split of ")}
    assert list(split.values())[0].startswith("val 2/20 sha256:")  # ceil(10 % of 20 images)
    other_seed = _plan([*base, "rank_data.split_seed=1"])[1][0]
    other_share = _plan([*base, "rank_data.val_fraction=0.2"])[1][0]
    assert len({stage.key, other_seed.key, other_share.key}) == 3
    assert other_seed.inputs[next(iter(split))] != split[next(iter(split))]
    # the GANs train on DIV2K alone (§5.2): the rank split does not touch the generator's data
    assert list(cfg.data.train_hr) == [f"{tmp_path}/data/DIV2K/DIV2K_train_HR"]


def test_missing_flickr2k_is_one_line_saying_what_to_download(tmp_path):
    _paper_folders(tmp_path, flickr=False)
    with pytest.raises(pipeline.PlanError) as info:
        _plan(["data=df2k", "gan=rankrbri", f"paths.root={tmp_path}"])  # two Rankers read Flickr2K
    lines = [p for p in info.value.problems if "Flickr2K" in p]
    assert lines == [
        f"{tmp_path}/data/Flickr2K/Flickr2K_HR: Flickr2K_HR not found; download Flickr2K.tar (2,650 PNGs, NTIRE 2017, "
        "github.com/LimBee/NTIRE2017) and unpack its Flickr2K_HR there"
    ], info.value.problems


# ----------------------------------------------------------------------------- paper-versus-code options


def test_noise_levels_as_std_or_variance():
    levels = torch.tensor([1.0, 15.0, 30.0])
    assert torch.equal(noise_std255(levels, "std"), levels)
    torch.testing.assert_close(noise_std255(levels, "variance"), torch.tensor([1.0, 3.8729833, 5.4772256]))
    with pytest.raises(ValueError, match="noise_level_is"):
        noise_std255(levels, "sigma")
    x = torch.full((1, 3, 128, 128), 128 / 255)
    for meaning, std in (("std", 30.0), ("variance", math.sqrt(30.0 + 1 / 12))):  # + 8-bit rounding's 1/12
        dm = DistortionRankDataModule("noise", ["a"], ["b"], noise_level_is=meaning)
        out = distort(x, "noise", dm.strength(torch.tensor([30.0])), torch.tensor([7]))
        assert float(((out - x) * 255).std()) == pytest.approx(std, rel=0.03), meaning
    with pytest.raises(ValueError, match="noise levels only"):
        DistortionRankDataModule("blur", ["a"], ["b"], noise_level_is="variance")


class _MeanBatchNorm(torch.nn.Module):
    """A stand-in Ranker: each image's mean, batch-normalised (no affine, a negligible eps)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(1, eps=1e-12, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.mean(dim=(1, 2, 3))[:, None])[:, 0]


def test_pair_forward_joint_or_separate_batch_statistics():
    from ranksrgan.lit.ranker_module import RankerModule

    def flat(*values):
        return torch.stack([torch.full((3, 2, 2), v) for v in values])

    batch = {"img1": flat(0.1, 0.3), "img2": flat(0.5, 0.7), "target": torch.tensor([-1.0, -1.0])}  # img2 worse
    results = {}
    for mode in ("separate", "joint"):
        module = RankerModule(variant="vgg8", num_features=4, pair_forward=mode)
        module.ranker = _MeanBatchNorm()
        results[mode] = module.pair_loss(batch)
    # separate: each pass normalises [0.1, 0.3] and [0.5, 0.7] alone (mean 0.2 / 0.6, std 0.1)
    loss, s1, s2 = results["separate"]
    torch.testing.assert_close((s1, s2), (torch.tensor([-1.0, 1.0]), torch.tensor([-1.0, 1.0])))
    assert float(loss) == pytest.approx(0.5, abs=1e-5)  # max(0, (s1 - s2) + 0.5): the pairs look equal
    # joint: one batch of four, mean 0.4, variance 0.05
    loss, s1, s2 = results["joint"]
    r = math.sqrt(0.05)
    torch.testing.assert_close((s1, s2), (torch.tensor([-0.3 / r, -0.1 / r]), torch.tensor([0.1 / r, 0.3 / r])))
    assert float(loss) == 0.0
    with pytest.raises(ValueError, match="pair_forward"):
        RankerModule(variant="vgg8", num_features=4, pair_forward="siamese")
    assert _compose(["ranker=blur"]).ranker.module.pair_forward == "separate"  # the authors' code


def test_sr_rank_set_gap_filter_is_off_by_default():
    from ranksrgan.data.rank.labels import LabelTable
    from ranksrgan.data.rank.sr import SRRankDataModule
    from ranksrgan.data.rank.sr_labelling import select_locations

    meta = {"methods": ["a", "b", "c"], "metrics": ["niqe"]}
    columns = ["image", "y", "x", "method", "sharpness", "rmse", "niqe"]
    rows = [["img", 0, 0, m, 5.0, 1.0, v] for m, v in zip("abc", (3.0, 3.05, 6.0))]  # a gap of 0.05
    table = LabelTable(meta, columns, rows)
    kept = select_locations(table, "niqe")
    assert len(kept) == 1 and list(kept[0].levels) == [0, 1, 2]
    assert select_locations(table, "niqe", min_gap=0.1) == []
    assert SRRankDataModule("labels.csv").min_gap == 0.0
    assert _compose(["ranker=sr", "ranker.datamodule.labels=x.csv"]).ranker.datamodule.min_gap == 0.0


# ----------------------------------------------------------------------------- experiments, estimate, departures


def test_fig22_is_the_papers_schedule_and_fig22_short_a_stated_fraction(tmp_path):
    _paper_folders(tmp_path)
    cfg, stages = _plan(["experiment=fig22", f"paths.root={tmp_path}"])
    steps = {s.name: s.steps for s in stages}
    assert steps == {n: 300_000 for n in ("blur", "interp", "noise")} | {"srresnet": 1_000_000} | {
        n: 600_000 for n in ("srgan", "rankrbri", "rankrn", "rankrb", "rankri")
    }
    by_name = {s.name: s for s in stages}
    assert [by_name["blur"].section.module[k] for k in ("lr", "lr_step")] == [1e-3, 100_000]
    assert list(by_name["rankrb"].section.module.lr_milestones) == [50_000, 100_000, 200_000, 300_000]
    assert by_name["rankrb"].section.module.optimizer.lr == 1e-4
    assert {d.key for s in stages if s.name.startswith(("srgan", "rank")) for d in s.depends_on if d.name == "srresnet"} == {
        by_name["srresnet"].key
    }
    assert cfg.trainer.precision == "32-true" and list(cfg.seeds) == [1, 2, 3] and cfg.data.test_hr
    assert by_name["blur"].section.datamodule.val_fraction == 0.1
    short = {s.name: s for s in _plan(["experiment=fig22_short", f"paths.root={tmp_path}"])[1]}
    for name, stage in short.items():  # 1 % of the paper's schedule, LR milestones with it
        assert stage.steps * 100 == steps[name], name
    assert list(short["rankrb"].section.module.lr_milestones) == [500, 1000, 2000, 3000]
    assert short["blur"].section.module.lr_step * 100 == 100_000


def test_dry_run_estimate_counts_every_stage_at_the_assumed_rates(tmp_path):
    _paper_folders(tmp_path)
    cfg, stages = _plan(["experiment=fig22", f"paths.root={tmp_path}"])
    est = estimate_stages(cfg, stages)
    # by hand: Rankers 3 x 300k x 17 ms; SRResNet 1M x 12.5 ms; GANs 600k x (50 + 8 x Rankers) ms
    # with 0 (srgan), 2 (rbri), 1, 1, 1 Rankers, each recipe for 3 seeds (seed 1's SRGAN is also
    # Ranker-i's source); Ranker validations 3 x 30 x 15 s; no validation images
    train = 3 * 300_000 * 0.017 + 1_000_000 * 0.0125 + 3 * 600_000 * (0.050 * 5 + 0.008 * 5)
    assert sum(e.train_s for e in est) == pytest.approx(train)
    assert sum(e.val_s for e in est) == pytest.approx(3 * 30 * 15.0)
    text = "\n".join(describe_estimate(cfg, stages, stages))
    assert f"ESTIMATED time on one GPU: {(train + 3 * 30 * 15.0) / 3600:.1f} h" in text and "not a measurement" in text
    assert "Total: Rankers (3) 900,000 steps; pre-training (1) 1,000,000 iterations; GANs (15) 9,000,000 iterations" in text
    assert "a GAN iteration 50 ms + 8 ms per Ranker" in text
    assert describe_estimate(cfg, stages, [])[-1] == "ESTIMATED time on one GPU: 0 (every stage is reused)"


def test_departures_of_the_demo_and_of_fig22(tmp_path):
    cfg, stages = _plan(["experiment=demo", f"paths.root={tmp_path}"])
    demo = departures(cfg, stages)
    for expected in (
        "no perceptual term",
        "generator image skip: bicubic",
        "L1 pixel anchor, weight 1",
        "small generator (32 features, 4 blocks",
        "small Rankers (vgg8, 16 features",
        "rank loss mean over the batch",
        "rank weights 0.01 (paper: 0.03)",
        "Ranker margin 2 (paper: 0.5)",
        "Ranker pairs scored in one pass",
        "shortened schedule: GANs 300 of the paper's 600,000 iterations (0.05 %)",
        "shortened schedule: Rankers 1,000 of the paper's 300,000 steps (0.33 %)",
        "rank sets from the data folders split by folder",
    ):
        assert sum(line.startswith(expected) for line in demo) == 1, (expected, demo)
    _paper_folders(tmp_path)
    cfg, stages = _plan(["experiment=fig22", f"paths.root={tmp_path}"])
    assert departures(cfg, stages) == [
        "noise levels read as standard deviations (paper: 'covariances', i.e. variances)",
        "perceptual distance L1 (the authors' code; the paper: L2)",
        "SRResNet pre-training: lr halved at the recipe's milestones, batch of the data option "
        "(the authors' train_SRResNet.yml: cosine restarts every 250k, batch 16 x 128^2)",
    ]
    cfg, stages = _plan(["experiment=fig22", "trainer.precision=bf16-mixed", f"paths.root={tmp_path}"])
    assert departures(cfg, stages)[-1] == "precision bf16-mixed (paper: fp32)"
