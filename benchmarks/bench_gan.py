"""Speed and memory of one RankSRGAN training iteration, measured through Lightning's Trainer.

What runs is the real ``SRModule.training_step`` (one generator update + one discriminator update =
one iteration) inside ``Trainer.fit``, exactly as users train; a callback reads the clock at every
batch start and end. Three variants, each with three feeds:

* variants: ``srgan`` (perceptual 1 + GAN 5e-3, no Ranker), ``rank1`` (+ one VGG-12 Ranker, rank
  weight 0.03), ``rank2`` (+ two VGG-12 Rankers);
* feeds: ``synthetic`` (one random LR/HR batch already on the device, no loader cost), ``data``
  (``PairedSRDataModule`` on the built-in demo images, ``--workers`` DataLoader workers) and
  ``device`` (the same data module with ``patches_on_device=True``: batches cut on the device).

Per run it prints iterations/s over the timed window (the throughput: the device is synchronised
only at the window's edges, so the host queues work ahead as in training), the median and minimum
iteration time (batch end to batch end: data wait, host-to-device copy, both updates, logging), the
median compute time (batch start to batch end, data already on the device), the main process's CPU
seconds per iteration (on a CPU shared with other jobs the steadier figure; DataLoader workers not
included) and the peak memory after the warm-up. On a GPU the per-iteration times are host times
unless ``--sync-each-iteration`` synchronises around every batch (device times, no queuing ahead).
Then the Rankers' share of an iteration, ``(t_rank - t_srgan) / t_rank``, from the median and from
the minimum iteration times, and the same share of the iteration's forward + backward FLOPs
(counted on the meta device, independent of the machine's load).

Settings (printed at the start of every run):

* ``full`` (the paper): batch 8, HR 296 / LR 74 (x4), SRResNet 64 features x 16 blocks,
  VGGDiscriminator(64, input 296), VGG19 conv5_4 perceptual loss (random weights: nothing is
  downloaded; the cost is the same), VGG-12 Rankers with 64 features;
* ``small`` (for CPUs): batch 2, HR 96 / LR 24, SRResNet 32 x 4, VGGDiscriminator(16, input 96),
  the same VGG19 conv5_4, VGG-12 Rankers with 16 features.

The default is ``full`` on a GPU and ``small`` on a CPU (``--full`` / ``--small`` override it).
Reference targets for the full setting on one H200 with the data feed: >= 40 iterations/s, Rankers
<= 10 % of an iteration.

Speed options of ``SRModule`` and the data, each a flag so that its effect is measured alone:
``--precision bf16`` (bf16-mixed), ``--channels-last``, ``--fused-adam`` (``optimizer.fused``),
``--loss-networks-bf16`` (VGG and Rankers under bf16 autocast in a 32-true run) and the ``device``
feed. ``--sync-debug`` (CUDA) counts the host synchronisations per timed iteration that torch's
sync debug mode reports, with the source lines that cause them; ``--profile`` runs torch's
profiler over the timed iterations and prints the GPU's busy share of the wall time and the
costliest kernels (on a CPU: the costliest operators). Both are diagnostics: their runs' times
carry the tools' overhead.

Usage: ``python benchmarks/bench_gan.py [--device cuda] [--steps 50] [--warmup 10] [--precision 32|bf16]
[--channels-last] [--fused-adam] [--loss-networks-bf16] [--sync-debug] [--profile] [--sync-each-iteration]
[--workers 4]
[--variants srgan rank1 rank2] [--feeds synthetic data device] [--full|--small]``.
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
from _common import environment_report, peak_memory_mb, synchronize
from _step_clock import IterationClock, KernelProfile, SyncCounter
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from ranksrgan.data.demo import build_demo_dataset
from ranksrgan.data.paired import PairedSRDataModule
from ranksrgan.export import save_state_dict
from ranksrgan.lit.sr_module import SRModule
from ranksrgan.losses import discriminator_loss
from ranksrgan.nets import Ranker

SCALE = 4
VARIANTS = {"srgan": 0, "rank1": 1, "rank2": 2}  # variant -> number of Rankers
FEEDS = ("synthetic", "data", "device")


@dataclass(frozen=True)
class Setting:
    name: str
    batch: int
    hr: int
    g_features: int
    g_blocks: int
    d_features: int
    ranker_features: int
    vgg_width: int = 0  # 0: the real VGG19; else every conv of its layer sequence with this many channels

    def describe(self) -> str:
        vgg = f"VGG19-shaped conv5_4 with {self.vgg_width} channels" if self.vgg_width else "VGG19 conv5_4"
        return (
            f"setting '{self.name}': batch {self.batch}, HR {self.hr} / LR {self.hr // SCALE} (x{SCALE}), "
            f"SRResNet {self.g_features}x{self.g_blocks}, VGGDiscriminator({self.d_features}, input {self.hr}), "
            f"{vgg} perceptual, VGG-12 Rankers with {self.ranker_features} features"
        )


SETTINGS = {
    "full": Setting("full", batch=8, hr=296, g_features=64, g_blocks=16, d_features=64, ranker_features=64),
    "small": Setting("small", batch=2, hr=96, g_features=32, g_blocks=4, d_features=16, ranker_features=16),
    # every layer of the paper's networks, almost no arithmetic: the host's cost of an iteration
    # (Python, Lightning, operator dispatch, kernel launches), which bounds the rate without CUDA graphs
    "overhead": Setting("overhead", batch=2, hr=32, g_features=4, g_blocks=16, d_features=4, ranker_features=4, vgg_width=4),
}


class RepeatedBatch(Dataset):
    """``length`` times the same pre-built batch (already on the device); use with ``batch_size=None``."""

    def __init__(self, batch: dict[str, torch.Tensor], length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batch


def make_module(
    setting: Setting, ranker_files: list[str], channels_last: bool, fused_adam: bool = False, loss_networks_bf16: bool = False
) -> SRModule:
    torch.manual_seed(0)
    module = SRModule(
        generator={
            "name": "SRResNet",
            "kwargs": {"num_features": setting.g_features, "num_blocks": setting.g_blocks, "scale": SCALE},
        },
        scale=SCALE,
        pixel={"weight": 0.0},
        perceptual={"weight": 1.0, "layer": "conv5_4", "criterion": "l1", "pretrained": False},
        gan={"weight": 5e-3, "kind": "vanilla"},
        discriminator={"name": "VGGDiscriminator", "kwargs": {"num_features": setting.d_features, "input_size": setting.hr}},
        rank={"function": "sigmoid", "reduction": "sum"},
        rankers=[{"name": f"ranker{i}", "checkpoint": path, "weight": 0.03} for i, path in enumerate(ranker_files)],
        optimizer={"fused": fused_adam},
        channels_last=channels_last,
        loss_networks_bf16=loss_networks_bf16,
    )
    if setting.vgg_width and "perceptual" in module.losses:
        extractor = module.losses["perceptual"].extractor
        layers, channels = [], 3
        for layer in extractor.features:
            if isinstance(layer, torch.nn.Conv2d):
                layer, channels = torch.nn.Conv2d(channels, setting.vgg_width, 3, padding=1), setting.vgg_width
            layers.append(layer)
        extractor.features = torch.nn.Sequential(*layers).requires_grad_(False)
    return module


def plain_loop(setting: Setting, ranker_files: list[str], args: argparse.Namespace) -> dict[str, float]:
    """The same module's step without Lightning: ``generator_losses``, backward, G step, then the
    discriminator loss, backward, D step, on one synthetic batch (as the reference step script
    does). Synchronised at the window's edges only. ``{"iteration": s, "rate": it/s}``."""
    device = torch.device(args.device)
    module = make_module(setting, ranker_files, args.channels_last, args.fused_adam, args.loss_networks_bf16).to(device)
    module.setup("fit")  # channels_last, as the Trainer would
    (opt_g, opt_d), _ = module.configure_optimizers()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    lr = torch.rand(setting.batch, 3, setting.hr // SCALE, setting.hr // SCALE, device=device).contiguous(memory_format=fmt)
    hr = torch.rand(setting.batch, 3, setting.hr, setting.hr, device=device).contiguous(memory_format=fmt)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step() -> None:
        with autocast:
            loss, _, sr = module.generator_losses(lr, hr)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        with autocast:
            d_loss = module.gan_loss.discriminator(module.discriminator(hr), module.discriminator(sr.detach()))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    for _ in range(max(args.warmup, 1)):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    seconds = (time.perf_counter() - start) / args.steps
    return {"iteration": seconds, "rate": 1 / seconds}


def iteration_tflops(setting: Setting, ranker_files: list[str]) -> float:
    """Forward + backward TFLOPs of one iteration, counted on the meta device (nothing is computed).

    Runs the module's own ``generator_losses`` and backward, then the discriminator loss on real
    and detached SR patches and its backward, as ``training_step`` does (optimiser steps are not
    counted: they are element-wise).
    """
    module = make_module(setting, ranker_files, channels_last=False).to("meta")
    lr = torch.empty(setting.batch, 3, setting.hr // SCALE, setting.hr // SCALE, device="meta")
    hr = torch.empty(setting.batch, 3, setting.hr, setting.hr, device="meta")
    with FlopCounterMode(display=False) as counter:
        loss_g, _, sr = module.generator_losses(lr, hr)
        loss_g.backward()
        assert module.discriminator is not None
        d_loss = discriminator_loss(module.discriminator(hr), module.discriminator(sr.detach()), module.gan_loss.kind)
        d_loss.backward()
    return counter.get_total_flops() / 1e12


def run_once(
    setting: Setting, n_rankers: int, feed: str, args: argparse.Namespace, ranker_files: list[str], demo: dict[str, Path]
) -> dict[str, float]:
    device = torch.device(args.device)
    module = make_module(setting, ranker_files[:n_rankers], args.channels_last, args.fused_adam, args.loss_networks_bf16)
    iterations = args.warmup + args.steps
    syncs = SyncCounter(args.sync_debug and device.type == "cuda")
    profile = KernelProfile(args.profile, device)
    clock = IterationClock(device, args.warmup, iterations, args.sync_each_iteration, (syncs, profile))
    trainer = pl.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        precision="bf16-mixed" if args.precision == "bf16" else "32-true",
        max_steps=iterations * module.optimizer_steps_per_iteration,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        benchmark=device.type == "cuda",  # as conf/trainer/default.yaml (fixed patch size)
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    with syncs:
        fit(trainer, module, setting, feed, args, iterations, device, demo)
    if module.iteration != iterations:
        raise RuntimeError(f"expected {iterations} iterations, the Trainer ran {module.iteration}")
    iteration_times = clock.iteration_times()
    timed = syncs.timed()
    sources = collections.Counter(f"{Path(w.filename).name}:{w.lineno}" for w in timed)
    return {
        "iteration": statistics.median(iteration_times),
        "iteration_min": min(iteration_times),
        "compute": statistics.median(clock.compute_times()),
        "cpu": statistics.median(clock.cpu_times()),
        "rate": len(iteration_times) / clock.window_seconds(),
        "peak_mb": peak_memory_mb(device),
        "syncs": len(timed) / args.steps if syncs.enabled else float("nan"),
        "sync_sources": ", ".join(f"{where} x{n}" for where, n in sources.most_common(3)),
        "profile": profile.report(args.steps, clock.window_seconds()),
    }


def fit(trainer, module, setting, feed, args, iterations, device, demo) -> None:
    """``trainer.fit`` on the feed: a repeated on-device batch, or the demo images' data module."""
    if feed == "synthetic":
        gen = torch.Generator().manual_seed(0)
        lr_size = setting.hr // SCALE
        batch = {
            "lr": torch.rand(setting.batch, 3, lr_size, lr_size, generator=gen).to(device),
            "hr": torch.rand(setting.batch, 3, setting.hr, setting.hr, generator=gen).to(device),
        }
        trainer.fit(module, train_dataloaders=DataLoader(RepeatedBatch(batch, iterations), batch_size=None))
    else:
        dm = PairedSRDataModule(
            [str(demo["train"])],
            [str(demo["val"])],
            scale=SCALE,
            hr_patch_size=setting.hr,
            batch_size=setting.batch,
            num_workers=args.workers,
            patches_per_epoch=(iterations + 1) * setting.batch,
            patches_on_device=feed == "device",
        )
        trainer.fit(module, datamodule=dm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help="timed iterations per run (default 50 on GPU, 3 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default 10 on GPU, 1 on CPU)")
    parser.add_argument("--precision", choices=("32", "bf16"), default="32", help="32-true or bf16-mixed")
    parser.add_argument("--channels-last", action="store_true", help="SRModule(channels_last=True)")
    parser.add_argument("--fused-adam", action="store_true", help="SRModule(optimizer={'fused': True})")
    parser.add_argument("--loss-networks-bf16", action="store_true", help="SRModule(loss_networks_bf16=True)")
    parser.add_argument("--sync-debug", action="store_true", help="count host synchronisations per iteration (CUDA)")
    parser.add_argument("--profile", action="store_true", help="torch.profiler over the timed iterations (KernelProfile)")
    parser.add_argument(
        "--sync-each-iteration", action="store_true", help="synchronise around every batch: per-iteration device times"
    )
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers for the data feed")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--feeds", nargs="+", choices=FEEDS, default=list(FEEDS))
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="the paper's setting (default on GPU)")
    size.add_argument("--small", action="store_true", help="the reduced CPU setting (default on CPU)")
    size.add_argument("--overhead", action="store_true", help="all layers, almost no arithmetic: the host's cost")
    parser.add_argument("--plain", action="store_true", help="also time the same step without Lightning (synthetic batch)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in the main process")
    args = parser.parse_args()
    device = torch.device(args.device)
    on_cpu = device.type == "cpu"
    if args.overhead:
        setting = SETTINGS["overhead"]
    else:
        setting = SETTINGS["small" if args.small or (on_cpu and not args.full) else "full"]
    args.steps = args.steps if args.steps is not None else (3 if on_cpu else 50)
    args.warmup = args.warmup if args.warmup is not None else (1 if on_cpu else 10)
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    for pattern in ("LeafSpec", "module\\(s\\) in eval mode", "no `val_dataloader`", "overridden `on_after_batch_transfer`"):
        warnings.filterwarnings("ignore", message=f".*{pattern}")

    print(environment_report(device))
    print(setting.describe())
    print(
        f"precision {args.precision}, channels_last {args.channels_last}, fused Adam {args.fused_adam}, loss networks "
        f"bf16 {args.loss_networks_bf16}; {args.warmup} warm-up + {args.steps} timed iterations per run "
        f"(1 iteration = 1 G update + 1 D update), data feed with {args.workers} workers"
    )
    memory_kind = "CUDA allocated" if device.type == "cuda" else "process RSS"
    results: dict[tuple[str, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ranker_files = []
        for seed in range(max(VARIANTS[v] for v in args.variants)):
            torch.manual_seed(seed + 1)
            ranker = Ranker("vgg12", num_features=setting.ranker_features)
            ranker_files.append(str(save_state_dict(ranker, root / f"ranker{seed}.pth")))
        demo = build_demo_dataset(root / "demo") if {"data", "device"} & set(args.feeds) else {}
        flops = {variant: iteration_tflops(setting, ranker_files[: VARIANTS[variant]]) for variant in args.variants}
        print("forward+backward TFLOP per iteration: " + ", ".join(f"{v} {f:.3f}" for v, f in flops.items()))
        if "srgan" in flops:
            for variant in ("rank1", "rank2"):
                if variant in flops:
                    share = (flops[variant] - flops["srgan"]) / flops[variant] * 100
                    print(f"Rankers' share of the {variant} iteration's FLOPs: {share:.1f} %")
        for feed in args.feeds:
            for variant in args.variants:
                r = run_once(setting, VARIANTS[variant], feed, args, ranker_files, demo)
                results[(variant, feed)] = r
                print(
                    f"{variant:6s} {feed:9s}: iteration {r['iteration'] * 1e3:9.1f} ms median, {r['iteration_min'] * 1e3:9.1f} ms min; "
                    f"compute {r['compute'] * 1e3:9.1f} ms median; process CPU {r['cpu']:7.2f} s/it; "
                    f"{r['rate']:7.3f} it/s, peak {r['peak_mb']:8.0f} MiB ({memory_kind})",
                    flush=True,
                )
                if args.sync_debug:
                    syncs = "not counted (CUDA only)" if math.isnan(r["syncs"]) else f"{r['syncs']:.1f}"
                    print(f"{variant:6s} {feed:9s}: host syncs per iteration {syncs} {r['sync_sources']}".rstrip())
                if args.profile:
                    print(f"{variant:6s} {feed:9s}: profile: {r['profile']}")
        if args.plain:
            for variant in args.variants:
                r = plain_loop(setting, ranker_files[: VARIANTS[variant]], args)
                lightning = results.get((variant, "synthetic"))
                share = (
                    f"; Lightning's share of the synthetic iteration {(1 - r['iteration'] * lightning['rate']) * 100:.1f} %"
                    if lightning
                    else ""
                )
                print(
                    f"{variant:6s} plain    : iteration {r['iteration'] * 1e3:9.1f} ms; {r['rate']:7.3f} it/s (no Lightning){share}",
                    flush=True,
                )
    for feed in args.feeds:
        base = results.get(("srgan", feed))
        for variant in ("rank1", "rank2"):
            if base is None or (variant, feed) not in results:
                continue
            for stat in ("iteration", "iteration_min"):
                t, t0 = results[(variant, feed)][stat], base[stat]
                print(
                    f"Rankers' share of a {variant} iteration ({feed}, {'median' if stat == 'iteration' else 'min'}): "
                    f"{(t - t0) / t * 100:5.1f} % (({t * 1e3:.1f} - {t0 * 1e3:.1f}) / {t * 1e3:.1f} ms)"
                )


if __name__ == "__main__":
    main()
