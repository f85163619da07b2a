"""Stages you can trust: a changed input retrains, ``reuse_stages=false`` retrains from step 0,
a killed stage resumes exactly, a kill while publishing leaves the store consistent, and
``ranksrgan-store`` looks after it all."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir

from ranksrgan import pipeline
from ranksrgan.cli import store as store_cli
from ranksrgan.io import read_image, write_image
from ranksrgan.lit.history import HISTORY_FILE, load_history
from ranksrgan.store import StageStore, describe_change

CONF = str(Path(__file__).resolve().parents[1] / "conf")

# One tiny blur Ranker stage: 6 steps, validation (and last.ckpt) every 2, LR halved every 3 steps.
TINY_RANKER = [
    "ranker=blur",
    "data=demo",
    "trainer=cpu",
    "logger=csv",
    "ranker.max_steps=6",
    "ranker.val_check_interval=2",
    "ranker.datamodule.patch_size=32",
    "ranker.datamodule.batch_size=4",
    "ranker.datamodule.num_workers=0",
    "ranker.datamodule.val_windows_per_image=1",
    "ranker.module.variant=vgg8",
    "ranker.module.num_features=4",
    "ranker.module.lr_step=3",
]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _run(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        return pipeline.run(cfg, overrides)


def _actions(overrides: list[str]) -> list[tuple[str, str, str]]:
    """``(name, action, reason)`` of every stage, as the dry run prints them."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        stages = pipeline.Planner(cfg, overrides).plan()
        store = StageStore(cfg.paths.store)
        text = pipeline.describe_plan(cfg, stages)
        assert all(s.key in text for s in stages)
        return [(s.name, *vars(pipeline.decide(cfg, s, store)).values()) for s in stages]


