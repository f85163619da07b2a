"""Distributed and mixed-precision training of the GAN module on CPU.

* ``GANDDPStrategy`` wraps G and D in their own ``DistributedDataParallel`` without
  ``find_unused_parameters``; two gloo processes end with identical G and D parameters although
  they trained on different patches.
* Lightning's plain ``DDPStrategy`` (one wrapper around the whole module) cannot train the GAN
  without ``find_unused_parameters``: that is why the separate wrapping exists.
* ``precision="bf16-mixed"`` and ``SRModule(channels_last=True)`` train on CPU.

The two-process tests fork the pytest process (Lightning's ``start_method="fork"``): the children
need no re-import of torch and Lightning, so each test takes a few seconds on 2 CPU cores. Once CUDA
is initialised in this process (GPU test runs), forking is unsafe and they spawn instead (slower).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy
from torch.nn.parallel import DistributedDataParallel

from ranksrgan.data.paired import PairedSRDataModule
from ranksrgan.export import save_state_dict
from ranksrgan.io import write_image
from ranksrgan.lit.ddp import GANDDPStrategy
from ranksrgan.lit.sr_module import SRModule
from ranksrgan.nets import Ranker

PATCH = 32
TINY_G = {"name": "SRResNet", "kwargs": {"num_features": 8, "num_blocks": 1, "scale": 4}}
TINY_D = {"name": "VGGDiscriminator", "kwargs": {"num_features": 4, "input_size": PATCH}}

needs_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with the gloo backend is not available"
)


@pytest.fixture(scope="module")
def ranker_file(tmp_path_factory) -> str:
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("ranker")
    return str(save_state_dict(Ranker("vgg8", num_features=4), folder / "ranker.pth"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, demo_rgb) -> Path:
    """Three 48×64 training crops (different content) and one validation crop."""
    root = tmp_path_factory.mktemp("ddp_pairs")
    img = torch.from_numpy(demo_rgb).permute(2, 0, 1).float() / 255
    for i in range(3):
        write_image(root / "train" / f"im{i}.png", img[:, 24 * (i % 2) : 24 * (i % 2) + 48, 32 * i : 32 * i + 64])
    write_image(root / "val" / "val.png", img[:, :48, :48])
    return root


@pytest.fixture
def restore_process_state():
    """Undo what Lightning's DDP launchers leave behind in this process (env vars, threads, group)."""
    env, threads = dict(os.environ), torch.get_num_threads()
    yield
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(env)
    torch.set_num_threads(threads)


def start_method() -> str:
    """``fork`` (fast) unless CUDA is already initialised here, which makes forking unsafe."""
    return "spawn" if torch.cuda.is_initialized() else "fork"


def make_module(ranker_file: str, **overrides) -> SRModule:
    kwargs = dict(
        generator=TINY_G,
        scale=4,
        pixel={"weight": 1.0, "criterion": "l1"},
        perceptual={"weight": 1.0, "layer": "conv1_2", "pretrained": False},
        gan={"weight": 0.005, "kind": "vanilla"},
        discriminator=TINY_D,
        rankers=[{"name": "r", "checkpoint": ranker_file, "weight": 0.03}],
        lr_milestones=[100],
    )
    kwargs.update(overrides)
    torch.manual_seed(0)
    return SRModule(**kwargs)


def make_datamodule(root: Path, batch_size: int = 2) -> PairedSRDataModule:
    return PairedSRDataModule(
        [str(root / "train")],
        [str(root / "val")],
        hr_patch_size=PATCH,
        batch_size=batch_size,
        num_workers=0,
        patches_per_epoch=48,
    )


def make_trainer(tmp_path: Path, module: SRModule, iterations: int, callbacks=(), **kwargs) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_steps=iterations * module.optimizer_steps_per_iteration,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        **kwargs,
    )


