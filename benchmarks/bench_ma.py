"""Speed of the Ma (NRQM) metric: feature extraction per image size, and forest evaluation.

Usage: ``python benchmarks/bench_ma.py [--device cpu|cuda] [--threads N] [--repeat N] [--no-1080p]``

Prints the device, library versions, thread count, median seconds per call and peak memory.
Feature extraction runs on random 8-bit RGB images (content barely matters for the cost). The
forest timing uses a synthetic forest of about the real model's size (3 forests x 2000 trees of
500 nodes, depth ~25; an estimate: ``regRF_train`` on the authors' 1440 training images with the
default node size 5 grows trees of a few hundred nodes), so the real ``model.mat`` is not needed.

On a shared, oversubscribed CPU, ``--threads 1`` gives steadier numbers than OpenMP's default.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import scipy
import torch

from ranksrgan.metrics._forest import RegressionForest
from ranksrgan.metrics.ma import GROUP_SIZES, MaModel, ma_features


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeat: int) -> float:
    fn()  # warm-up: builds cached masks and tables
    _sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic_forest_arrays(rng: np.random.Generator, n_trees: int, n_features: int, nodes: int = 500) -> dict:
    """Random trees in the randomforest-matlab layout, grown breadth-first up to ``nodes`` nodes,
    splitting a random open leaf each time (gives depths of about 15-25)."""
    ldau = np.zeros((nodes, n_trees))
    rdau = np.zeros((nodes, n_trees))
    mbest = np.zeros((nodes, n_trees))
    upper = rng.normal(size=(nodes, n_trees))
    avnode = rng.normal(size=(nodes, n_trees))
    ndtree = np.zeros(n_trees)
    for t in range(n_trees):
        leaves, count = [0], 1
        while count + 2 <= nodes:
            k = leaves.pop(int(rng.integers(len(leaves))))
            ldau[k, t], rdau[k, t] = count + 1, count + 2
            mbest[k, t] = rng.integers(1, n_features + 1)
            leaves += [count, count + 1]
            count += 2
        ndtree[t] = count
    return {
        "lDau": ldau,
        "rDau": rdau,
        "mbest": mbest,
        "upper": upper,
        "avnode": avnode,
        "ndtree": ndtree,
        "ntree": np.array([n_trees]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-1080p", action="store_true", help="skip the 1920x1080 feature timing")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()})"
    )
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {np.__version__}, scipy {scipy.__version__}")
    print(f"torch threads: {torch.get_num_threads()}; load average at start: {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(0)

    sizes = [(256, 256), (512, 512)] + ([] if args.no_1080p else [(1080, 1920)])
    for h, w in sizes:
        x = torch.from_numpy(rng.integers(0, 256, size=(1, 3, h, w)) / 255.0).to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t = _time(lambda x=x: ma_features(x), device, args.repeat if h * w <= 512 * 512 else 1)
        mem = (
            f"peak GPU mem {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB"
            if device.type == "cuda"
            else f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )
        print(f"Ma features {h}x{w}: {t:.3f} s/image  ({mem})")

    t0 = time.perf_counter()
    forests = tuple(
        RegressionForest.from_arrays(synthetic_forest_arrays(rng, 2000, n, 500), n, name=g).to(device)
        for g, n in GROUP_SIZES.items()
    )
    print(
        f"synthetic model: 3 x 2000 trees, max depth {[f.max_depth for f in forests]}, built in {time.perf_counter() - t0:.1f} s"
    )
    model = MaModel(forests, torch.tensor([1.0, 0.3, 0.3, 0.4], dtype=torch.float64))  # type: ignore[arg-type]
    for b in (1, 64):
        feats = {g: torch.from_numpy(rng.normal(size=(b, n))).to(device) for g, n in GROUP_SIZES.items()}
        t = _time(lambda feats=feats: model.predict(feats), device, args.repeat)
        print(f"forest evaluation (3 x 2000 trees), batch {b}: {t * 1000:.1f} ms per batch, {t / b * 1000:.2f} ms/image")


if __name__ == "__main__":
    main()
