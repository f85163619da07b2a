"""Helpers shared by the benchmark scripts: environment line, peak memory, timing.

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, not the caching allocator's reserve).
* CPU: the process's peak resident set (``VmHWM`` on Linux, which :func:`reset_peak_memory`
  resets through ``/proc/self/clear_refs``; elsewhere ``ru_maxrss`` since process start, which
  cannot be reset). DataLoader worker processes are not included.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Sequence

import torch

__all__ = ["Timer", "environment_report", "peak_memory_mb", "reset_peak_memory", "summarize", "synchronize"]


def _device(device: str | torch.device) -> torch.device:
    return torch.device(device)


def environment_report(device: str | torch.device = "cpu") -> str:
    """One block of text: Python, OS, torch / Lightning versions, the device, threads and the load average."""
    device = _device(device)
    lines = [
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores visible",
        f"torch {torch.__version__}, torch threads {torch.get_num_threads()}",
    ]
    try:
        import pytorch_lightning as pl

        lines[-1] += f", pytorch_lightning {pl.__version__}"
    except ImportError:
        pass
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        lines.append(
            f"device {device}: {props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}, TF32 matmul {torch.backends.cuda.matmul.allow_tf32}"
        )
    else:
        lines.append(f"device {device}: {platform.processor() or platform.machine()}")
    if hasattr(os, "getloadavg"):
        lines.append("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    return "\n".join(lines)


def synchronize(device: str | torch.device) -> None:
    """Wait for queued work on ``device`` (no-op on CPU)."""
    device = _device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: str | torch.device) -> None:
    """Start a new peak-memory window (CUDA allocator stats; Linux process ``VmHWM``)."""
    device = _device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current resident set
    except OSError:
        pass  # not Linux (or not allowed): the figure stays the peak since process start


def peak_memory_mb(device: str | torch.device) -> float:
    """Peak memory in MiB since the last :func:`reset_peak_memory` (see the module docstring)."""
    device = _device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB elsewhere


class Timer:
    """Collects wall-clock laps, synchronising ``device`` before reading the clock.

    Use ``with timer: ...`` for one lap; ``timer.laps`` holds the wall seconds of each lap and
    ``timer.cpu_laps`` the CPU seconds this process used in it (all its threads; on a CPU shared
    with other jobs, ``cpu_laps`` is the steadier figure).
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = _device(device)
        self.laps: list[float] = []
        self.cpu_laps: list[float] = []
        self._start: tuple[float, float] | None = None

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        assert self._start is not None
        self.laps.append(time.perf_counter() - self._start[0])
        self.cpu_laps.append(time.process_time() - self._start[1])
        self._start = None


def summarize(seconds: Sequence[float], unit: str = "step") -> str:
    """``"median 0.123 s/step (min 0.120, max 0.130, n=5) = 8.13 step/s"``; empty input -> ``"no samples"``."""
    if not seconds:
        return "no samples"
    med = statistics.median(seconds)
    rate = 1.0 / med if med > 0 else float("inf")
    return f"median {med:.4f} s/{unit} (min {min(seconds):.4f}, max {max(seconds):.4f}, n={len(seconds)}) = {rate:.3f} {unit}/s"
