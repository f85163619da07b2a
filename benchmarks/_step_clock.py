"""The clock and the diagnostics of ``bench_gan.py``: iteration times inside ``Trainer.fit``, the
host synchronisations torch's CUDA sync debug mode reports, and a profile of the timed window."""

from __future__ import annotations

import collections
import time
import warnings

import pytorch_lightning as pl
import torch
from _common import reset_peak_memory, synchronize

__all__ = ["IterationClock", "KernelProfile", "SyncCounter", "SYNC_WARNING"]

#: the text of torch's warning for a synchronising CUDA operation (sync debug mode "warn")
SYNC_WARNING = "synchronizing CUDA operation"


class SyncCounter:
    """Host synchronisations that torch's CUDA sync debug mode reports while the context is open
    (each is a warning; they are recorded, not shown). Disabled: counts nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.log, self.first, self.last = enabled, [], 0, 0
        self._catch = warnings.catch_warnings(record=True)

    def __enter__(self) -> SyncCounter:
        if self.enabled:
            self.log = self._catch.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            torch.cuda.set_sync_debug_mode("default")
            self._catch.__exit__(*exc)

    def start(self) -> None:
        """Count from here on (the start of the timed window)."""
        self.first = len(self.log)

    def stop(self) -> None:
        """The end of the timed window (the warnings of the last batch's sync are not counted)."""
        self.last = len(self.log)

    def timed(self) -> list[warnings.WarningMessage]:
        """The synchronisations reported inside the timed window."""
        return [w for w in self.log[self.first : self.last] if SYNC_WARNING in str(w.message)]


class KernelProfile:
    """``torch.profiler`` over the timed window. On a GPU: the device's busy time per iteration
    (CUDA kernels and copies, summed) against the wall time, and the costliest kernels; a busy
    share near 100 % means the GPU is the limit, far below it the host (Python, launches, syncs)
    or the loader is. On a CPU: the costliest operators by self CPU time. Disabled: does nothing.
    """

    def __init__(self, enabled: bool, device: torch.device) -> None:
        self.enabled, self.cuda = enabled, device.type == "cuda"
        self.profiler: torch.profiler.profile | None = None

    def start(self) -> None:
        if self.enabled:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.cuda:
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.__enter__()

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.__exit__(None, None, None)

    def report(self, iterations: int, wall_seconds: float, top: int = 5) -> str:
        """One line: busy time (GPU) or operator time (CPU) per iteration and the ``top`` costliest."""
        if self.profiler is None:
            return "not profiled"
        per_iteration: collections.Counter[str] = collections.Counter()
        if self.cuda:
            for event in self.profiler.events():
                if event.device_type == torch.autograd.DeviceType.CUDA:
                    per_iteration[event.name] += event.time_range.elapsed_us() / 1e3 / iterations
            kind = "GPU busy"
        else:
            for event in self.profiler.key_averages():
                per_iteration[event.key] += event.self_cpu_time_total / 1e3 / iterations
            kind = "CPU operators"
        busy, wall = sum(per_iteration.values()), wall_seconds * 1e3 / iterations
        costliest = "; ".join(f"{name[:60]} {ms:.2f} ms" for name, ms in per_iteration.most_common(top))
        return f"{kind} {busy:.1f} ms of {wall:.1f} ms wall per iteration ({busy / wall * 100:.0f} %); costliest: {costliest}"


class IterationClock(pl.Callback):
    """Clock readings around every training batch; resets the peak memory after the warm-up.

    The device is synchronised at the edges of the timed window (the end of the warm-up and the
    last batch), so the window's rate is the true throughput with the host queuing work ahead as
    in training. With ``sync_each_iteration`` it is also synchronised around every batch: the
    per-iteration times are then device times, but the host can no longer run ahead. Without it
    they are host times (on a GPU: how long the host took to queue the batch's work, or waited).
    """

    def __init__(self, device: torch.device, warmup: int, total: int, sync_each_iteration: bool, watchers: tuple = ()) -> None:
        self.device, self.warmup, self.total = device, warmup, total
        self.sync_each_iteration = sync_each_iteration
        self.watchers = watchers  # objects with start() / stop(), called at the timed window's edges
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.cpu_starts: list[float] = []  # process CPU time (all threads of this process)
        self.cpu_ends: list[float] = []

    def on_train_start(self, trainer, pl_module) -> None:
        if self.warmup == 0:
            synchronize(self.device)
            reset_peak_memory(self.device)
            for watcher in self.watchers:
                watcher.start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.sync_each_iteration:
            synchronize(self.device)
        self.starts.append(time.perf_counter())
        self.cpu_starts.append(time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.sync_each_iteration or len(self.ends) + 1 in (self.warmup, self.total):
            synchronize(self.device)
        self.ends.append(time.perf_counter())
        self.cpu_ends.append(time.process_time())
        if len(self.ends) == self.warmup:
            reset_peak_memory(self.device)
            for watcher in self.watchers:
                watcher.start()
        if len(self.ends) == self.total:
            for watcher in self.watchers:
                watcher.stop()

    def compute_times(self) -> list[float]:
        """Batch start -> batch end of each timed iteration (data already on the device)."""
        return [e - s for s, e in zip(self.starts[self.warmup :], self.ends[self.warmup :])]

    def iteration_times(self) -> list[float]:
        """Batch end -> next batch end of each timed iteration (includes waiting for data).

        Without warm-up, the first iteration has no previous batch end: its compute time is used.
        """
        times = [self.ends[i] - self.ends[i - 1] for i in range(max(self.warmup, 1), len(self.ends))]
        return (self.compute_times()[:1] + times) if self.warmup == 0 and self.ends else times

    def cpu_times(self) -> list[float]:
        """CPU seconds this process used per timed iteration (batch end -> batch end, as
        :meth:`iteration_times`; not the DataLoader workers')."""
        times = [self.cpu_ends[i] - self.cpu_ends[i - 1] for i in range(max(self.warmup, 1), len(self.cpu_ends))]
        return ([self.cpu_ends[0] - self.cpu_starts[0]] + times) if self.warmup == 0 and self.cpu_ends else times

    def window_seconds(self) -> float:
        """Wall time of all timed iterations together."""
        first = self.ends[self.warmup - 1] if self.warmup else self.starts[0]
        return self.ends[-1] - first
