"""Stage planning and reuse: what `python train.py ranker=... gan=...` trains, in which order,
what a sweep retrains, and a tiny end-to-end run whose second invocation trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ranksrgan import pipeline

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def plan(overrides: list[str]) -> list[pipeline.Stage]:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        return pipeline.Planner(cfg, overrides).plan()


def test_demo_plan_order():
    stages = plan(["experiment=demo"])
    assert [(s.kind, s.name) for s in stages] == [
        ("ranker", "blur"),
        ("ranker", "interp"),
        ("generator", "srresnet"),
        ("generator", "rankrbri"),
    ]
    gan = stages[-1]
    assert {d.name for d in gan.depends_on} == {"blur", "interp", "srresnet"}
    # experiment overrides reach the Ranker composed by name, too
    assert stages[1].cfg.ranker.module.variant == "vgg8"
    # the demo pre-trains longer than it trains the GAN (pretrained_overrides)
    assert stages[2].cfg.gan.max_steps == 1500 and stages[3].cfg.gan.max_steps == 300


def test_ranker_only_and_nothing():
    assert [(s.kind, s.name) for s in plan(["ranker=noise"])] == [("ranker", "noise")]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config")
        with pytest.raises(ValueError, match="nothing to train"):
            pipeline.Planner(cfg, []).plan()


def test_sweeping_gan_weight_keeps_ranker_and_pretraining_keys():
    a = plan(["ranker=blur", "gan=rankrb", "gan.rankers.0.weight=0.01"])
    b = plan(["ranker=blur", "gan=rankrb", "gan.rankers.0.weight=0.1"])
    assert [s.key for s in a[:-1]] == [s.key for s in b[:-1]]  # blur Ranker, SRResNet reused
    assert a[-1].key != b[-1].key


def test_selected_ranker_overrides_do_not_leak():
    stages = plan(["ranker=blur", "gan=rankrbri", "ranker.max_steps=7"])
    by_name = {s.name: s for s in stages}
    assert by_name["blur"].cfg.ranker.max_steps == 7
    assert by_name["interp"].cfg.ranker.max_steps != 7


def test_generator_architecture_override_reaches_pretraining():
    stages = plan(["gan=srgan", "gan.module.generator.kwargs.num_blocks=3"])
    assert [s.name for s in stages] == ["srresnet", "srgan"]
    assert all(s.cfg.gan.module.generator.kwargs.num_blocks == 3 for s in stages)


def test_ranker_given_as_checkpoint_needs_no_stage(tmp_path):
    stages = plan(["gan=ranksrgan", f"gan.rankers=[{{checkpoint: {tmp_path}/r.pth, weight: 0.03}}]"])
    assert [(s.kind, s.name) for s in stages] == [("generator", "srresnet"), ("generator", "ranksrgan")]


def test_tiny_pipeline_end_to_end_then_reuse(tiny_run):
    cfg, overrides, result = tiny_run
    assert set(result["stages"]) == {"blur", "interp", "srresnet", "rankrbri"}
    for path in result["stages"].values():
        assert Path(path).is_file() and Path(path).with_suffix(".json").is_file()
    assert "val/niqe" in result["metrics"] and "val/psnr" in result["metrics"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        table = pipeline.summary(cfg, result)
        assert "Bicubic" in table and "rankrbri" in table and "srresnet" in table
        # The same command again trains nothing: every stage is found in the store.
        mtimes = {n: Path(p).stat().st_mtime_ns for n, p in result["stages"].items()}
        again = pipeline.run(cfg, overrides)
    assert {n: Path(p).stat().st_mtime_ns for n, p in again["stages"].items()} == mtimes


def test_optuna_sweep_in_memory_trains_each_ranker_once(tiny_run):
    """`-m hparams_search=gan_weights_optuna`: an in-memory Optuna study over the GAN loss
    weights; every trial reuses the Rankers and SRResNet of the earlier run."""
    import subprocess
    import sys

    import yaml

    cfg, overrides, _ = tiny_run
    before = pipeline.stored_stages(cfg.paths.store)
    args = [sys.executable, "train.py", "-m", "hparams_search=gan_weights_optuna", "hydra.sweeper.n_trials=2", *overrides]
    proc = subprocess.run(args, cwd=Path(CONF).parent, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = pipeline.stored_stages(cfg.paths.store)
    count = lambda records, name: sum(r["name"] == name for r in records)  # noqa: E731
    for name in ("blur", "interp", "srresnet"):
        assert count(after, name) == count(before, name) == 1
    assert count(after, "rankrbri") == count(before, "rankrbri") + 2
    results = list(Path(cfg.paths.root, "multiruns").rglob("optimization_results.yaml"))
    assert len(results) == 1
    best = yaml.safe_load(results[0].read_text())
    assert best["name"] == "optuna" and "best_value" in best and set(best["best_params"]) >= {"gan.rankers.0.weight"}


@pytest.mark.parametrize(
    ("env", "primary"),
    [
        ({}, True),
        ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, True),
        ({"LOCAL_RANK": "1"}, False),
        ({"SLURM_PROCID": "3"}, False),
        ({"RANK": "2"}, False),
    ],
)
def test_only_the_primary_process_takes_stage_locks(monkeypatch, env, primary):
    """Non-zero DDP ranks re-run the command; they must not wait for rank 0's stage lock."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert pipeline.is_primary_process() is primary
