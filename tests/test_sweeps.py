"""Sweeps that sweep something: a command-line value that its stage does not hold stops the run
before training (one line naming the key to use instead), a multirun whose jobs plan the same
stages stops before its first job, and a plain sweep trains one stage per value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ranksrgan import pipeline
from ranksrgan.cli.sweep import check_jobs, sweep_jobs

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf")


def _plan(overrides: list[str], **stages) -> list[pipeline.Stage]:
    """Plan with ``overrides``; ``stages`` entries are put into the composed config's ``stages``
    (as an experiment file would set them, not the command line)."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        for key, value in stages.items():
            OmegaConf.update(cfg, f"stages.{key}", value, force_add=True)
        return pipeline.Planner(cfg, overrides).plan()


def _problems(overrides: list[str], **stages) -> list[str]:
    with pytest.raises(pipeline.PlanError) as info:
        _plan(overrides, **stages)
    return info.value.problems


def _train(*args: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *args, f"paths.root={root}"], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def _stage(stages: list, name: str):
    """The (first) planned stage of that recipe or Ranker (compared recipes repeat per seed)."""
    return next(s for s in stages if s.name == name)


def test_a_value_an_experiment_replaces_stops_the_plan_with_the_key_that_works(tmp_path):
    root = f"paths.root={tmp_path}"
    assert _problems(["experiment=demo", "gan.rankers.0.weight=0.02", root]) == [
        "gan.rankers.0.weight=0.02 is replaced by stages.rankrbri.rankers from experiment=demo; "
        "set ++stages.rankrbri.rankers.0.weight=0.02 instead"
    ]
    # the form it names reaches the stage; the other Ranker keeps the demo's weight
    rbri = _stage(_plan(["experiment=demo", "++stages.rankrbri.rankers.0.weight=0.02", root]), "rankrbri")
    assert [(r.name, r.weight) for r in rbri.section.rankers] == [("blur", 0.02), ("interp", 0.01)]
    # smoke: the same shape for the discriminator of RbRi
    assert _problems(["experiment=smoke", "gan.module.discriminator.kwargs.num_features=8", root]) == [
        "gan.module.discriminator.kwargs.num_features=8 is replaced by stages.rankrbri.module.discriminator.kwargs"
        ".num_features from experiment=smoke; set ++stages.rankrbri.module.discriminator.kwargs.num_features=8 instead"
    ]
    # a kind-wide entry (fig22's stages.generators.val_check_interval): the fix names the selected recipe only
    assert (
        "gan.val_check_interval=5 is replaced by stages.generators.val_check_interval from experiment=fig22; "
        "set ++stages.rankrbri.val_check_interval=5 instead"
    ) in _problems(["experiment=fig22", "data=demo", "gan.val_check_interval=5", root])
    # a Ranker value replaced by an entry of the run's config
    assert _problems(["ranker=blur", "ranker.max_steps=7", root], rankers={"max_steps": 9}) == [
        "ranker.max_steps=7 is replaced by stages.rankers.max_steps from the config; set ++stages.blur.max_steps=7 instead"
    ]


def test_data_values_are_checked_where_rankers_interpolate_them(tmp_path):
    hr = tmp_path / "HR"
    hr.mkdir()
    common = ["ranker=blur", f"paths.root={tmp_path}", f"data.train_hr=[{hr}]"]
    other = str(tmp_path)
    assert _problems(common, blur={"datamodule": {"train_hr": [other]}}) == [
        f"data.train_hr=[{hr}] does not reach ranker=blur: ranker.datamodule.train_hr is replaced by "
        f"stages.blur.datamodule.train_hr from the config; set ++stages.blur.datamodule.train_hr=[{hr}] instead"
    ]
    # the same entry given on the command line gives the Ranker its own data on purpose
    stage = _plan([*common, f"+stages.blur.datamodule.train_hr=[{other}]"])[0]
    assert list(stage.section.datamodule.train_hr) == [other]


def test_values_that_reach_their_stage_pass(tmp_path):
    root = f"paths.root={tmp_path}"
    # smoke sets no Ranker list for RbRi; the generator architecture reaches every generator stage
    stages = _plan(["experiment=smoke", "gan.rankers.0.weight=0.02", "gan.module.generator.kwargs.num_blocks=2", root])
    assert _stage(stages, "rankrbri").section.rankers[0].weight == 0.02
    assert all(s.section.module.generator.kwargs.num_blocks == 2 for s in stages if s.kind == "generator")
    # a value that equals what the experiment sets is held, so it passes
    assert _stage(_plan(["experiment=demo", "gan.rankers.0.weight=0.01", root]), "rankrbri").section.rankers[0].weight == 0.01