class SaveRankState(pl.Callback):
    """Each rank writes its G/D state, its DDP wrapping and a checksum of its first batch to a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.first_batch: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_batch is None:
            self.first_batch = float(batch["hr"].double().sum())

    def on_train_end(self, trainer, pl_module) -> None:
        wrappers = [pl_module._ddp_generator, pl_module._ddp_discriminator]
        torch.save(
            {
                "world_size": trainer.world_size,
                "iteration": pl_module.iteration,
                "wrapped": [isinstance(w, DistributedDataParallel) for w in wrappers],
                "whole_module_wrapped": isinstance(trainer.strategy.model, DistributedDataParallel),
                "find_unused": [getattr(w, "find_unused_parameters", None) for w in wrappers],
                "first_batch": self.first_batch,
                "generator": {k: v.detach().clone() for k, v in pl_module.generator.named_parameters()},
                "discriminator": {k: v.detach().clone() for k, v in pl_module.discriminator.named_parameters()},
                "generator_ema": {k: v.detach().clone() for k, v in pl_module.inference_generator().named_parameters()},
            },
            self.folder / f"rank{trainer.global_rank}.pt",
        )


@pytest.mark.parametrize(("precision", "channels_last"), [("bf16-mixed", False), ("32-true", True), ("bf16-mixed", True)])
def test_bf16_and_channels_last_train_on_cpu(tmp_path, ranker_file, data_root, precision, channels_last):
    module = make_module(ranker_file, channels_last=channels_last)
    g_before = [p.detach().clone() for p in module.generator.parameters()]
    seen: list[tuple[torch.dtype, bool]] = []  # (SR dtype, LR batch channels-last) per generator call
    module.generator.register_forward_hook(
        lambda _, inputs, out: seen.append((out.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last)))
    )
    # log_every_n_steps=1: the training curves are logged on the iterations Lightning writes
    trainer = make_trainer(tmp_path, module, 2, devices=1, precision=precision, log_every_n_steps=1)
    trainer.fit(module, datamodule=make_datamodule(data_root))
    assert module.iteration == 2
    assert seen and all(dtype == (torch.bfloat16 if precision == "bf16-mixed" else torch.float32) for dtype, _ in seen)
    assert all(cl == channels_last for _, cl in seen)
    metrics = trainer.callback_metrics
    for name in ("train/loss_g", "train/d_loss", "train/rank/r", "train/perceptual"):
        assert torch.isfinite(metrics[name]), name
    assert any(not torch.equal(a, b) for a, b in zip(g_before, module.generator.parameters()))
    # Parameters stay float32 (autocast casts per op) and keep their memory format.
    for net in (module.generator, module.discriminator):
        for p in net.parameters():
            assert p.dtype == torch.float32
            if channels_last and p.dim() == 4:
                assert p.is_contiguous(memory_format=torch.channels_last)


@needs_gloo
def test_gan_ddp_strategy_single_process_wraps_g_and_d(tmp_path, ranker_file, data_root, restore_process_state):
    """World size 1 in this process: the strategy wraps G and D separately and trains."""
    module = make_module(ranker_file)
    g_before = [p.detach().clone() for p in module.generator.parameters()]
    saver = SaveRankState(tmp_path)
    strategy = GANDDPStrategy(process_group_backend="gloo")
    make_trainer(tmp_path, module, 2, [saver], devices=1, strategy=strategy).fit(module, datamodule=make_datamodule(data_root))
    state = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert state["world_size"] == 1 and state["iteration"] == 2
    assert state["wrapped"] == [True, True] and not state["whole_module_wrapped"]
    assert state["find_unused"] == [False, False]
    assert any(not torch.equal(a, b) for a, b in zip(g_before, module.generator.parameters()))
    # The DDP wrappers are not submodules: checkpoints keep the plain keys.
    assert all(k.startswith(("generator.", "discriminator.", "losses.", "val_metrics.")) for k in module.state_dict())


@needs_gloo
def test_gan_ddp_two_processes_end_with_identical_weights(tmp_path, ranker_file, data_root, restore_process_state):
    module = make_module(ranker_file, ema_decay=0.5)  # the generator EMA too
    g_init = {k: v.detach().clone() for k, v in module.generator.named_parameters()}
    strategy = GANDDPStrategy(process_group_backend="gloo", start_method=start_method())
    trainer = make_trainer(tmp_path, module, 3, [SaveRankState(tmp_path)], devices=2, strategy=strategy)
    trainer.fit(module, datamodule=make_datamodule(data_root))
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for state in ranks:
        assert state["world_size"] == 2 and state["iteration"] == 3
        assert state["wrapped"] == [True, True] and not state["whole_module_wrapped"]
        assert state["find_unused"] == [False, False]
    # The ranks saw different patches, so equal weights come from the gradient averaging.
    assert ranks[0]["first_batch"] != ranks[1]["first_batch"]
    for net in ("generator", "discriminator", "generator_ema"):
        assert ranks[0][net].keys() == ranks[1][net].keys()
        for key in ranks[0][net]:
            assert torch.equal(ranks[0][net][key], ranks[1][net][key]), f"{net}.{key} differs between ranks"
    assert any(not torch.equal(g_init[k], v) for k, v in ranks[0]["generator"].items())
    assert any(not torch.equal(ranks[0]["generator_ema"][k], v) for k, v in ranks[0]["generator"].items())


@needs_gloo
def test_plain_ddp_strategy_cannot_train_the_gan(tmp_path, ranker_file, data_root, restore_process_state):
    """One DDP wrapper around the whole module: the G step leaves D's parameters without gradients."""
    module = make_module(ranker_file)
    strategy = DDPStrategy(process_group_backend="gloo", start_method=start_method(), find_unused_parameters=False)
    trainer = make_trainer(tmp_path, module, 3, devices=2, strategy=strategy)
    with pytest.raises(Exception, match="parameters that were not used"):
        trainer.fit(module, datamodule=make_datamodule(data_root))
