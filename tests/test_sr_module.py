"""The GAN LightningModule: every loss term moves the generator's gradient exactly when its weight
is non-zero; Rankers stay frozen; resume keeps the LR schedule; NaN stops the run."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch

from ranksrgan.data.paired import PairedSRDataModule
from ranksrgan.export import save_state_dict
from ranksrgan.io import write_image
from ranksrgan.lit.sr_module import SRModule
from ranksrgan.nets import Ranker
from ranksrgan.ops.color import quantize_uint8

TINY_G = {"name": "SRResNet", "kwargs": {"num_features": 8, "num_blocks": 1, "scale": 4}}
TINY_D = {"name": "VGGDiscriminator", "kwargs": {"num_features": 4, "input_size": 32}}


@pytest.fixture(scope="module")
def ranker_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rankers")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(str(save_state_dict(Ranker("vgg8", num_features=4), folder / f"r{seed}.pth")))
    return paths


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, demo_rgb):
    from ranksrgan.data.demo import demo_image

    root = tmp_path_factory.mktemp("pairs")
    for i in range(2):
        img = torch.from_numpy(demo_rgb[:, 20 * i : 20 * i + 48]).permute(2, 0, 1).float() / 255
        write_image(root / "train" / f"im{i}.png", img)
    # Validation images must hold two 96×96 NIQE blocks after the 4-pixel border crop.
    val = torch.from_numpy(demo_image("coffee")[:112, :208].copy()).permute(2, 0, 1).float() / 255
    write_image(root / "val" / "coffee.png", val)
    return root


def make_module(ranker_files, **overrides) -> SRModule:
    kwargs = dict(
        generator=TINY_G,
        scale=4,
        pixel={"weight": 1.0, "criterion": "l1"},
        perceptual={"weight": 1.0, "layer": "conv1_2", "pretrained": False},
        gan={"weight": 0.005, "kind": "vanilla"},
        discriminator=TINY_D,
        rankers=[
            {"name": "a", "checkpoint": ranker_files[0], "weight": 0.03},
            {"name": "b", "checkpoint": ranker_files[1], "weight": 0.03},
        ],
        lr_milestones=[2, 4],
        num_logged_images=1,
    )
    kwargs.update(overrides)
    torch.manual_seed(0)
    return SRModule(**kwargs)


def generator_grad(module: SRModule, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    module.generator.zero_grad(set_to_none=True)
    loss, _, _ = module.generator_losses(lr, hr)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in module.generator.parameters()])


TERMS = ("pixel", "perceptual", "gan", "rank/a", "rank/b")


@pytest.mark.parametrize("term", TERMS)
def test_each_loss_term_moves_the_gradient_only_when_weighted(ranker_files, term):
    torch.manual_seed(0)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    module = make_module(ranker_files)
    full = generator_grad(module, lr, hr)
    module.losses[term].weight = 0.0
    without = generator_grad(module, lr, hr)
    assert not torch.allclose(full, without), f"{term} with a non-zero weight did not change the gradient"
    # Weight 0 must equal a module that never had the term.
    reference = make_module(ranker_files)
    reference.losses[term].weight = 0.0
    assert torch.allclose(without, generator_grad(reference, lr, hr), atol=0)


def _trainer(tmp_path, iterations: int, module: SRModule) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_steps=iterations * module.optimizer_steps_per_iteration,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[pl.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_last=True, every_n_train_steps=1)],
    )


def _datamodule(root) -> PairedSRDataModule:
    return PairedSRDataModule(
        [str(root / "train")], [str(root / "val")], hr_patch_size=32, batch_size=2, num_workers=0, patches_per_epoch=64
    )


def test_rankers_frozen_during_gan_training(tmp_path, ranker_files, tiny_data):
    module = make_module(ranker_files)
    rankers = torch.nn.ModuleList([loss.ranker for loss in module.rank_losses()])
    before = copy.deepcopy(rankers.state_dict())
    g_before = copy.deepcopy(module.generator.state_dict())
    _trainer(tmp_path, 3, module).fit(module, datamodule=_datamodule(tiny_data))
    assert module.iteration == 3
    after = rankers.state_dict()
    assert before.keys() == after.keys()
    for key in before:  # weights AND BatchNorm running statistics
        assert torch.equal(before[key], after[key]), key
    assert not any(m.training for r in rankers for m in r.modules())
    assert all(not p.requires_grad for p in rankers.parameters())
    assert any(not torch.equal(g_before[k], v) for k, v in module.generator.state_dict().items())


def test_resume_continues_lr_schedule(tmp_path, ranker_files, tiny_data):
    straight = make_module(ranker_files)
    _trainer(tmp_path / "a", 5, straight).fit(straight, datamodule=_datamodule(tiny_data))

    first = make_module(ranker_files)
    _trainer(tmp_path / "b", 3, first).fit(first, datamodule=_datamodule(tiny_data))
    last = tmp_path / "b" / "ckpt" / "last.ckpt"
    assert last.exists()
    resumed = make_module(ranker_files)
    _trainer(tmp_path / "b", 5, resumed).fit(resumed, datamodule=_datamodule(tiny_data), ckpt_path=str(last))
    assert resumed.iteration == straight.iteration == 5
    for a, b in zip(straight.lr_schedulers(), resumed.lr_schedulers()):
        assert a.last_epoch == b.last_epoch == 5
        assert a.get_last_lr() == b.get_last_lr() == [1e-4 * 0.25]
    ckpt = torch.load(last, weights_only=True)
    assert not any(k.startswith("losses.") for k in ckpt["state_dict"])
    assert ckpt["ranksrgan_arch"]["name"] == "SRResNet"


def test_nan_loss_stops_with_step_and_name(ranker_files):
    module = make_module(ranker_files, rankers=[], nan_check_interval=1000)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    _, terms, _ = module.generator_losses(lr, hr)
    module._track_finite(terms)
    module.check_finite()  # all finite so far
    bad_hr = torch.full((2, 3, 32, 32), float("nan"))
    _, terms, _ = module.generator_losses(lr, bad_hr)
    module._track_finite(terms)
    with pytest.raises(FloatingPointError, match=r"generator step 0: .*pixel"):
        module.check_finite()


def test_no_discriminator_without_gan(ranker_files):
    module = make_module(ranker_files, gan={"weight": 0.0}, rankers=[])
    assert module.discriminator is None and module.optimizer_steps_per_iteration == 1


# ---------------------------------------------------------------------- diagnostics


def test_sr_gradient_norms_match_each_weighted_term(ranker_files):
    """``train/grad_sr/<term>`` = ||d(weight * term) / d sr||, computed here term by term on a leaf."""
    from ranksrgan.checkpoints import load_ranker

    module = make_module(ranker_files, perceptual={"weight": 0.0}, rank={"reduction": "mean"})
    module.losses["pixel"].weight = 2.0
    torch.manual_seed(1)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    _, terms, sr = module.generator_losses(lr, hr)
    norms = module.sr_gradient_norms(terms, sr)
    assert set(norms) == {"pixel", "gan", "rank/a", "rank/b", "total"}

    leaf = sr.detach().clone().requires_grad_(True)
    # L1: every pixel gets weight * sign / N, so the norm is weight / sqrt(N) (no ties here).
    assert norms["pixel"].item() == pytest.approx(2.0 / leaf.numel() ** 0.5, rel=1e-5)
    expected = {}
    gan = 0.005 * torch.nn.functional.softplus(-module.discriminator(leaf)).mean()
    expected["gan"] = torch.autograd.grad(gan, leaf)[0]
    for name, path in zip("ab", ranker_files):
        rank = 0.03 * torch.sigmoid(load_ranker(path)(leaf)).mean()
        expected[f"rank/{name}"] = torch.autograd.grad(rank, leaf)[0]
    pixel = 2.0 * (leaf - hr).abs().mean()
    expected["total"] = torch.autograd.grad(pixel, leaf)[0] + expected["gan"] + expected["rank/a"] + expected["rank/b"]
    for name, grad in expected.items():
        assert norms[name].item() == pytest.approx(grad.norm().item(), rel=1e-4), name
    # The graph survives for the generator's own backward pass.
    terms["total"].backward()
    assert module.generator.conv_first.weight.grad is not None


def test_grad_norm_interval_zero_is_off_and_negative_refused(ranker_files):
    assert make_module(ranker_files).hparams.grad_norm_interval == 0
    with pytest.raises(ValueError, match="grad_norm_interval"):
        make_module(ranker_files, grad_norm_interval=-1)


def test_validation_logs_ranker_scores_chroma_and_gradient_curves(tmp_path, ranker_files, tiny_data):
    import csv

    from pytorch_lightning.loggers import CSVLogger

    from ranksrgan.checkpoints import load_ranker
    from ranksrgan.metrics.registry import PIRM, compute

    # image_skip: the output is the bicubic image plus a residual, so it has colour to measure
    generator = {"name": "SRResNet", "kwargs": {**TINY_G["kwargs"], "image_skip": "bicubic"}}
    module = make_module(ranker_files, generator=generator, perceptual={"weight": 0.0}, grad_norm_interval=2)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=4 * module.optimizer_steps_per_iteration,
        val_check_interval=4,
        check_val_every_n_epoch=None,
        default_root_dir=str(tmp_path),
        logger=CSVLogger(str(tmp_path), name="log"),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    datamodule = _datamodule(tiny_data)
    trainer.fit(module, datamodule=datamodule)
    rows = list(csv.DictReader(open(tmp_path / "log" / "version_0" / "metrics.csv")))

    # Gradient curves computed at iterations 1 and 3 (every 2nd, 0-based). Lightning writes the
    # last value of a step metric again at later steps until it is logged anew: step 2 repeats 1.
    curve = {int(r["step"]): r["train/grad_sr/rank/a"] for r in rows if r.get("train/grad_sr/rank/a")}
    assert sorted(curve) == [1, 2, 3]
    assert curve[1] == curve[2] != curve[3]
    assert {"train/grad_sr/gan", "train/grad_sr/rank/a", "train/grad_sr/rank/b", "train/grad_sr/total"} <= set(rows[0])

    # Validation values recomputed here from the trained generator on the validation image.
    (val,) = [r for r in rows if r.get("val/psnr")]
    pair = datamodule.val_set[0]
    with torch.no_grad():
        sr = quantize_uint8(module.generator(pair["lr"][None]))
        for name, path in zip("ab", ranker_files):
            assert float(val[f"val/ranker/{name}"]) == pytest.approx(load_ranker(path)(sr).item(), rel=1e-5, abs=1e-6)
            assert float(val[f"val/ranker_hr/{name}"]) == pytest.approx(load_ranker(path)(pair["hr"][None]).item(), rel=1e-5)
    # the sample strip: a caption bar over bicubic | SR | HR, named after the image and iteration
    from ranksrgan.io import read_image

    strip = read_image(tmp_path / "samples" / "strip_coffee_it0000004.png")
    hr = pair["hr"]
    height, width = hr.shape[-2:]
    assert strip.shape == (3, 14 + height, 3 * width)
    for k in range(3):  # each panel's caption has white text on black
        caption = strip[:, :14, k * width : (k + 1) * width]
        assert caption.max() > 0.9 and (caption == 0).float().mean() > 0.5, k
    assert torch.equal(strip[:, 14:, width : 2 * width], sr[0]) and torch.equal(strip[:, 14:, 2 * width :], hr)
    # the table's chroma: the registry function, PIRM convention (scale px shaved, 8-bit values)
    table = compute(["chroma"], sr, pair["hr"][None], PIRM, scale=4)["chroma"].item()
    assert 0.5 < table < 1.5 and float(val["val/chroma"]) == pytest.approx(table, rel=1e-12)


@pytest.mark.parametrize("kind", ["lpips", "dists"])
def test_perceptual_kind_selects_a_learned_metric_as_the_loss(kind):
    from ranksrgan.lit.sr_module import SRModule
    from ranksrgan.metrics.perceptual import perceptual_metric_loss

    module = SRModule(
        generator={"name": "SRResNet", "kwargs": {"num_features": 4, "num_blocks": 1, "scale": 2}},
        scale=2,
        pixel={"weight": 0.0},
        perceptual={"weight": 1.0, "kind": kind, "pretrained": False},
    )
    assert type(module.losses["perceptual"].metric) is type(perceptual_metric_loss(kind, pretrained=False))
    lr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32)
    total, terms, sr = module.generator_losses(lr, hr)
    assert torch.allclose(total, module.losses["perceptual"](sr, hr)) and terms["perceptual"].requires_grad
    with pytest.raises(ValueError, match="perceptual.kind must be 'vgg', 'lpips' or 'dists'"):
        SRModule(
            generator={"name": "SRResNet", "kwargs": {"num_features": 4, "num_blocks": 1, "scale": 2}},
            scale=2,
            perceptual={"weight": 1.0, "kind": "ssim"},
        )


# ---------------------------------------------------------------- speed options
def test_fused_adam_is_the_same_update(tmp_path, ranker_files, tiny_data):
    """optimizer.fused builds torch's fused Adam for G and D, and a short run ends at the same
    generator weights as the default (for-each) Adam, to float32 rounding carried by Adam's
    normalisation (the discriminator is not compared: its conv biases feed BatchNorm, their true
    gradient is zero and Adam turns the rounding noise into full-size steps)."""
    weights = []
    for fused in (False, True):
        module = make_module(ranker_files, optimizer={"lr": 1e-3, "fused": fused})
        pl.seed_everything(0)
        trainer = _trainer(tmp_path / str(fused), 3, module)
        trainer.fit(module, datamodule=_datamodule(tiny_data))
        assert [bool(opt.defaults.get("fused")) for opt in trainer.optimizers] == [fused, fused]
        weights.append({k: v.clone() for k, v in module.generator.state_dict().items()})
    start = make_module(ranker_files).generator.state_dict()
    for key, value in weights[0].items():
        assert (value - start[key]).abs().max() > 1e-4, f"{key} did not train"
        torch.testing.assert_close(weights[1][key], value, rtol=1e-3, atol=5e-5, msg=key)


def test_loss_networks_bf16_runs_vgg_and_rankers_in_bf16_only(ranker_files):
    module = make_module(ranker_files, loss_networks_bf16=True)
    reference = make_module(ranker_files)
    seen: dict[str, list[torch.dtype]] = {"vgg": [], "ranker": [], "generator": [], "discriminator": []}

    def record(name):
        return lambda mod, args, out: seen[name].append(out.dtype)

    module.losses["perceptual"].extractor.register_forward_hook(record("vgg"))
    module.losses["rank/a"].ranker.register_forward_hook(record("ranker"))
    module.generator.register_forward_hook(record("generator"))
    module.discriminator.register_forward_hook(record("discriminator"))
    torch.manual_seed(0)
    lr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 32, 32)
    _, terms, _ = module.generator_losses(lr, hr)
    _, ref_terms, _ = reference.generator_losses(lr, hr)
    assert set(seen["vgg"]) == set(seen["ranker"]) == {torch.bfloat16}
    assert set(seen["generator"]) == set(seen["discriminator"]) == {torch.float32}
    assert all(t.dtype == torch.float32 for t in terms.values())
    for name in ("perceptual", "rank/a", "rank/b"):
        assert not torch.equal(terms[name], ref_terms[name]), f"{name} did not run in bf16"
        torch.testing.assert_close(terms[name], ref_terms[name], rtol=3e-2, atol=1e-3, msg=name)
    for name in ("pixel", "gan"):
        assert torch.equal(terms[name], ref_terms[name]), name
    # the gradient still reaches the generator through the bf16 networks
    grad = generator_grad(module, lr, hr)
    ref_grad = generator_grad(reference, lr, hr)
    assert torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0) > 0.99


def test_gan_training_on_device_patches(tmp_path, ranker_files, tiny_data):
    module = make_module(ranker_files, optimizer={"fused": True}, loss_networks_bf16=True)
    dm = PairedSRDataModule(
        [str(tiny_data / "train")],
        [str(tiny_data / "val")],
        hr_patch_size=32,
        batch_size=2,
        num_workers=0,
        patches_per_epoch=4,
        patches_on_device=True,
    )
    before = copy.deepcopy(module.generator.state_dict())
    _trainer(tmp_path, 5, module).fit(module, datamodule=dm)  # 2 batches per epoch: crosses epochs
    assert module.iteration == 5
    assert any(not torch.equal(before[k], v) for k, v in module.generator.state_dict().items())


def test_training_step_logs_tensors_on_the_iterations_lightning_writes(tmp_path, ranker_files, tiny_data, monkeypatch):
    """Lightning turns a logged Python number into a tensor on the module's device: on a GPU a
    blocking copy that waits for all queued work. The step logs tensors only, host values (the
    learning rate, the iteration) as CPU tensors; and only on the iterations whose step metrics
    Lightning writes (every ``log_every_n_steps``): on the others they would be discarded."""
    module = make_module(ranker_files, optimizer={"lr": 3e-4})
    logged: dict[int, dict[str, object]] = {}  # global step at the time of logging -> {name: value}
    original = pl.LightningModule.log

    def record(self, name, value, *args, **kwargs):
        if self.training and not self.trainer.validating:
            logged.setdefault(self.trainer.global_step, {})[name] = value
        return original(self, name, value, *args, **kwargs)

    monkeypatch.setattr(pl.LightningModule, "log", record)
    trainer = _trainer(tmp_path, 5, module)
    trainer.log_every_n_steps = 2
    trainer.fit(module, datamodule=_datamodule(tiny_data))
    steps = [entry for entry in logged.values() if "train/lr" in entry]
    assert [float(entry["iteration"]) for entry in steps] == [2.0, 4.0]  # iterations 2 and 4 of 5
    for entry in steps:
        assert {"train/lr", "iteration", "train/loss_g", "train/d_loss", "train/d_real", "train/rank/a"} <= set(entry)
        numbers = {k: v for k, v in entry.items() if not isinstance(v, torch.Tensor)}
        assert not numbers, f"Python numbers logged in the training step: {numbers}"
        assert entry["train/lr"].device.type == entry["iteration"].device.type == "cpu"
    # after 2 iterations the schedule has passed its first milestone (2): the LR is halved
    assert float(steps[0]["train/lr"]) == pytest.approx(1.5e-4, rel=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_gan_step_on_cuda_makes_no_host_sync(tmp_path, ranker_files, precision):
    """After the warm-up, whole training iterations (both updates, the loss and NaN bookkeeping,
    the schedulers, the logging between Lightning's write steps) run with torch's sync debug mode
    set to raise: nothing in the step waits for the GPU."""

    class NoSync(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx >= 2:
                torch.cuda.set_sync_debug_mode("error")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            torch.cuda.set_sync_debug_mode("default")

    module = make_module(
        ranker_files, optimizer={"fused": True}, channels_last=True, loss_networks_bf16=True, nan_check_interval=1000
    )
    gen = torch.Generator().manual_seed(0)
    batch = {"lr": torch.rand(2, 3, 8, 8, generator=gen).cuda(), "hr": torch.rand(2, 3, 32, 32, generator=gen).cuda()}
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision=precision,
        max_steps=6 * module.optimizer_steps_per_iteration,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        log_every_n_steps=1000,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[NoSync()],
    )
    try:
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch] * 6, batch_size=None))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert module.iteration == 6


# ---------------------------------------------------------------------- generator EMA


def test_ema_update_is_decay_times_average_plus_the_rest_times_weights(ranker_files):
    module = make_module(ranker_files, rankers=[], gan={"weight": 0.0}, perceptual={"weight": 0.0}, ema_decay=0.9)
    assert module.inference_generator() is module.generator_ema
    assert all(not p.requires_grad for p in module.generator_ema.parameters())
    with torch.no_grad():
        for p in module.generator_ema.parameters():
            p.fill_(0.5)
        for p in module.generator.parameters():
            p.fill_(1.5)
    module.update_ema()
    for name, p in module.generator_ema.named_parameters():  # 0.9 * 0.5 + 0.1 * 1.5
        torch.testing.assert_close(p, torch.full_like(p, 0.6), rtol=0, atol=1e-7, msg=name)
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        make_module(ranker_files, ema_decay=1.0)
    assert make_module(ranker_files, rankers=[]).generator_ema is None


def _pixel_trainer(root, iterations: int) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_steps=iterations,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[pl.callbacks.ModelCheckpoint(dirpath=str(root / "ckpt"), save_last=True, every_n_train_steps=1)],
    )


@pytest.mark.filterwarnings("ignore:.*dataloader is not resumable")
def test_ema_resumes_exactly_and_is_what_load_generator_returns(tmp_path, ranker_files):
    from ranksrgan.checkpoints import load_generator

    gen = torch.Generator().manual_seed(0)
    batch = {"lr": torch.rand(2, 3, 8, 8, generator=gen), "hr": torch.rand(2, 3, 32, 32, generator=gen)}
    loader = torch.utils.data.DataLoader([batch] * 8, batch_size=None)  # the same batch every step

    def module():
        return make_module(
            ranker_files, rankers=[], gan={"weight": 0.0}, perceptual={"weight": 0.0}, optimizer={"lr": 1e-2}, ema_decay=0.5
        )

    straight = module()
    _pixel_trainer(tmp_path / "a", 5).fit(straight, train_dataloaders=loader)
    first = module()
    _pixel_trainer(tmp_path / "b", 3).fit(first, train_dataloaders=loader)
    resumed = module()
    last = tmp_path / "b" / "ckpt" / "last.ckpt"
    _pixel_trainer(tmp_path / "b", 5).fit(resumed, train_dataloaders=loader, ckpt_path=str(last))
    assert straight.global_step == resumed.global_step == 5
    for key, value in straight.generator_ema.state_dict().items():
        assert torch.equal(value, resumed.generator_ema.state_dict()[key]), key
    raw, ema = straight.generator.state_dict(), straight.generator_ema.state_dict()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw)

    published = load_generator(tmp_path / "a" / "ckpt" / "last.ckpt").state_dict()
    assert published.keys() == ema.keys() and all(torch.equal(published[k], ema[k]) for k in ema)
    ckpt = torch.load(tmp_path / "a" / "ckpt" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(ckpt[f"generator.{k}"], v) for k, v in raw.items())  # training resumes the raw weights


# ---------------------------------------------------------------------- reward-hacking alarm


@pytest.mark.filterwarnings("ignore:.*reference is not registered")
@pytest.mark.parametrize("margin,warned", [(None, True), (1.0, False)])
def test_hr_alarm_names_the_ranker_that_rates_outputs_above_hr(ranker_files, caplog, margin, warned):
    rank = {} if margin is None else {"hr_alarm_margin": margin}
    module = make_module(ranker_files, rank=rank)
    assert module.hr_alarm_margin == (0.5 if margin is None else margin)
    # Ranker a: outputs 1.5, HR 2.3 (outputs better by 0.8); Ranker b: outputs 1.0, HR 1.2 (by 0.2).
    for means, values in (
        (module.val_ranker_scores, ([1.0, 2.0], [0.5, 1.5])),
        (module.val_ranker_hr_scores, ([2.5, 2.1], [1.2, 1.2])),
    ):
        for mean, v in zip(means, values):
            mean.update(torch.tensor(v))
    with caplog.at_level("WARNING", logger="ranksrgan.lit.sr_module"):
        module.on_validation_epoch_end()
    alarms = [r.getMessage() for r in caplog.records if "hr_alarm_margin" in r.getMessage()]
    if warned:
        assert len(alarms) == 1 and "iteration 0" in alarms[0] and "a (by 0.8)" in alarms[0] and "b (" not in alarms[0]
    else:
        assert alarms == []
    assert all(int(m.count) == 0 for m in [*module.val_ranker_scores, *module.val_ranker_hr_scores])  # reset


def test_validation_scores_equal_the_evaluation_table_on_the_same_weights(tmp_path, ranker_files, tiny_data):
    """val/niqe, val/psnr, val/ssim and val/chroma of one validation image equal what
    ``ranksrgan.evaluation.evaluate`` reports for the same generator on the same HR image."""
    from ranksrgan.evaluation import BenchmarkSet, evaluate

    generator = {"name": "SRResNet", "kwargs": {**TINY_G["kwargs"], "image_skip": "bicubic"}}
    module = make_module(ranker_files, generator=generator, rankers=[], gan={"weight": 0.0}, perceptual={"weight": 0.0})
    with torch.no_grad():  # a non-trivial residual, so the output is not the bicubic image
        module.generator.conv_last.bias.copy_(torch.tensor([0.013, -0.021, 0.008]))
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path)
    )
    val = trainer.validate(module, datamodule=_datamodule(tiny_data), verbose=False)[0]
    checkpoint = save_state_dict(module.generator, tmp_path / "G.pth")
    ev = evaluate(
        [BenchmarkSet("val", tiny_data / "val")], [("G", checkpoint)], metrics=["niqe", "psnr", "ssim", "chroma"], tile=None
    )
    for name in ("niqe", "psnr", "ssim", "chroma"):
        assert val[f"val/{name}"] == pytest.approx(ev.mean("val", "G", name), rel=1e-6, abs=0), name