def test_sweep_jobs_expand_like_the_basic_sweeper():
    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": {"seed": "1,2"}},
                "overrides": {"task": ["experiment=smoke", "gan.rankers.0.weight=0.01,0.02"]},
            }
        }
    )
    assert sweep_jobs(config) == [
        ["seed=1", "experiment=smoke", "gan.rankers.0.weight=0.01"],
        ["seed=1", "experiment=smoke", "gan.rankers.0.weight=0.02"],
        ["seed=2", "experiment=smoke", "gan.rankers.0.weight=0.01"],
        ["seed=2", "experiment=smoke", "gan.rankers.0.weight=0.02"],
    ]
    config.hydra.sweeper._target_ = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweep_jobs(config) is None


def test_jobs_that_plan_the_same_stages_are_found_before_the_first_one(tmp_path):
    root = f"paths.root={tmp_path}"
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        same = check_jobs([["experiment=smoke", f"gan.module.num_logged_images={n}", root] for n in (1, 2)])
        swept = [["experiment=smoke", "ranker=blur", "gan=rankrbri", f"gan.rankers.0.weight={w}", root] for w in (0.01, 0.02)]
        assert check_jobs(swept) == []
        keys = [{s.name: s.key for s in pipeline.Planner(compose(config_name="config", overrides=j), j).plan()} for j in swept]
    assert keys[0]["rankrbri"] != keys[1]["rankrbri"] and all(keys[0][n] == keys[1][n] for n in keys[0] if n != "rankrbri")
    assert len(same) == 1 and same[0].startswith(
        "sweep jobs #0 (gan.module.num_logged_images=1) and #1 (gan.module.num_logged_images=2) plan the same stages (ranker blur "
    )
    assert same[0].endswith("the swept values do not change them; see docs/sweeps.md for the keys a sweep should name")


def test_the_issues_demo_sweep_stops_before_its_first_job(tmp_path):
    proc = _train("-m", "experiment=demo", "gan.rankers.0.weight=0.01,0.02", root=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "ranksrgan-train: error: sweep job #1: gan.rankers.0.weight=0.02 is replaced by stages.rankrbri.rankers from "
        "experiment=demo; set ++stages.rankrbri.rankers.0.weight=0.02 instead"
    )
    assert "Launching" not in proc.stdout + proc.stderr and not (tmp_path / "store" / "training").exists()


@pytest.mark.slow
def test_a_plain_weight_sweep_trains_one_rbri_stage_per_value(tiny_run):
    """`-m ranker=blur gan=rankrbri gan.rankers.0.weight=a,b` at smoke size: two RbRi stages with
    different keys; the Rankers, SRResNet and SRGAN of the earlier run are reused."""
    cfg, overrides, _ = tiny_run
    before = pipeline.stored_stages(cfg.paths.store)
    args = ["-m", *overrides, "ranker=blur", "gan=rankrbri", "gan.rankers.0.weight=0.011,0.022"]
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    new = [r for r in pipeline.stored_stages(cfg.paths.store) if r["key"] not in {b["key"] for b in before}]
    assert sorted(r["name"] for r in new) == ["rankrbri", "rankrbri"]
    assert sorted(r["config"]["gan"]["rankers"][0]["weight"] for r in new) == [0.011, 0.022]
    assert all(r["origin"] == {"experiment": "smoke", "data": "demo"} for r in new)


def test_jobs_of_a_sweeper_that_chooses_as_it_goes_are_checked_against_the_ones_before(tmp_path):
    from hydra.types import RunMode

    from ranksrgan.cli.sweep import PLAN_FILE, check_job

    def job(number: int, overrides: list[str]) -> None:
        hydra = OmegaConf.create(
            {
                "mode": RunMode.MULTIRUN,
                "sweeper": {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"},
                "sweep": {"dir": str(tmp_path / "sweep")},
                "runtime": {"output_dir": str(tmp_path / "sweep" / str(number))},
                "job": {"num": number},
            }
        )
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            check_job(hydra, compose(config_name="config", overrides=overrides), overrides)

    common = ["ranker=blur", "gan=rankrb", f"paths.root={tmp_path}"]
    job(0, [*common, "gan.rankers.0.weight=0.01"])
    job(1, [*common, "gan.rankers.0.weight=0.02"])  # another stage: fine
    assert (tmp_path / "sweep" / "1" / PLAN_FILE).is_file()
    with pytest.raises(
        pipeline.PlanError,
        match=r"sweep jobs #0 \(no override of its own\) and #2 \(gan.module.nan_check_interval=5\) plan the same",
    ):
        job(2, [*common, "gan.rankers.0.weight=0.01", "gan.module.nan_check_interval=5"])
