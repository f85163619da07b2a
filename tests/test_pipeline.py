"""Stage planning and reuse: what `python train.py ranker=... gan=...` trains, in which order,
what a sweep retrains, and a tiny end-to-end run whose second invocation trains nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ranksrgan import pipeline

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def _train(*args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
    import os
    import subprocess
    import sys

    environ = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "train.py", *args], cwd=Path(CONF).parent, capture_output=True, text=True, timeout=300, env=environ
    )
    assert proc.returncode == code, proc.stderr[-3000:]
    return proc.stdout


def plan(overrides: list[str]) -> list[pipeline.Stage]:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        return pipeline.Planner(cfg, overrides).plan()


def test_demo_plan_is_the_papers_rbri_graph():
    stages = plan(["experiment=demo"])
    # SRGAN and RbRi once per seed (1, 2, 3); seed 1's SRGAN is also Ranker-i's source
    assert [(s.kind, s.label) for s in stages] == [
        ("ranker", "blur"),
        ("generator", "srresnet"),
        ("generator", "srgan@1"),
        ("ranker", "interp"),
        ("generator", "rankrbri@1"),
        ("generator", "rankrbri@2"),
        ("generator", "rankrbri@3"),
        ("generator", "srgan@2"),
        ("generator", "srgan@3"),
    ]
    by_name = {s.label: s for s in stages}
    # Ranker-i interpolates SRGAN outputs with HR (paper Eq. 12), not bicubic
    assert [d.label for d in by_name["interp"].depends_on] == ["srgan@1"]
    assert [d.name for d in by_name["srgan@2"].depends_on] == ["srresnet"]
    assert {d.name for d in by_name["rankrbri@2"].depends_on} == {"blur", "interp", "srresnet"}
    # SRGAN and RbRi start from the same SRResNet stage
    assert by_name["srgan@3"].depends_on[0] is by_name["rankrbri@1"].depends_on[-1]
    # experiment overrides reach the Ranker composed by name, too
    assert by_name["interp"].cfg.ranker.module.variant == "vgg8"
    # the demo pre-trains longer than it trains the GAN (stages.srresnet)
    assert by_name["srresnet"].steps == 1500 and by_name["rankrbri@1"].steps == by_name["srgan@1"].steps


def test_dry_run_lists_the_five_rbri_stages(tmp_path):
    # no VGG19 weights in this torch home: the plan is printed, and the exit status says it cannot run
    args = ("ranker=blur", "gan=rankrbri", "data=demo", "dry_run=true", f"paths.root={tmp_path}")
    out = _train(*args, code=2, env={"TORCH_HOME": str(tmp_path / "torch")})
    rows = [line.split() for line in out.splitlines() if line[:2].strip().isdigit()]
    assert [(r[1], r[2]) for r in rows] == [
        ("ranker", "blur"),
        ("generator", "srresnet"),
        ("generator", "srgan"),
        ("ranker", "interp"),
        ("generator", "rankrbri"),
    ]
    interp = rows[3]
    assert interp[6] == "srgan" and all(r[5] == "train" for r in rows)  # depends on SRGAN; nothing stored yet


def test_stage_settings_reach_dependencies_most_specific_last():
    base = {s.name: s for s in plan(["ranker=blur", "gan=rankrbri"])}
    stages = {
        s.name: s
        for s in plan(
            [
                "ranker=blur",
                "gan=rankrbri",
                "+stages.all.max_steps=9",
                "+stages.rankers.max_steps=8",
                "+stages.interp.max_steps=7",
                "+stages.srresnet.module.optimizer.lr=0.001",
            ]
        )
    }
    assert stages["interp"].steps == 7 and stages["blur"].steps == 8
    assert stages["srresnet"].steps == stages["srgan"].steps == stages["rankrbri"].steps == 9
    assert stages["srresnet"].section.module.optimizer.lr == 0.001
    assert stages["srgan"].section.module.optimizer.lr == base["srgan"].section.module.optimizer.lr
    # the overrides enter every stage key, and a changed dependency changes its dependants' keys
    assert all(stages[n].key != base[n].key for n in base)


def test_bad_stage_settings_and_sources_fail_in_one_line():
    with pytest.raises(ValueError, match="stages.interp does not fit ranker=interp"):
        plan(["gan=rankri", "+stages.interp.no_such_key=1"])
    with pytest.raises(ValueError, match="datamodule.sr='no_such_recipe' is not 'bicubic'"):
        plan(["gan=rankri", "+stages.interp.datamodule.sr=no_such_recipe"])


def test_interp_source_can_still_be_bicubic_or_a_checkpoint(tmp_path):
    stages = plan(["gan=rankri", "+stages.interp.datamodule.sr=bicubic"])
    assert [s.name for s in stages] == ["interp", "srresnet", "rankri"]
    ckpt = tmp_path / "srgan.pth"
    ckpt.write_bytes(b"weights v1")
    stages = plan(["gan=rankri", f"+stages.interp.datamodule.sr={ckpt}"])
    first = stages[0]
    assert [s.name for s in stages] == ["interp", "srresnet", "rankri"] and str(ckpt) in first.inputs
    ckpt.write_bytes(b"weights v2")  # same path, new content: new key
    assert plan(["gan=rankri", f"+stages.interp.datamodule.sr={ckpt}"])[0].key != first.key


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


def test_ranker_given_as_checkpoint_needs_no_stage_and_its_content_is_in_the_key(tmp_path):
    ckpt = tmp_path / "r.pth"
    ckpt.write_bytes(b"ranker v1")
    overrides = ["gan=ranksrgan", f"gan.rankers=[{{checkpoint: {ckpt}, weight: 0.03}}]"]
    stages = plan(overrides)
    assert [(s.kind, s.name) for s in stages] == [("generator", "srresnet"), ("generator", "ranksrgan")]
    ckpt.write_bytes(b"ranker v2")
    again = plan(overrides)
    assert again[0].key == stages[0].key and again[1].key != stages[1].key


def test_every_problem_of_every_stage_is_listed_before_training(tmp_path):
    with pytest.raises(pipeline.PlanError) as info:
        plan(
            [
                "gan=ranksrgan",
                f"gan.rankers=[{{checkpoint: {tmp_path}/r.pth, weight: -0.03}}]",
                f"gan.pretrained={tmp_path}/g.pth",
                "data=folders",
                f"data.train_hr=[{tmp_path}/nowhere]",
                f"data.val_hr=[{tmp_path}]",
                "gan.max_steps=-5",
                "gan.module.pixel.weight=-1",
            ]
        )
    problems = info.value.problems
    expected = [
        f"{tmp_path}/r.pth: gan.rankers.0.checkpoint of gan=ranksrgan does not exist",
        f"{tmp_path}/g.pth: gan.pretrained of gan=ranksrgan does not exist",
        f"{tmp_path}/nowhere: data.train_hr of gan=ranksrgan does not exist",
        "gan=ranksrgan: max_steps must be > 0, got -5",
        "gan=ranksrgan: gan.module.pixel.weight must be >= 0, got -1",
        "gan=ranksrgan: gan.rankers.0.weight",
    ]
    for line in expected:
        assert sum(p.startswith(line) for p in problems) == 1, (line, problems)
    assert all("\n" not in p for p in problems)
    with pytest.raises(pipeline.PlanError, match="nothing to train"):
        plan([])


def test_train_reports_problems_in_one_line_each_without_traceback(tmp_path):
    import subprocess
    import sys

    args = [sys.executable, "train.py", "gan=srresnet", "gan.max_steps=-5", f"paths.root={tmp_path}"]
    proc = subprocess.run(args, cwd=Path(CONF).parent, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ranksrgan-train: error: gan=srresnet: max_steps must be > 0, got -5 (stages.srresnet.max_steps or gan.max_steps)"
    ]


def test_offline_vgg_weights_stop_the_run_before_the_first_stage(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["gan=srgan", f"paths.root={tmp_path}"])
        stages = pipeline.Planner(cfg, []).plan()
        text = pipeline.describe_plan(cfg, stages)
        assert "vgg19-dcbb9e9d.pth: VGG19 ImageNet weights for the perceptual loss of gan=srgan are not downloaded" in text

        from torchvision import models

        def offline(*args, **kwargs):
            raise OSError("no network")

        monkeypatch.setattr(models.VGG19_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
        trained = []
        monkeypatch.setattr(pipeline.training, "run_stage", lambda *a, **k: trained.append(a))
        with pytest.raises(pipeline.PlanError, match="could not be downloaded"):
            pipeline.run(cfg, [])
    assert trained == []


def test_pretrained_file_content_is_in_the_key(tmp_path):
    g = tmp_path / "g.pth"
    g.write_bytes(b"generator v1")
    first = plan(["gan=srgan", f"gan.pretrained={g}"])
    g.write_bytes(b"generator v2")
    assert [s.name for s in first] == ["srgan"] and plan(["gan=srgan", f"gan.pretrained={g}"])[0].key != first[0].key


def test_effective_batch_and_version_are_in_the_key_and_no_effect_keys_are_not(monkeypatch):
    import ranksrgan

    base = {s.name: s.key for s in plan(["gan=rankrb"])}
    two = {s.name: s.key for s in plan(["gan=rankrb", "trainer.devices=2"])}
    nodes = {s.name: s.key for s in plan(["gan=rankrb", "trainer.num_nodes=2"])}
    assert all(two[n] != base[n] and nodes[n] != base[n] for n in base)
    assert two == nodes  # 2 devices x 1 node and 1 x 2 run the same effective batch
    assert plan(["gan=rankrb", "trainer.devices=[0]"])[0].key == base["blur"]
    quiet = {s.name: s.key for s in plan(["gan=rankrb", "gan.module.num_logged_images=0", "+stages.all.max_steps=3"])}
    loud = {s.name: s.key for s in plan(["gan=rankrb", "gan.module.num_logged_images=5", "+stages.all.max_steps=3"])}
    assert quiet == loud
    monkeypatch.setattr(ranksrgan, "__version__", "99.0")
    assert all(k != base[n] for n, k in ((s.name, s.key) for s in plan(["gan=rankrb"])))


def test_world_size():
    from omegaconf import OmegaConf

    def ws(**kw):
        return pipeline.world_size(OmegaConf.create({"accelerator": "cpu", "devices": 1, "num_nodes": 1, **kw}))

    assert (ws(), ws(devices=4), ws(devices=[0, 2]), ws(devices="0,1,3"), ws(devices=2, num_nodes=3)) == (1, 4, 2, 3, 6)
    assert ws(devices=-1) == 1 and ws(devices="auto") == 1  # CPU: one process


def test_sr_ranker_label_settings_are_checked_against_the_file_header(tmp_path):
    from ranksrgan.data.rank.labels import LABEL_FORMAT, LabelTable, _columns, write_labels

    hr = tmp_path / "HR"
    hr.mkdir()
    meta = {
        "format": LABEL_FORMAT,
        "hr": str(hr),
        "sr": {"a": "hr", "b": "bicubic"},
        "methods": ["a", "b"],
        "metrics": ["niqe"],
        "patch_size": 296,
        "stride": 100,
        "crop_border": 4,
        "scale": 4,
    }
    labels = tmp_path / "labels.csv"
    write_labels(labels, LabelTable(meta, _columns(meta), []))
    common = ["ranker=sr", f"ranker.datamodule.labels={labels}"]
    with pytest.raises(ValueError, match="built with stride=100, but the config says stride=200"):
        plan(common)
    a = plan([*common, "ranker.datamodule.stride=100", "ranker.datamodule.label_batch_size=4"])
    b = plan([*common, "ranker.datamodule.stride=100", "ranker.datamodule.label_batch_size=64"])
    assert a[0].key == b[0].key and str(labels) in a[0].inputs and str(hr) in a[0].inputs
    labels.write_text(labels.read_text().replace('"crop_border": 4', '"crop_border": 4 '))  # new content
    assert plan([*common, "ranker.datamodule.stride=100"])[0].key != a[0].key


def test_dry_run_after_a_finished_run_reuses_every_stage(tiny_run):
    cfg, overrides, result = tiny_run
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        stages = pipeline.Planner(cfg, overrides).plan()
        text = pipeline.describe_plan(cfg, stages)
    rows = [line.split() for line in text.splitlines() if line[:2].strip().isdigit()]
    assert len(rows) == 5 and all(r[5] == "reuse" for r in rows), text


def test_tiny_pipeline_end_to_end_then_reuse(tiny_run):
    cfg, overrides, result = tiny_run
    assert set(result["stages"]) == {"blur", "interp", "srresnet", "srgan", "rankrbri"}
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
    for name in ("blur", "interp", "srresnet", "srgan"):
        assert count(after, name) == count(before, name) == 1
    assert count(after, "rankrbri") == count(before, "rankrbri") + 2
    results = list(Path(cfg.paths.root, "multiruns").rglob("optimization_results.yaml"))
    assert len(results) == 1
    best = yaml.safe_load(results[0].read_text())
    assert best["name"] == "optuna" and "best_value" in best and set(best["best_params"]) >= {"gan.rankers.0.weight"}
    # one table across the jobs, best first
    assert "Sweep summary (2 jobs, best first by val/niqe ↓)" in proc.stdout
    assert len(list(Path(cfg.paths.root, "multiruns").rglob("sweep_summary.md"))) == 1


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


def test_sweep_summary_orders_jobs_by_the_monitored_metric(tmp_path, capsys):
    from omegaconf import OmegaConf

    from ranksrgan.cli.sweep import SweepSummary, format_sweep, write_job_result

    for job, (weight, niqe) in enumerate(((0.01, 6.5), (0.03, 6.1), (0.1, float("nan")))):
        write_job_result(
            tmp_path / str(job), [f"gan.rankers.0.weight={weight}"], "best/val/niqe", "min", niqe, {"val/psnr": 25.0 + job}
        )
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[2].strip() for r in rows] == [
        "gan.rankers.0.weight=0.03",
        "gan.rankers.0.weight=0.01",
        "gan.rankers.0.weight=0.1",
    ]
    assert rows[0].split("|")[3].strip() == "6.1" and rows[0].split("|")[4].strip() == "26"
    table, written = out.strip().rsplit("\n\n", 1)
    assert (tmp_path / "sweep_summary.md").read_text().strip() == table.strip()
    assert written == f"Written: {tmp_path / 'sweep_summary.md'}"
    assert format_sweep([]) == "sweep summary: no job wrote a result"


def test_trainer_config_passes_through_and_what_changes_results_is_in_the_key(tmp_path):
    base = {s.name: s for s in plan(["gan=rankrb"])}
    clipped = {s.name: s for s in plan(["gan=rankrb", "+trainer.gradient_clip_val=1.0"])}
    logged = {s.name: s for s in plan(["gan=rankrb", "trainer.log_every_n_steps=7", "trainer.accelerator=cpu"])}
    assert all(clipped[n].key != base[n].key and logged[n].key == base[n].key for n in base)
    with pytest.raises(pipeline.PlanError, match="trainer.max_steps is set per stage by the pipeline"):
        plan(["gan=rankrb", "+trainer.max_steps=3"])
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        overrides = [
            "experiment=smoke",
            "gan=rankrb",
            "+trainer.gradient_clip_val=0.5",
            "+trainer.callbacks.swa={_target_: pytorch_lightning.callbacks.StochasticWeightAveraging, swa_lrs: 0.01}",
            f"paths.root={tmp_path}",
        ]
        cfg = compose(config_name="config", overrides=overrides)
        stage = pipeline.Planner(cfg, overrides).plan()[0]
        trainer = pipeline.make_trainer(cfg, stage, tmp_path / "w", 3, 3, "val/srocc", "max")
    from pytorch_lightning.callbacks import StochasticWeightAveraging
    from pytorch_lightning.loggers import CSVLogger

    assert trainer.gradient_clip_val == 0.5 and trainer.max_steps == 3
    assert any(isinstance(c, StochasticWeightAveraging) for c in trainer.callbacks)
    assert isinstance(trainer.logger, CSVLogger) and trainer.logger.name == f"blur-{stage.key}"
