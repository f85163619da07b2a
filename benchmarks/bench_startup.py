"""Start-up cost of the command-line tools: wall time of whole commands next to ``import torch``.

Usage: ``python benchmarks/bench_startup.py [--repeats N] [--metric NAME ...]``

Each command runs ``--repeats`` times (default 5) as a fresh process, in turns (one of each
command, then again), so that a change of the machine's load hits every command alike; it prints
the minimum and the median wall seconds, and the minimum CPU seconds of the process (user +
system, all threads: less sensitive to other jobs than wall time). Commands:

* ``python -c pass``: the interpreter alone;
* ``python -c "import torch"``: the floor of any command that computes (every metric needs torch);
* ``ranksrgan-score IMG --metric M`` on one 512×512 PNG (skimage's astronaut), once per
  ``--metric`` (default ``niqe`` and ``grid``), on the CPU;
* ``ranksrgan-score --help`` and ``ranksrgan-evaluate --help`` (no torch at all).

The commands run as ``python -m ranksrgan.cli.<tool>``, what the console scripts run. On a machine
shared with other jobs the minimum is the figure to quote (the load average is printed before and
after); the median shows how much the load moved it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import environment_report


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of one run of ``cmd``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs of each command (default 5)")
    ap.add_argument(
        "--metric", action="append", dest="metrics", help="metric of the scoring runs (repeatable; default niqe, grid)"
    )
    args = ap.parse_args()
    metrics = args.metrics or ["niqe", "grid"]

    import numpy as np
    import skimage
    import torch

    from ranksrgan.data.demo import demo_image
    from ranksrgan.io import to_tensor, write_image

    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "astronaut.png"
        write_image(image, to_tensor(np.ascontiguousarray(demo_image("astronaut"))))  # 512×512
        commands = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import torch'": [py, "-c", "import torch"],
            **{
                f"ranksrgan-score 512x512.png --metric {m}": [
                    py,
                    "-m",
                    "ranksrgan.cli.score",
                    str(image),
                    "--metric",
                    m,
                    "--device",
                    "cpu",
                ]
                for m in metrics
            },
            "ranksrgan-score --help": [py, "-m", "ranksrgan.cli.score", "--help"],
            "ranksrgan-evaluate --help": [py, "-m", "ranksrgan.cli.evaluate", "--help"],
        }
        print(environment_report("cpu"))
        print(f"numpy {np.__version__}, scikit-image {skimage.__version__}; repeats {args.repeats}; load before: {_load()}")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm the file cache once
            _run(cmd)
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                times[name].append(_run(cmd))
        width = max(len(n) for n in commands)
        torch_min = min(w for w, _ in times["python -c 'import torch'"])
        print(f"{'command':<{width}}  {'wall min s':>10}  {'wall median s':>13}  {'min - torch':>11}  {'cpu min s':>9}")
        for name, laps in times.items():
            walls = [w for w, _ in laps]
            extra = f"{min(walls) - torch_min:+.2f}" if "torch" not in name and "pass" not in name else ""
            cpu = min(c for _, c in laps)
            print(f"{name:<{width}}  {min(walls):10.2f}  {statistics.median(walls):13.2f}  {extra:>11}  {cpu:9.2f}")
        print(f"load after: {_load()}; torch {torch.__version__}")


if __name__ == "__main__":
    main()
