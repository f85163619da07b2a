"""The evidence of a run's final table: a held-out test split, the published weights and their
record, seeds of the compared GAN stages, mean ± std over seeds, and the Ranker-against-HR alarm."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ranksrgan import pipeline
from ranksrgan.data.demo import SPLITS, TEST_IMAGES, TRAIN_IMAGES, VAL_IMAGES, build_demo_dataset
from ranksrgan.data.paired import PairedSRDataModule
from ranksrgan.evaluation import Evaluation, Method, format_seed_table, seed_table, write_seed_table
from ranksrgan.pipeline.training import choose_checkpoint
from ranksrgan.store import StageStore

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _plan(overrides: list[str]) -> list[pipeline.Stage]:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        return pipeline.Planner(cfg, overrides).plan()


# ----------------------------------------------------------------------------- test split
def test_demo_splits_are_disjoint_colour_images_and_stale_files_go(demo_root):
    assert not (set(TRAIN_IMAGES) & set(VAL_IMAGES)) and not (set(TEST_IMAGES) & (set(TRAIN_IMAGES) | set(VAL_IMAGES)))
    assert len(TEST_IMAGES) >= 3
    for split, names in SPLITS.items():
        assert sorted(p.stem for p in (demo_root / split / "HR").glob("*.png")) == sorted(names)
    # a test image left in the training folder by an older split is removed
    (demo_root / "train" / "HR" / "rocket.png").write_bytes((demo_root / "test" / "HR" / "rocket.png").read_bytes())
    build_demo_dataset(demo_root)
    assert not (demo_root / "train" / "HR" / "rocket.png").exists()


def test_the_test_split_never_reaches_training_or_validation(demo_root, monkeypatch):
    import ranksrgan.data.paired as paired

    read: list[str] = []
    real = paired.load_pairs
    monkeypatch.setattr(paired, "load_pairs", lambda folders, *a, **k: read.extend(map(str, folders)) or real(folders, *a, **k))
    dm = PairedSRDataModule(
        [str(demo_root / "train" / "HR")],
        [str(demo_root / "val" / "HR")],
        test_hr=[str(demo_root / "test" / "HR")],
        hr_patch_size=32,
    )
    dm.setup("fit")
    dm.setup("validate")
    assert read == [str(demo_root / "train" / "HR"), str(demo_root / "val" / "HR")]
    assert [Path(p.name).name for p in dm.val_set.pairs] == list(VAL_IMAGES)
    dm.setup("test")
    assert [Path(p.name).name for p in dm.test_set.pairs] == sorted(TEST_IMAGES) and read[-1] == str(demo_root / "test" / "HR")
    with pytest.raises(ValueError, match="data.test_hr is empty"):
        PairedSRDataModule([str(demo_root / "train" / "HR")], [str(demo_root / "val" / "HR")]).setup("test")


def test_no_stage_reads_the_test_split_nor_depends_on_it(tmp_path):
    base = _plan(["experiment=smoke", f"paths.root={tmp_path}"])
    moved = _plan(["experiment=smoke", f"paths.root={tmp_path}", f"data.test_hr=[{tmp_path}/elsewhere]"])
    assert [s.key for s in base] == [s.key for s in moved]
    test_dir = str(tmp_path / "data" / "demo" / "test" / "HR")
    assert all(test_dir not in s.inputs for s in base) and any(str(tmp_path / "data/demo/val/HR") in s.inputs for s in base)
    cfg = _compose(["experiment=smoke", f"paths.root={tmp_path}", f"data.test_hr=[{tmp_path}/elsewhere]"])
    assert any("elsewhere: data.test_hr" in p for p in pipeline.preflight(cfg, [], download=False))


# ----------------------------------------------------------------------------- seeds
def test_seeds_repeat_only_the_compared_gan_stages(tmp_path):
    stages = _plan(["experiment=smoke", "seeds=[1,2,3]", "compare=[srgan]", f"paths.root={tmp_path}"])
    assert [(s.kind, s.label, int(s.cfg.seed)) for s in stages] == [
        ("ranker", "blur", 1234),
        ("generator", "srresnet", 1234),
        ("generator", "srgan", 1234),  # feeds Ranker-i: shared, the run's seed
        ("ranker", "interp", 1234),
        ("generator", "rankrbri@1", 1),
        ("generator", "rankrbri@2", 2),
        ("generator", "rankrbri@3", 3),
        ("generator", "srgan@1", 1),
        ("generator", "srgan@2", 2),
        ("generator", "srgan@3", 3),
    ]
    by = {s.label: s for s in stages}
    assert len({s.key for s in stages}) == len(stages)
    for label in ("rankrbri@1", "rankrbri@3"):
        assert {d.label for d in by[label].depends_on} == {"blur", "interp", "srresnet"}
        assert by[label].depends_on[-1] is by["srresnet"]
    # the run's seed among the seeds: Ranker-i's SRGAN is that seed's run (one stage fewer)
    shared = _plan(["experiment=smoke", "seed=1", "seeds=[1,2]", "compare=[srgan]", f"paths.root={tmp_path}"])
    assert [s.label for s in shared] == ["blur", "srresnet", "srgan@1", "interp", "rankrbri@1", "rankrbri@2", "srgan@2"]
    with pytest.raises(pipeline.PlanError, match="seeds must be distinct integers"):
        _plan(["experiment=smoke", "seeds=[1,1]"])


def test_dry_run_shows_the_seeds_and_the_test_split(tmp_path):
    for name in ("DIV2K/DIV2K_train_HR", "DIV2K/valid_0801-0850", "DIV2K/valid_0851-0900", "Flickr2K/Flickr2K_HR"):
        (tmp_path / "data" / name).mkdir(parents=True)
    for experiment, test_dir in (("demo", "demo/test/HR"), ("fig22", "DIV2K/valid_0851-0900")):
        overrides = [f"experiment={experiment}", f"paths.root={tmp_path}"]
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
            stages = pipeline.Planner(cfg, overrides).plan()
            text = pipeline.describe_plan(cfg, stages)
        assert list(cfg.seeds) == [1, 2, 3] and sum(s.seed is not None for s in stages) == 3 * (1 + len(cfg.compare))
        assert "Seeds of the compared GAN stages: 1, 2, 3" in text
        assert f"Final table on: the held-out test split data.test_hr ({tmp_path}/data/{test_dir})" in text


# ----------------------------------------------------------------------------- published weights
HISTORY = [
    {"step": 2, "global_step": 4, "val/niqe": 6.0, "val/psnr": 20.0},
    {"step": 4, "global_step": 8, "val/niqe": 5.0, "val/psnr": 21.0},
    {"step": 6, "global_step": 12, "val/niqe": float("nan"), "val/psnr": 22.0},
    {"step": 8, "global_step": 16, "val/niqe": 5.5, "val/psnr": 23.0},
]


def test_choose_checkpoint_describes_the_published_validation():
    last = choose_checkpoint(HISTORY, "val/niqe", "min", "last")
    assert last == {
        "selected": "last",
        "monitor": "val/niqe",
        "iteration": 8,
        "metrics": {"val/niqe": 5.5, "val/psnr": 23.0},
        "last": {"iteration": 8, "val/niqe": 5.5, "val/psnr": 23.0},
        "best": {"iteration": 4, "val/niqe": 5.0, "val/psnr": 21.0},  # NaN never wins
    }
    best = choose_checkpoint(HISTORY, "val/niqe", "min", "best")
    assert (best["iteration"], best["metrics"]) == (4, {"val/niqe": 5.0, "val/psnr": 21.0})
    assert choose_checkpoint(HISTORY, "val/psnr", "max", "best")["iteration"] == 8


@pytest.fixture(scope="module")
def selected_runs(tmp_path_factory):
    """SRResNet (after a 3-step Ranker) for 6 iterations, validated every 4: the pipeline adds a
    validation of the final weights at 6. Published with select=last and with select=best (PSNR
    monitored): the best checkpoint can only be the one of iteration 4, the last is 6's."""
    root = tmp_path_factory.mktemp("select")
    runs = {}
    for select in ("last", "best"):
        overrides = [
            "experiment=smoke",
            "gan=srresnet",
            "gan.max_steps=6",
            "gan.val_check_interval=4",
            "gan.module.optimizer.lr=0.01",
            f"gan.select={select}",
            f"paths.root={root}",
        ]
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
            result = pipeline.run(cfg, overrides)
        stage = result["final"]
        store = StageStore(cfg.paths.store)
        history = json.loads((store.work_dir(stage.name, stage.key) / "val_history.json").read_text())
        runs[select] = (cfg, result, store.finished(stage.kind, stage.name, stage.key), history)
    return runs


