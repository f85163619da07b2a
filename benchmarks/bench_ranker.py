"""Speed of Ranker training and of NIQE labelling of rank-dataset patches.

1. Ranker training (``RankerModule.pair_loss`` + backward + Adam step, the pair batch already on
   the device, blur pairs made by ``DistortionRankDataModule.on_after_batch_transfer`` inside the
   timed step as in training): pairs/s over ``--steps`` steps after ``--warmup``. Defaults: CPU a
   tiny config (VGG-8, 16 channels, 64² patches, batch 16); CUDA the paper's (VGG-12, 64
   channels, 296² patches, batch 16).
2. Labelling: ``build_sr_labels`` on the built-in demo images (levels ``hr`` and ``bicubic``,
   metric NIQE, Y, 4-px border, 96² blocks) into a temporary label file: patches/s (one patch =
   one (location, method) row), with the ``--label-patch`` / ``--label-stride`` grid.

Usage: ``python benchmarks/bench_ranker.py [--device cuda] [--steps N] [--variant vgg12 ...]``.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import Timer, environment_report, peak_memory_mb, reset_peak_memory, summarize

from ranksrgan.data.demo import build_demo_dataset
from ranksrgan.data.rank.distortion import DistortionRankDataModule
from ranksrgan.data.rank.sr_labelling import build_sr_labels
from ranksrgan.lit.ranker_module import RankerModule


def bench_training(root: Path, args: argparse.Namespace, device: torch.device) -> None:
    folders = build_demo_dataset(root)
    dm = DistortionRankDataModule(
        "blur",
        [str(folders["train"])],
        [str(folders["val"])],
        patch_size=args.patch,
        batch_size=args.batch_size,
        num_workers=0,
        patches_per_epoch=10**6,
    )
    dm.setup()
    loader = iter(dm.train_dataloader())
    batches = [next(loader) for _ in range(4)]
    module = RankerModule(variant=args.variant, num_features=args.channels).to(device)
    opt = module.configure_optimizers()["optimizer"]
    timer = Timer(device)
    reset_peak_memory(device)
    for i in range(args.warmup + args.steps):
        raw = {k: v.to(device) for k, v in batches[i % len(batches)].items()}
        with timer:
            batch = dm.on_after_batch_transfer(raw, 0)
            loss, _, _ = module.pair_loss(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    laps = timer.laps[args.warmup :]
    print(f"Ranker training: {args.variant}, {args.channels} channels, {args.patch}² patches, batch {args.batch_size} pairs")
    print(f"  {summarize(laps, 'step')}")
    print(f"  = {args.batch_size / sorted(laps)[len(laps) // 2]:.1f} pairs/s; peak memory {peak_memory_mb(device):.0f} MiB")


def bench_labelling(root: Path, args: argparse.Namespace, device: torch.device) -> None:
    folders = build_demo_dataset(root)
    out = root / "labels.csv"
    reset_peak_memory(device)
    start = time.perf_counter()
    table = build_sr_labels(
        folders["train"],
        {"hr": "hr", "bicubic": "bicubic"},
        out,
        metrics=["niqe"],
        patch_size=args.label_patch,
        stride=args.label_stride,
        batch_size=args.label_batch,
        device=device,
        progress=False,
    )
    seconds = time.perf_counter() - start
    print(
        f"NIQE labelling: {len(table)} patches of {args.label_patch}² (stride {args.label_stride}, "
        f"2 levels, {len(set(table.column('image')))} demo images, decoding and bicubic SR included)"
    )
    print(f"  {seconds:.1f} s = {len(table) / seconds:.2f} patches/s; peak memory {peak_memory_mb(device):.0f} MiB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--variant", default=None, help="vgg8 | vgg12 | vgg16 (default: vgg8 on CPU, vgg12 on CUDA)")
    p.add_argument("--channels", type=int, default=None, help="base channels (default: 16 on CPU, 64 on CUDA)")
    p.add_argument("--patch", type=int, default=None, help="training patch (default: 64 on CPU, 296 on CUDA)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--label-patch", type=int, default=296)
    p.add_argument("--label-stride", type=int, default=200)
    p.add_argument("--label-batch", type=int, default=16)
    p.add_argument("--skip-labelling", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    args.variant = args.variant or ("vgg12" if gpu else "vgg8")
    args.channels = args.channels or (64 if gpu else 16)
    args.patch = args.patch or (296 if gpu else 64)
    print(environment_report(device))
    with tempfile.TemporaryDirectory() as tmp:
        bench_training(Path(tmp), args, device)
        if not args.skip_labelling:
            bench_labelling(Path(tmp), args, device)


if __name__ == "__main__":
    main()
