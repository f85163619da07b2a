"""Speed of the paired training-data pipeline, and of SRResNet pixel-loss training, for comparison.

1. ``PairedSRDataModule`` on the built-in demo images (written to a temporary folder): the one-time
   ``setup()`` (decode every image once + make its LR with MATLAB bicubic) is timed on its own;
   then, for each DataLoader worker count, patches/s of the training loader over ``--batches``
   batches after ``--warmup`` batches (worker start-up is printed separately, as time to the first
   batch).
2. SRResNet (64 features, 16 blocks, x4) trained with the L1 pixel loss and Adam on random LR/HR
   tensors already on the device: steps/s over ``--steps`` steps after ``--warmup`` steps.

Defaults follow the paper's training patches: HR 296, LR 74 (x4), batch 8.

Usage: ``python benchmarks/bench_data.py [--workers 1 2] [--batches 50] [--steps N] [--device cuda]``.
The CPU default for ``--steps`` is small (one SRResNet step at batch 8 takes seconds on a laptop CPU).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import Timer, environment_report, peak_memory_mb, reset_peak_memory, summarize, synchronize

from ranksrgan.data.demo import build_demo_dataset
from ranksrgan.data.paired import PairedSRDataModule
from ranksrgan.losses import PixelLoss
from ranksrgan.nets import SRResNet


def bench_loader(root: Path, args: argparse.Namespace) -> None:
    folders = build_demo_dataset(root)
    patches = (args.warmup + args.batches) * args.batch_size
    dm = PairedSRDataModule(
        [str(folders["train"])],
        [str(folders["val"])],
        scale=args.scale,
        hr_patch_size=args.hr_patch,
        batch_size=args.batch_size,
        patches_per_epoch=patches,
    )
    start = time.perf_counter()
    dm.setup("fit")
    setup_s = time.perf_counter() - start
    assert dm.train_set is not None
    n_images = len(dm.train_set.pairs)
    print(
        f"\n[data] demo train set: {n_images} images; setup() (decode once + MATLAB-bicubic LR, incl. {len(dm.val_set)} val images): {setup_s:.2f} s"
    )
    print(
        f"[data] HR {args.hr_patch} / LR {args.hr_patch // args.scale} (x{args.scale}), batch {args.batch_size}, "
        f"{args.warmup} warm-up + {args.batches} timed batches"
    )
    for workers in args.workers:
        dm.num_workers = workers
        loader = dm.train_dataloader()
        start = time.perf_counter()
        it = iter(loader)
        batch = next(it)
        first_s = time.perf_counter() - start
        assert batch["hr"].shape == (args.batch_size, 3, args.hr_patch, args.hr_patch)
        for _ in range(args.warmup - 1):
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        elapsed = time.perf_counter() - start
        rate = args.batches * args.batch_size / elapsed
        print(
            f"[data] num_workers={workers}: {rate:8.1f} patches/s ({rate / args.batch_size:6.1f} batches/s); "
            f"time to first batch (worker start-up) {first_s:.2f} s"
        )
        del it, loader


def bench_srresnet(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = SRResNet(num_features=64, num_blocks=16, scale=args.scale).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.99))
    lr_size = args.hr_patch // args.scale
    lr = torch.rand(args.batch_size, 3, lr_size, lr_size, device=device)
    hr = torch.rand(args.batch_size, 3, args.hr_patch, args.hr_patch, device=device)
    steps = args.steps if args.steps is not None else (3 if device.type == "cpu" else 100)
    timer = Timer(device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        PixelLoss(1.0, "l1")(net(lr), hr).backward()
        opt.step()

    for _ in range(args.warmup_steps):
        step()
    synchronize(device)
    reset_peak_memory(device)
    for _ in range(steps):
        with timer:
            step()
    print(
        f"\n[srresnet] SRResNet 64x16 x{args.scale}, L1 pixel loss + Adam, batch {args.batch_size}, LR {lr_size}, "
        f"{args.warmup_steps} warm-up + {steps} timed steps on {device}"
    )
    print(
        f"[srresnet] wall: {summarize(timer.laps)}\n[srresnet] process CPU time: median "
        f"{statistics.median(timer.cpu_laps):.3f} s/step; peak memory {peak_memory_mb(device):.0f} MiB "
        f"({'CUDA allocated' if device.type == 'cuda' else 'process RSS'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="DataLoader worker counts to time")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--hr-patch", type=int, default=296)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--batches", type=int, default=50, help="timed batches per worker count")
    parser.add_argument("--warmup", type=int, default=5, help="loader batches before timing (>= 1)")
    parser.add_argument("--steps", type=int, default=None, help="timed SRResNet steps (default 3 on CPU, 100 on GPU)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="SRResNet steps before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in the main process")
    parser.add_argument("--skip-model", action="store_true", help="time only the data pipeline")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the first batch includes worker start-up)")
    if args.threads:
        torch.set_num_threads(args.threads)
    print(environment_report(args.device))
    reset_peak_memory("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        bench_loader(Path(tmp), args)
    print(f"[data] peak RSS of the main process: {peak_memory_mb('cpu'):.0f} MiB (workers not included)")
    if not args.skip_model:
        bench_srresnet(args)


if __name__ == "__main__":
    main()