class _Recorder(pl.Callback):
    """Records the step each fit starts at and the learning rate after every step."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at, self.start_step, self.lrs = kill_at, None, {}

    def on_train_start(self, trainer, module):
        self.start_step = trainer.global_step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.lrs[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]
        if self.kill_at is not None and trainer.global_step == self.kill_at:
            raise RuntimeError("killed")


_MAKE_TRAINER = pipeline.make_trainer


def _with_callback(monkeypatch, callback: pl.Callback) -> None:
    make = _MAKE_TRAINER

    def patched(*args, **kwargs):
        trainer = make(*args, **kwargs)
        trainer.callbacks.append(callback)
        return trainer

    monkeypatch.setattr(pipeline.training, "make_trainer", patched)


def test_smoke_run_reuse_false_retrains_from_step_0_and_a_changed_image_retrains(tmp_path, caplog):
    overrides = ["experiment=smoke", "gan=rankrb", f"paths.root={tmp_path}"]
    first = _run(overrides)
    assert [a[1] for a in _actions(overrides)] == ["reuse"] * 3
    store = StageStore(tmp_path / "store")

    # reuse_stages=false: every stage trains from step 0 in a fresh folder; the old one is moved aside
    caplog.set_level(logging.INFO, logger="ranksrgan.pipeline")
    fresh = [*overrides, "reuse_stages=false"]
    assert [a[1] for a in _actions(fresh)] == ["train"] * 3
    again = _run(fresh)
    assert again["stages"] == first["stages"]  # same keys
    for stage in again["all"]:
        assert "reuse_stages=false: from step 0" in caplog.text and f"training {stage.kind} {stage.name}" in caplog.text
        moved = list((tmp_path / "store" / "training").glob(f"{stage.name}-{stage.key}.old-*"))
        assert len(moved) == 1 and (moved[0] / HISTORY_FILE).is_file()
        # the fresh folder's validation history starts again at the first validation
        assert [e["step"] for e in load_history(store.work_dir(stage.name, stage.key) / HISTORY_FILE)] == [stage.steps]
        assert store.finished(stage.kind, stage.name, stage.key) is not None
        # finished: the training checkpoints are gone, the published network stays
        assert not (store.work_dir(stage.name, stage.key) / "checkpoints").exists()
    assert "reusing" not in caplog.text and "resum" not in caplog.text.lower()

    # one training image changes content (same name, same size, new pixels and mtime)
    image = tmp_path / "data" / "demo" / "train" / "HR" / "astronaut.png"
    x = read_image(image)
    x[:, :4, :4] = 1 - x[:, :4, :4]
    write_image(image, x)
    actions = _actions(overrides)
    assert [a[1] for a in actions] == ["train"] * 3
    for _, _, reason in actions:
        assert "input changed" in reason and str(image.parent) in reason


def test_killed_stage_resumes_from_its_last_checkpoint_with_the_same_schedule(tmp_path, monkeypatch):
    overrides = [*TINY_RANKER, f"paths.root={tmp_path}"]
    killed = _Recorder(kill_at=5)
    _with_callback(monkeypatch, killed)
    with pytest.raises(RuntimeError, match="killed"):
        _run(overrides)
    assert killed.start_step == 0
    (name, action, reason) = _actions(overrides)[0]
    assert (name, action) == ("blur", "resume") and "last.ckpt" in reason

    resumed = _Recorder()
    _with_callback(monkeypatch, resumed)
    result = _run(overrides)
    assert resumed.start_step == 4  # the last validation before the kill saved last.ckpt at step 4
    reference = _Recorder()
    _with_callback(monkeypatch, reference)
    _run([*overrides, f"paths.root={tmp_path / 'reference'}"])
    # StepLR(3, 0.5): the resumed run continues the uninterrupted run's schedule step for step
    assert resumed.lrs == {k: v for k, v in reference.lrs.items() if k > 4}
    assert resumed.lrs[6] == pytest.approx(1e-3 * 0.25)
    record = StageStore(tmp_path / "store").finished("ranker", "blur", result["final"].key)
    assert record is not None and record["key"] == result["final"].key


@pytest.mark.parametrize("point", ["network", "record"])
def test_kill_while_publishing_leaves_the_store_consistent(tmp_path, monkeypatch, point):
    """Killed while writing the network (nothing published) or between the network and its
    record (a network without a record): the next run publishes the finished stage."""
    import ranksrgan.export
    import ranksrgan.store

    overrides = [*TINY_RANKER, f"paths.root={tmp_path}"]
    target = (ranksrgan.export, "atomic_path") if point == "network" else (ranksrgan.store, "atomic_write_bytes")

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(*target, die)
        with pytest.raises(KeyboardInterrupt):
            _run(overrides)
    store = StageStore(tmp_path / "store")
    stage = pipeline.Planner(_compose(overrides), overrides).plan()[0]
    assert store.finished("ranker", "blur", stage.key) is None and store.records() == []
    assert store.artifact("ranker", "blur", stage.key).exists() == (point == "record")
    assert (store.work_dir("blur", stage.key) / "checkpoints" / "last.ckpt").is_file()
    assert not list((tmp_path / "store").rglob("*.tmp*"))
    assert _actions(overrides)[0][1] == "resume"
    _run(overrides)  # fit returns at once (max_steps reached), then publishes
    record = store.finished("ranker", "blur", stage.key)
    history = load_history(store.work_dir("blur", stage.key) / HISTORY_FILE)
    assert record is not None and record["last"]["val/srocc"] == pytest.approx(history[-1]["val/srocc"])
    assert record["selected"] == "best" and record["metrics"]["val/srocc"] == record["best"]["val/srocc"]


def test_a_record_never_vouches_for_another_network(tmp_path):
    from ranksrgan.nets import Ranker

    store = StageStore(tmp_path)
    record = {"kind": "ranker", "name": "blur", "key": "abc123def456", "metrics": {}, "config": {}}
    store.publish(Ranker(variant="vgg8", num_features=4), record)
    assert store.finished("ranker", "blur", "abc123def456") is not None
    from ranksrgan.export import save_state_dict

    save_state_dict(Ranker(variant="vgg8", num_features=4), store.artifact("ranker", "blur", "abc123def456"))
    assert store.finished("ranker", "blur", "abc123def456") is None


def test_describe_change_names_what_changed():
    old = {"config": {"ranker": {"max_steps": 1000}}, "inputs": {"a/HR": "x"}, "deps": {"srgan": "1"}, "world_size": 1}
    new = {"config": {"ranker": {"max_steps": 6}}, "inputs": {"a/HR": "y"}, "deps": {"srgan": "2"}, "world_size": 2}
    text = describe_change(old, new)
    for part in ("input changed: a/HR", "retrained dependency: srgan", "world_size 1 -> 2", "ranker.max_steps 1000 -> 6"):
        assert part in text


def test_a_failed_start_leaves_no_empty_work_folder(tmp_path, monkeypatch):
    overrides = [*TINY_RANKER, f"paths.root={tmp_path}"]

    def fail(self, *args, **kwargs):
        raise RuntimeError("data loader broke")

    monkeypatch.setattr(pl.Trainer, "fit", fail)
    with pytest.raises(RuntimeError, match="data loader broke"):
        _run(overrides)
    assert list((tmp_path / "store" / "training").iterdir()) == []


def test_store_cli_list_show_diff_remove_prune(tmp_path, capsys):
    from ranksrgan.nets import Ranker

    store = StageStore(tmp_path)
    for key, steps in (("aaaa11112222", 10), ("aaaa33334444", 20)):
        record = {
            "kind": "ranker",
            "name": "blur",
            "key": key,
            "selected": "best",
            "metrics": {"val/srocc": 0.75},
            "last": {"iteration": steps, "val/srocc": 0.5},
            "best": {"iteration": steps // 2, "val/srocc": 0.75},
            "config": {"ranker": {"max_steps": steps, "monitor": "val/srocc"}},
        }
        store.publish(Ranker(variant="vgg8", num_features=4), record)
        (store.work_dir("blur", key) / "checkpoints").mkdir(parents=True)
    (tmp_path / "training" / "blur-aaaa11112222.old-20260101-000000").mkdir()

    def cli(*args: str) -> tuple[int, str, str]:
        code = store_cli.main(["--store", str(tmp_path), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = cli("list")
    assert code == 0 and out.count("blur") == 2 and "srocc=0.75" in out and "srocc=0.5" in out
    code, out, _ = cli("show", "aaaa1111")
    assert code == 0 and json.loads(out)["config"]["ranker"]["max_steps"] == 10
    code, out, _ = cli("show", "aaaa1111", "--diff", "blur-aaaa3333")
    assert code == 0 and "ranker.max_steps: 20 -> 10" in out
    code, _, err = cli("show", "aaaa")
    assert code == 1 and "ambiguous" in err and err.count("\n") == 1
    code, _, err = cli("remove", "ffff")
    assert code == 1 and "no stored stage with key 'ffff'" in err
    code, out, _ = cli("prune", "--dry-run")
    assert code == 0 and "would remove" in out and ".old-" in out and (tmp_path / "training").glob("*.old-*")
    code, out, _ = cli("prune")
    assert code == 0 and not list((tmp_path / "training").glob("*.old-*"))
    assert store.work_dir("blur", "aaaa11112222").is_dir()  # finished stages keep their work folders by default
    code, out, _ = cli("remove", "aaaa1111")
    assert code == 0 and [r["key"] for r in store.records()] == ["aaaa33334444"]
    assert not store.work_dir("blur", "aaaa11112222").exists()
    code, _, err = store_cli.main(["--store", str(tmp_path / "none"), "list"]), "", capsys.readouterr().err
    assert code == 2 and "no such store folder" in err


def test_interp_ranker_record_names_the_generator_file_it_ran_on(tiny_run):
    cfg, _, result = tiny_run
    interp = next(r for r in StageStore(cfg.paths.store).records("ranker", "interp"))
    assert interp["config"]["ranker"]["datamodule"]["sr"] == str(result["stages"]["srgan"])
    assert interp["key_config"]["ranker"]["datamodule"]["sr"] == "srgan"
    assert interp["deps"] == {"srgan": next(s.key for s in result["all"] if s.name == "srgan")}


def _record(store: StageStore, stage: pipeline.Stage, key: str, mtime: float, **config: object) -> None:
    """A stored record of ``stage``'s name whose key payload has ``config`` changes (dotted keys)."""
    from omegaconf import OmegaConf

    payload = stage.payload()
    changed = OmegaConf.create(payload["config"])
    for dotted, value in config.items():
        OmegaConf.update(changed, dotted, value, force_add=True)
    record = {**payload, "name": stage.name, "key": key, "config": {}, "key_config": OmegaConf.to_container(changed)}
    path = store.record_path(stage.kind, stage.name, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    import os

    os.utime(path, (mtime, mtime))


def test_a_stage_to_train_is_explained_against_the_most_similar_stored_one(tmp_path):
    """After a smoke run, a one-key change names that key, not the newest stage's many differences."""
    from ranksrgan.store import count_changes

    overrides = ["gan=srresnet", f"paths.root={tmp_path}"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        (stage,) = pipeline.Planner(cfg, overrides).plan()
        store = StageStore(cfg.paths.store)
        _record(store, stage, "aaaaaaaaaaaa", 1000.0, **{"gan.max_steps": 5})  # older, one key
        many = {"gan.max_steps": 2, "gan.val_check_interval": 2, "seed": 7, "data.batch_size": 2, "data.hr_patch_size": 32}
        _record(store, stage, "bbbbbbbbbbbb", 2000.0, **many)  # newest, five keys
        decision = pipeline.decide(cfg, stage, store)
    assert decision.action == "train"
    assert decision.reason == f"differs from srresnet-aaaaaaaaaaaa: config: gan.max_steps 5 -> {stage.steps}"
    newest = next(r for r in store.records() if r["key"] == "bbbbbbbbbbbb")
    old = {**newest, "config": newest["key_config"]}
    assert count_changes(old, stage.payload()) == 5
    assert count_changes({**old, "world_size": 2, "inputs": {**old["inputs"], "x": "1"}}, stage.payload()) == 7


def test_a_dry_run_that_would_stop_exits_2_and_says_why(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}  # no VGG19 weights there
    args = [sys.executable, "train.py", "gan=srgan", "dry_run=true", f"paths.root={tmp_path}"]
    proc = subprocess.run(args, cwd=Path(CONF).parent, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2 and "Plan (2 stages" in proc.stdout and "Before this can run" not in proc.stdout
    hub = tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert proc.stderr.strip().splitlines() == [
        f"ranksrgan-train: error: {hub}: VGG19 ImageNet weights for the perceptual loss of gan=srgan are not downloaded yet "
        "(copy it there from a machine with internet, or set gan.module.perceptual.pretrained=false (random VGG))"
    ]


def test_store_list_names_experiment_and_data_and_explains_missing_numbers(tmp_path, capsys):
    from ranksrgan.nets import Ranker

    store = StageStore(tmp_path)
    gan = {"monitor": "val/niqe"}
    records = [
        (
            "generator",
            "rankrbri",
            "aaaa00000001",
            {"val/niqe": float("nan"), "best/val/niqe": float("inf")},
            {"gan": gan},
            "demo",
        ),
        ("generator", "srgan", "aaaa00000002", {"val/niqe": 6.4213, "best/val/niqe": 6.1}, {"gan": gan}, "fig22"),
        ("ranker", "blur", "aaaa00000003", {}, {"ranker": {"monitor": "val/srocc", "datamodule": {"train_hr": ["/d/HR"]}}}, None),
    ]
    for i, (kind, name, key, metrics, config, experiment) in enumerate(records):
        origin = {"experiment": experiment, "data": "folders" if kind == "ranker" else "demo"}
        store.publish(
            Ranker(variant="vgg8", num_features=4),
            {"kind": kind, "name": name, "key": key, "metrics": metrics, "config": config, "origin": origin},
        )
        path = store.record_path(kind, name, key)
        import os

        os.utime(path, (1000.0 - i, 1000.0 - i))
    assert store_cli.main(["--store", str(tmp_path), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[1:4]]
    assert [(r[1], r[3:5], r[-2:]) for r in rows[:2]] == [
        ("rankrbri", ["niqe=undefined", "[2]"], ["demo", "demo"]),
        ("srgan", ["niqe=6.421", "niqe=6.1"], ["fig22", "demo"]),
    ]
    assert rows[0][5:7] == ["-", "[3]"] and rows[2][3:7] == ["-", "[1]", "-", "[1]"] and rows[2][-2:] == ["-", "/d/HR"]
    assert lines[4:] == [
        "[1] no validation logged the best val/srocc / the last val/srocc for this stage",
        "[2] the last validation's val/niqe is NaN: undefined for constant or near-constant outputs, or a diverged network",
        "[3] no validation gave a finite val/niqe, so none was best",
    ]
    assert not re.search(r"=-?(nan|inf)\b", "\n".join(lines), re.IGNORECASE)
