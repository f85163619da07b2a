"""Run a Python script as ``__main__`` and print its peak memory when it ends.

    python benchmarks/peak_memory.py train.py experiment=smoke trainer=gpu ...

Prints ``peak CUDA memory: <MiB> MiB allocated, <MiB> MiB reserved`` (``torch.cuda`` counters of
this process; tensors, and the caching allocator's reserve) when CUDA was used, and the process's
peak resident set in any case. Worker processes are not included.
"""

from __future__ import annotations

import atexit
import resource
import runpy
import sys


def _report() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        allocated = torch.cuda.max_memory_allocated() / 2**20
        reserved = torch.cuda.max_memory_reserved() / 2**20
        print(f"peak CUDA memory: {allocated:.0f} MiB allocated, {reserved:.0f} MiB reserved", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"peak process RSS: {rss:.0f} MiB", flush=True)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python benchmarks/peak_memory.py SCRIPT [ARGS...]")
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    atexit.register(_report)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