def test_select_last_and_best_publish_different_weights_and_say_which(selected_runs):
    from ranksrgan.evaluation import BenchmarkSet, evaluate

    (cfg, last_run, last, history), (_, best_run, best, _) = selected_runs["last"], selected_runs["best"]
    assert [e["step"] for e in history] == [4, 6]  # 6: the validation of the final weights
    at4, at6 = ({k: v for k, v in e.items() if k.startswith("val/")} for e in history)
    assert at4["val/psnr"] != at6["val/psnr"]
    assert (last["selected"], last["iteration"], last["metrics"]) == ("last", 6, at6)
    assert (best["selected"], best["iteration"], best["metrics"]) == ("best", 4, at4)
    for record in (last, best):
        assert record["last"] == {"iteration": 6, **at6} and record["best"] == {"iteration": 4, **at4}
    assert last["artifact_sha256"] != best["artifact_sha256"]
    # the record describes the published file: its PSNR, measured again on the validation image
    val = BenchmarkSet("val", Path(cfg.data.val_hr[0]))
    for run, record in ((last_run, last), (best_run, best)):
        ev = evaluate([val], [("g", run["stages"]["srresnet"])], metrics=["psnr"], max_images=cfg.data.val_max_images)
        assert ev.mean("val", "g", "psnr") == pytest.approx(record["metrics"]["val/psnr"], abs=2e-3)


