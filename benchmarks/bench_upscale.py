"""Tiled SR inference: wall time and peak memory for several tile sizes.

Runs ``ranksrgan.tiling.upscale`` with a full-size SRResNet (16 blocks, 64 features, random
weights, seed 0) on a random LR image, once per tile size, each in a fresh subprocess so that its
peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own. ``--tiles 0`` means one
whole-image pass. Also reports the largest difference of each tiled result from the untiled one
(when 0 is among the tile sizes), i.e. the effect of an overlap smaller than the generator's
receptive-field radius (36 LR px for this network).

Usage::

    python benchmarks/bench_upscale.py                       # 384x384 LR, x4, tiles 0 96 192
    python benchmarks/bench_upscale.py --size 2000 --scale 4 --tiles 256 512 --device cuda

Size note: a 2000x2000 LR at x4 (8000x8000 output) is ~2.6 M multiply-adds per LR pixel, about
10 TMAC per run: tens of minutes on a 2-core CPU, so the default here is 384x384 (the memory
behaviour is the same: activations scale with the tile, the output buffer with the image).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _cpu_s() -> float:
    """User + system CPU seconds of this process (robust to other load on a shared machine)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _child(args: argparse.Namespace) -> None:
    import torch

    from ranksrgan.device import resolve_device
    from ranksrgan.nets import SRResNet
    from ranksrgan.tiling import upscale

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    net = SRResNet(scale=args.scale).eval().to(device)
    lr = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    base = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    cpu0 = _cpu_s()
    start = time.perf_counter()
    sr = upscale(net, lr, tile=args.tile or None, overlap=args.overlap)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    cpu = _cpu_s() - cpu0
    result = {
        "tile": args.tile,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_before_mib": base,
        "peak_rss_mib": _rss_mib(),
        "gpu_peak_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "out_shape": list(sr.shape),
    }
    if args.save:
        np.save(args.save, sr.numpy())
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=384, help="LR side in pixels (default 384)")
    p.add_argument("--scale", type=int, default=4, choices=(2, 3, 4))
    p.add_argument("--tiles", type=int, nargs="+", default=[0, 96, 192], help="tile sizes (0 = untiled)")
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    p.add_argument("--child-tile", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--save", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_tile is not None:
        args.tile = args.child_tile
        _child(args)
        return

    import torch

    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    print(
        f"platform {platform.platform()}, {os.cpu_count()} CPUs, torch threads "
        f"{args.threads or torch.get_num_threads()}, device {args.device}"
        + (f" ({torch.cuda.get_device_name(0)})" if args.device.startswith("cuda") else "")
    )
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(
        f"SRResNet 16 blocks x{args.scale} (random weights), LR {args.size}x{args.size} -> "
        f"{args.size * args.scale}x{args.size * args.scale}, overlap {args.overlap}"
    )
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for tile in args.tiles:
            out = os.path.join(tmp, f"t{tile}.npy")
            cmd = [
                sys.executable,
                __file__,
                "--size",
                str(args.size),
                "--scale",
                str(args.scale),
                "--overlap",
                str(args.overlap),
                "--device",
                args.device,
                "--threads",
                str(args.threads),
                "--child-tile",
                str(tile),
                "--save",
                out,
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(f"tile {tile}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
                continue
            res = json.loads(line[len("RESULT ") :])
            res["file"] = out
            results.append(res)
            gpu = f", GPU peak {res['gpu_peak_mib']:.0f} MiB" if res["gpu_peak_mib"] is not None else ""
            print(
                f"tile {'none' if tile == 0 else tile:>5}: {res['wall_s']:7.1f} s wall, {res['cpu_s']:7.1f} s CPU, peak RSS "
                f"{res['peak_rss_mib']:7.0f} MiB (before upscale {res['rss_before_mib']:.0f} MiB){gpu}",
                flush=True,
            )
        ref = next((r for r in results if r["tile"] == 0), None)
        if ref is not None:
            full = np.load(ref["file"])
            for r in results:
                if r["tile"]:
                    diff = np.abs(np.load(r["file"]) - full).max()
                    print(f"tile {r['tile']:>5}: max |tiled - untiled| = {diff:.2e} ({diff * 255:.3f} / 255)")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
