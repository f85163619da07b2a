"""ValidationHistory (the convergence-curve data of Fig. 22) and format_curves."""

from __future__ import annotations

import json
import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from ranksrgan.lit.history import HISTORY_FILE, ValidationHistory, format_curves, load_history


class TinyModule(pl.LightningModule):
    """One weight; validation logs ``val/step_echo`` (the global step it ran at) and ``val/const``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - batch[0].mean()).pow(2).sum()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self) -> None:
        self.log("val/step_echo", float(self.global_step))
        self.log("val/const", 0.5)
        self.log("train_like", 1.0)  # not under val/: not recorded

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(64, 2)), batch_size=2)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(2, 2)), batch_size=2)


class IterModule(TinyModule):
    """Like a GAN module: ``iteration`` counts one update per two optimizer steps."""

    @property
    def iteration(self) -> int:
        return self.global_step // 2


def _fit(tmp_path, module, max_steps, ckpt_path=None, every=2):
    from pytorch_lightning.callbacks import ModelCheckpoint

    history = ValidationHistory(tmp_path / HISTORY_FILE)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        val_check_interval=every,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[history, ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True, save_top_k=0)],
    )
    trainer.fit(module, ckpt_path=ckpt_path)
    return history


def test_history_records_every_validation_scalar_and_survives_resume(tmp_path):
    _fit(tmp_path, TinyModule(), max_steps=4)
    first = load_history(tmp_path / HISTORY_FILE)
    # sanity check skipped; one entry per validation, at global steps 2 and 4
    assert [e["step"] for e in first] == [2, 4]
    assert first[0] == {"step": 2, "global_step": 2, "val/const": 0.5, "val/step_echo": 2.0}

    # a stale entry written after the last checkpoint (step 4) by a run that was then killed
    stale = first + [{"step": 6, "global_step": 6, "val/const": -1.0, "val/step_echo": -1.0}]
    (tmp_path / HISTORY_FILE).write_text(json.dumps(stale))
    history = _fit(tmp_path, TinyModule(), max_steps=8, ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    entries = load_history(tmp_path / HISTORY_FILE)
    assert [e["step"] for e in entries] == [2, 4, 6, 8]  # each step once, the stale 6 replaced
    assert [e["val/step_echo"] for e in entries] == [2.0, 4.0, 6.0, 8.0]
    assert history.entries == entries

    # a fresh fit in the same folder starts a new history
    _fit(tmp_path, TinyModule(), max_steps=2)
    assert [e["step"] for e in load_history(tmp_path / HISTORY_FILE)] == [2]


def test_history_uses_the_module_iteration_when_present(tmp_path):
    _fit(tmp_path, IterModule(), max_steps=8, every=4)
    entries = load_history(tmp_path / HISTORY_FILE)
    assert [(e["step"], e["global_step"]) for e in entries] == [(2, 4), (4, 8)]


def test_history_written_on_rank_zero_only(tmp_path):
    class FakeTrainer:
        sanity_checking = False
        is_global_zero = False
        global_step = 3
        callback_metrics = {"val/psnr": torch.tensor(20.0)}

    cb = ValidationHistory(tmp_path / HISTORY_FILE)
    cb.on_validation_end(FakeTrainer(), TinyModule())
    assert not (tmp_path / HISTORY_FILE).exists()
    FakeTrainer.is_global_zero = True
    cb.on_validation_end(FakeTrainer(), TinyModule())
    assert load_history(tmp_path / HISTORY_FILE) == [{"step": 3, "global_step": 3, "val/psnr": 20.0}]


def test_load_history_rejects_other_json(tmp_path):
    assert load_history(tmp_path / "missing.json") == []
    bad = tmp_path / "bad.json"
    bad.write_text('{"step": 1}')
    with pytest.raises(ValueError, match="not a validation history"):
        load_history(bad)


def test_format_curves_table():
    histories = {
        "srgan": [{"step": 100, "val/niqe": 6.0, "val/psnr": 25.0}, {"step": 200, "val/niqe": 5.5, "val/psnr": 24.0}],
        "rankrbri": [{"step": 100, "val/niqe": 5.0, "val/psnr": 25.5}, {"step": 300, "val/niqe": 4.25, "val/psnr": math.nan}],
    }
    text = format_curves(histories)
    niqe_block, psnr_block = text.strip().split("\n\n")
    rows = [line.split() for line in niqe_block.splitlines()]
    assert rows[0] == ["NIQE", "↓", "(val/niqe)", "over", "iterations"]
    assert rows[1] == ["iteration", "srgan", "rankrbri"]
    assert rows[3:6] == [["100", "6.00", "5.00"], ["200", "5.50", "·"], ["300", "·", "4.25"]]
    assert rows[7] == ["best", "5.50", "4.25"]  # lower is better
    assert rows[8] == ["last", "5.50", "4.25"]
    prow = [line.split() for line in psnr_block.splitlines()]
    assert prow[0][:2] == ["PSNR", "↑"]
    assert prow[3:6] == [["100", "25.00", "25.50"], ["200", "24.00", "·"], ["300", "·", "nan"]]
    assert prow[7] == ["best", "25.00", "25.50"]  # higher is better, NaN ignored
    assert prow[8] == ["last", "24.00", "nan"]
    assert "no validation yet" in format_curves({"srgan": []}, metrics=("val/niqe",))