# ----------------------------------------------------------------------------- the table
def _fake_evaluation() -> Evaluation:
    """Two images; NIQE and a blur Ranker's score per run (values chosen for hand arithmetic)."""
    per_image = {
        "Bicubic": [(8.0, -0.40), (8.0, -0.40)],
        "srgan@1": [(6.0, -0.50), (7.0, -0.50)],  # NIQE mean 6.5
        "srgan@2": [(5.0, -0.50), (6.0, -0.50)],  # 5.5
        "srgan@3": [(7.0, -0.50), (8.0, -0.50)],  # 7.5
        "rankrbri@1": [(6.0, -0.70), (6.0, -0.70)],  # 6.0; Rank-blur -0.70: 0.2 better than HR
        "rankrbri@2": [(5.0, -0.70), (5.0, -0.70)],  # 5.0
        "rankrbri@3": [(6.0, -0.70), (6.0, -0.70)],  # 6.0
        "HR": [(4.0, -0.50), (4.0, -0.50)],
    }
    ev = Evaluation(4, ["niqe", "rank/blur"], list(per_image), ["test"], reference="HR")
    for method, values in per_image.items():
        for image, (niqe, score) in zip(("a", "b"), values):
            ev.records.append({"dataset": "test", "method": method, "image": image, "niqe": niqe, "rank/blur": score})
    return ev


ROWS = [
    Method("Bicubic", ("Bicubic",)),
    Method("srgan", ("srgan@1", "srgan@2", "srgan@3"), (1, 2, 3), "last (it 300)"),
    Method("rankrbri", ("rankrbri@1", "rankrbri@2", "rankrbri@3"), (1, 2, 3), "last (it 300)"),
    Method("HR", ("HR",)),
]


def test_mean_and_std_over_seeds_and_paired_differences_by_hand(tmp_path):
    table = seed_table(_fake_evaluation(), ROWS, pairs=[("rankrbri", "srgan")], hr_margin=0.1)
    srgan = table.cells[("srgan", "niqe")]
    assert srgan.values == (6.5, 5.5, 7.5) and srgan.mean == 6.5 and srgan.std == pytest.approx(1.0)
    assert table.cells[("Bicubic", "niqe")].std is None
    (niqe,) = [d for d in table.differences if d.metric == "niqe"]
    # per seed: 6.0 - 6.5, 5.0 - 5.5, 6.0 - 7.5 = -0.5, -0.5, -1.5
    assert niqe.cell.values == (-0.5, -0.5, -1.5) and niqe.cell.mean == pytest.approx(-5 / 6)
    assert niqe.cell.std == pytest.approx(math.sqrt(1 / 3)) and niqe.beyond_spread is True
    text = format_seed_table(table)
    assert "| srgan | 1, 2, 3 | last (it 300) | 6.50 ± 1.00 |" in text
    assert "| Bicubic | - | - | 8.00 |" in text and "| HR | - | - | 4.00 |" in text
    assert "| rankrbri − srgan | 1, 2, 3 | NIQE ↓ | -0.83 ± 0.58 | yes (|mean| > std) |" in text
    paths = write_seed_table(table, tmp_path)
    rows = paths["csv"].read_text().splitlines()
    assert 'test,srgan,"1, 2, 3",last (it 300),niqe,6.5,1.0,3,6.5 5.5 7.5,' in rows


def test_a_ranker_preferring_outputs_to_hr_is_marked():
    table = seed_table(_fake_evaluation(), ROWS, hr_margin=0.1)
    # HR scores -0.50; rankrbri -0.70 (0.2 better: beyond the margin), srgan -0.50, Bicubic -0.40
    assert table.alarms == {("rankrbri", "rank/blur"): pytest.approx(0.2)}
    text = format_seed_table(table)
    assert "| **-0.700 ± 0.000** ! |" in text and "| -0.500 ± 0.000 |" in text
    assert "! rankrbri, Rank-blur: the Ranker blur scores these outputs better than HR by 0.200" in text
    quiet = seed_table(_fake_evaluation(), ROWS, hr_margin=0.25)
    assert quiet.alarms == {} and "!" not in format_seed_table(quiet)


def test_the_run_writes_its_table_and_curves(tiny_run, tmp_path):
    cfg, _, result = tiny_run
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        text = pipeline.summary(cfg, result, tmp_path)
    for name in ("final_table.md", "final_table.csv", "final_per_image.csv", "val_curves.csv"):
        assert (tmp_path / name).is_file() and str(tmp_path / name) in text
    assert "Final table on the held-out test split data.test_hr" in text
    assert f"test ({', '.join(sorted(TEST_IMAGES))})" in text
    rows = result["table"]["test"]["rows"]
    assert [r["method"] for r in rows] == ["Bicubic", "srresnet", "srgan", "rankrbri", "HR"]
    assert rows[3]["weights"] == f"last (it {cfg.gan.max_steps})"
    curves = (tmp_path / "val_curves.csv").read_text().splitlines()
    assert curves[0].startswith("stage,iteration,") and any(line.startswith("rankrbri,") for line in curves[1:])
    torch.testing.assert_close(
        torch.tensor(rows[0]["metrics"]["psnr"]["mean"]), torch.tensor(rows[0]["metrics"]["psnr"]["values"][0])
    )
