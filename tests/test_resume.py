"""Exact resume: a stage killed anywhere and run again publishes the weights of an uninterrupted
run, bit for bit (Rankers of several families, generator pre-training and a GAN, loader workers
off and on); Ctrl-C saves the current step, says what it saved and how to resume; training
samples are a pure function of (seed, epoch, index)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from ranksrgan import pipeline
from ranksrgan.cli import store as store_cli
from ranksrgan.data.sampling import EpochSampler, ResumableLoader, item_seed
from ranksrgan.lit.resume import StageInterrupted, resume_command

REPO = Path(__file__).resolve().parents[1]
CONF = str(REPO / "conf")

# Epochs of 3 batches, validation (and last.ckpt) every 2 steps, 8 steps: kills land mid-epoch,
# one step after a validation, and after a validation at the last batch of an epoch.
RANKER = [
    "data=demo",
    "trainer=cpu",
    "logger=csv",
    "ranker.max_steps=8",
    "ranker.val_check_interval=2",
    "ranker.datamodule.patch_size=32",
    "ranker.datamodule.batch_size=4",
    "ranker.datamodule.num_workers=0",
    "ranker.module.variant=vgg8",
    "ranker.module.num_features=4",
    "ranker.module.lr_step=3",
]
HR_FAMILY = ["ranker.datamodule.patches_per_epoch=12", "ranker.datamodule.val_windows_per_image=1"]
# What the families made from HR folders (blur, noise, interp, albumentations) and sr need at this
# size: interp from bicubic SR; sr from labels built here (HR and bicubic SR of the demo images,
# labelled by RMSE: cheap).
FAMILY = {
    "interp": [*HR_FAMILY, "ranker.datamodule.sr=bicubic"],
    "sr": [
        "ranker.datamodule.labels=${paths.root}/labels.csv",
        "ranker.datamodule.hr=${data.train_hr[0]}",
        "+ranker.datamodule.sr={hr: hr, bicubic: bicubic}",
        "ranker.datamodule.metric=rmse",
        "ranker.datamodule.stride=32",
        "ranker.datamodule.min_gap=0",
        "ranker.datamodule.max_patches_per_image=4",
    ],
}
# The smoke pipeline's blur Ranker, SRResNet (pre-training) and SRGAN (G + D: 2 optimiser steps
# per iteration); generators 5 iterations, epochs of 3, validation every 2.
GAN = [
    "experiment=smoke",
    "gan=srgan",
    "+stages.generators.max_steps=5",
    "+stages.generators.val_check_interval=2",
    "data.patches_per_epoch=6",
]


def _run(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        return pipeline.run(cfg, overrides)


def _digest(path: Path) -> str:
    """SHA-256 of every tensor of a published network (weights and buffers)."""
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode() + state[name].numpy().tobytes())
    return h.hexdigest()


def _published(result: dict) -> dict[str, str]:
    return {name: _digest(Path(path)) for name, path in result["stages"].items()}


class _At(pl.Callback):
    """At optimiser step ``step`` of stage ``stage`` (any stage when None): raise (a kill: nothing
    is saved beyond ``last.ckpt``) at the end of the batch that reaches it, or send ``signum`` to
    this process while that batch runs (``per_batch``: optimiser steps per batch, 2 for a GAN)."""

    def __init__(self, step: int, stage: str | None = None, signum: int | None = None, per_batch: int = 1) -> None:
        self.step, self.stage, self.signum, self.per_batch = step, stage, signum, per_batch
        self.rng: dict[int, str] = {}  # global torch RNG at the start of each step (then drawn from)

    def _here(self, trainer) -> bool:
        return self.stage is None or Path(trainer.default_root_dir).name.startswith(f"{self.stage}-")

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.rng[trainer.global_step] = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
        torch.rand(1)  # a draw from the global RNG each step, as dropout would make
        if self.signum is not None and self._here(trainer) and trainer.global_step == self.step - self.per_batch:
            os.kill(os.getpid(), self.signum)  # arrives while step `self.step` runs

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.signum is None and self._here(trainer) and trainer.global_step == self.step:
            raise RuntimeError("killed")


_MAKE_TRAINER = pipeline.make_trainer


def _with(monkeypatch, callback: pl.Callback | None) -> None:
    def patched(*args, **kwargs):
        trainer = _MAKE_TRAINER(*args, **kwargs)
        if callback is not None:
            trainer.callbacks.append(callback)
        return trainer

    monkeypatch.setattr(pipeline.training, "make_trainer", patched)


_REFERENCE: dict[tuple[str, ...], tuple[dict[str, str], dict[int, str]]] = {}


def _reference(monkeypatch, tmp_path_factory, overrides: list[str]) -> tuple[dict[str, str], dict[int, str]]:
    """Published digests and per-step RNG states of an uninterrupted run (once per config)."""
    key = tuple(overrides)
    if key not in _REFERENCE:
        recorder = _At(step=-1)
        _with(monkeypatch, recorder)
        result = _run([*overrides, f"paths.root={tmp_path_factory.mktemp('reference')}"])
        _REFERENCE[key] = (_published(result), recorder.rng)
    return _REFERENCE[key]


@pytest.mark.parametrize(
    "ranker, workers, kill_at",
    [
        ("blur", 0, 3),  # an epoch's last step, one after the validation at 2
        ("blur", 0, 5),  # mid-epoch, one after the validation at 4
        ("blur", 0, 7),  # after the validation at 6, the last batch of an epoch
        ("noise", 0, 5),
        ("interp", 0, 5),
        ("sr", 0, 5),
        ("jpeg", 0, 5),
        ("jpeg", 1, 7),  # albumentations in a DataLoader worker
    ],
)
def test_a_killed_ranker_publishes_the_uninterrupted_weights(tmp_path, tmp_path_factory, monkeypatch, ranker, workers, kill_at):
    overrides = [f"ranker={ranker}", *RANKER, f"ranker.datamodule.num_workers={workers}", *FAMILY.get(ranker, HR_FAMILY)]
    digests, rng = _reference(monkeypatch, tmp_path_factory, overrides)
    killed = _At(kill_at)
    _with(monkeypatch, killed)
    with pytest.raises(RuntimeError, match="killed"):
        _run([*overrides, f"paths.root={tmp_path}"])
    resumed = _At(step=-1)
    _with(monkeypatch, resumed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _published(_run([*overrides, f"paths.root={tmp_path}"])) == digests
    assert not [w for w in caught if "exists and is not empty" in str(w.message) or "not resumable" in str(w.message)]
    # it resumed from the last validation before the kill, with the global RNG of that step
    assert min(resumed.rng) == kill_at // 2 * 2 and len(killed.rng) == kill_at
    assert resumed.rng == {step: rng[step] for step in resumed.rng}


def test_killed_pretraining_and_gan_publish_the_uninterrupted_weights(tmp_path, tmp_path_factory, monkeypatch):
    digests, _ = _reference(monkeypatch, tmp_path_factory, GAN)
    overrides = [*GAN, f"paths.root={tmp_path}"]
    _with(monkeypatch, _At(3, stage="srresnet"))  # iteration 3: mid-epoch, after the validation at 2
    with pytest.raises(RuntimeError, match="killed"):
        _run(overrides)
    _with(monkeypatch, _At(6, stage="srgan"))  # optimiser step 6 = iteration 3 (G and D steps), after the validation at 2
    with pytest.raises(RuntimeError, match="killed"):
        _run(overrides)
    _with(monkeypatch, None)
    assert _published(_run(overrides)) == digests


def test_ctrl_c_saves_the_current_step_and_says_how_to_resume(tmp_path, tmp_path_factory, monkeypatch, capsys):
    overrides = ["ranker=blur", *RANKER, *HR_FAMILY]
    digests, _ = _reference(monkeypatch, tmp_path_factory, overrides)
    _with(monkeypatch, _At(5, signum=signal.SIGINT))  # 5: no validation there (every 2)
    with pytest.raises(StageInterrupted) as stop:
        _run([*overrides, f"paths.root={tmp_path}"])
    assert (stop.value.step, stop.value.signum, stop.value.exit_code) == (5, signal.SIGINT, 130)
    saved = torch.load(stop.value.path, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 5 and Path(stop.value.path).name == "last.ckpt"
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        f"[stage 1/1 ranker blur] interrupted by SIGINT at 5/8 step: saved {stop.value.path}; resume with: {resume_command()}"
    )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back
    assert store_cli.main(["--store", str(tmp_path / "store"), "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[:2] == [
        f"{tmp_path / 'store'}: no stored stages",
        "unfinished stages (the same training command resumes them):",
    ]
    assert listing[2].split()[:3] == [Path(stop.value.path).parents[1].name, "step", "5"]
    resumed = _At(step=-1)
    _with(monkeypatch, resumed)
    assert _published(_run([*overrides, f"paths.root={tmp_path}"])) == digests
    assert min(resumed.rng) == 5


def test_sigterm_during_a_gan_validation_step_stops_after_that_validation(tmp_path, monkeypatch, capsys):
    """SIGTERM during the step of a validation: the validation runs, then it stops (the line counts
    iterations and names the optimiser step)."""
    _with(monkeypatch, _At(4, stage="srresnet", signum=signal.SIGTERM))
    with pytest.raises(StageInterrupted) as stop:
        _run([*GAN, f"paths.root={tmp_path}"])
    assert stop.value.step == 4 and stop.value.exit_code == 143
    err = capsys.readouterr().err
    assert "validation at 4" in err and "[stage 2/3 generator srresnet] interrupted by SIGTERM at 4/5 it: saved" in err
    _with(monkeypatch, _At(4, stage="srgan", signum=signal.SIGTERM, per_batch=2))
    with pytest.raises(StageInterrupted) as stop:
        _run([*GAN, f"paths.root={tmp_path}"])
    assert stop.value.step == 4 and "interrupted by SIGTERM at 2/5 it (step 4): saved" in capsys.readouterr().err


@pytest.mark.slow
def test_train_py_ctrl_c_exits_130_and_the_same_command_resumes(tmp_path, tmp_path_factory, monkeypatch):
    overrides = ["ranker=blur", *RANKER, *HR_FAMILY]
    digests, _ = _reference(monkeypatch, tmp_path_factory, overrides)
    command = [
        sys.executable,
        "train.py",
        *overrides,
        f"paths.root={tmp_path}",
        "+trainer.callbacks.ctrl_c._target_=test_resume._At",
        "+trainer.callbacks.ctrl_c.step=5",
        f"+trainer.callbacks.ctrl_c.signum={int(signal.SIGINT)}",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 130, first.stderr[-2000:]
    line = first.stderr.strip().splitlines()[-1]
    assert (
        line.startswith("[stage 1/1 ranker blur] interrupted by SIGINT at 5/8 step: saved ") and "Traceback" not in first.stderr
    )
    assert line.endswith("resume with: python train.py " + " ".join(command[2:]))
    # the same command (the signal would come at step 5 of a run from step 0; this one starts there)
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed at 5" in again.stderr and "exists and is not empty" not in again.stderr
    published = next((tmp_path / "store" / "rankers").glob("blur-*.pth"))
    assert {"blur": _digest(published)} == digests


# ----------------------------------------------------------------------------- sampling


def test_epoch_sampler_is_a_function_of_seed_epoch_and_index():
    a, b = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    first, second = list(a), list(a)
    assert sorted(i for i, _ in first) == list(range(10)) and [i for i, _ in first] != [i for i, _ in second]
    assert list(b.keys(1)) == second  # epoch 1, whatever came before
    assert [i for i, _ in EpochSampler(10, seed=4).keys(0)] != [i for i, _ in first]
    assert dict(first)[7] == item_seed(3, 0, 7) != item_seed(3, 1, 7)
    b.resume(1, 4)  # the rest of epoch 1 from key 4, then epoch 2
    assert list(b) == second[4:] and list(b) == list(a.keys(2)) and b.last_epoch == 2
    assert len({item_seed(0, 0, i) for i in range(1000)}) == 1000


def test_loader_state_restarts_at_the_batch_and_the_device_loader_gives_the_same_batches(demo_root):
    from ranksrgan.data.paired import DevicePatchLoader, PairedSRDataModule

    def datamodule(**kwargs):
        dm = PairedSRDataModule(
            train_hr=[str(demo_root / "train" / "HR")],
            val_hr=[str(demo_root / "val" / "HR")],
            hr_patch_size=32,
            batch_size=4,
            num_workers=0,
            patches_per_epoch=12,
            **kwargs,
        )
        dm.setup("fit")
        return dm

    torch.manual_seed(11)
    loader = datamodule().train_dataloader()
    torch.manual_seed(11)
    device = datamodule(patches_on_device=True).train_dataloader()
    assert isinstance(loader, ResumableLoader) and isinstance(device, DevicePatchLoader)
    epochs = [[b["hr"] for b in loader] for _ in range(2)]
    for epoch in epochs:
        batches = [b["hr"] for b in device]
        assert len(batches) == len(epoch) == 3
        assert all(torch.equal(x, y) for x, y in zip(epoch, batches))  # the same patches, bit for bit
    assert not torch.equal(epochs[0][0], epochs[1][0])
    # the state of 1 batch trained in epoch 1 -> the next iteration is batches 1, 2 of epoch 1
    torch.manual_seed(11)
    for fresh in (datamodule().train_dataloader(), datamodule(patches_on_device=True).train_dataloader()):
        fresh.trained = lambda: 1
        list(fresh)  # epoch 0 under way ...
        list(fresh)  # ... now epoch 1
        state = fresh.state_dict()
        assert state == {"epoch": 1, "batches": 1}
        torch.manual_seed(0)  # the global RNG plays no part
        fresh.load_state_dict(state)
        rest = [b["hr"] for b in fresh]
        assert len(rest) == 2 and all(torch.equal(x, y) for x, y in zip(rest, epochs[1][1:]))
