"""Speed and memory of :func:`ranksrgan.metrics.niqe.niqe` (float64, MATLAB-faithful NIQE).

Prints, per device and input size, the median (and minimum) wall time per image over ``reps``
runs after one warm-up, the median CPU time of the process per image (all threads; less
sensitive than wall time to other processes on a shared machine), and the peak extra memory:

* CPU: growth of the process's peak resident set (``ru_maxrss``) during the calls, measured in a
  fresh subprocess per configuration so that earlier runs do not hide it (tracemalloc does not
  see torch's allocations);
* GPU: ``torch.cuda.max_memory_allocated`` minus the memory held before the call.

Usage: ``python benchmarks/bench_niqe.py [--threads N] [--device cpu|cuda|all] [--quick]``.
The whole script takes well under two minutes on a 2-core CPU.

``--contended``: CPU NIQE at 512² beside one CPU-burning neighbour process (a Python busy loop,
started here and stopped at the end), as when images are scored next to a training run. It
prints the median time per call with nothing else running, then with the neighbour: with
OpenMP's default wait policy (``OMP_WAIT_POLICY`` unset: idle threads spin), with
``OMP_WAIT_POLICY=PASSIVE`` (what ``train.py`` and the ``ranksrgan-*`` commands set unless the
user did) and with one thread, each against the idle figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

# (height, width, batch, repetitions on CPU)
CONFIGS = [
    (256, 256, 1, 20),
    (512, 512, 1, 20),
    (1080, 1920, 1, 3),
    (256, 256, 8, 5),
    (512, 512, 8, 3),
    (1080, 1920, 8, 1),
]


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB elsewhere


def _worker(h: int, w: int, batch: int, reps: int, device: str, threads: int) -> dict:
    import torch

    from ranksrgan.metrics.niqe import niqe

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, h, w, generator=gen, dtype=torch.float64).mul_(255).round_().div_(255)
    x = x.to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        niqe(x[:1, :, :256, :256])  # CUDA context, kernels and tables, outside the memory figure
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = _maxrss_mib()
    niqe(x)  # warm-up (caches the gamma table and parameters)
    sync()
    times, cpu_times = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        niqe(x)
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    if device == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = _maxrss_mib() - rss0
    return {
        "ms_per_image": statistics.median(times) * 1e3 / batch,
        "ms_min": min(times) * 1e3 / batch,
        "cpu_ms_per_image": statistics.median(cpu_times) * 1e3 / batch,
        "peak_mib": peak,
    }


def _run_worker(h: int, w: int, batch: int, reps: int, device: str, threads: int, wait_policy: str | None = "keep") -> dict:
    """One configuration in a fresh process; ``wait_policy``: a value for ``OMP_WAIT_POLICY``,
    None to unset it (OpenMP's default), ``"keep"`` to pass this process's environment on."""
    env = dict(os.environ)
    if wait_policy is None:
        env.pop("OMP_WAIT_POLICY", None)
    elif wait_policy != "keep":
        env["OMP_WAIT_POLICY"] = wait_policy
    cmd = [sys.executable, __file__, "--threads", str(threads), "--worker", str(h), str(w), str(batch), str(reps), device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def contended(threads: int, reps: int = 20) -> None:
    """NIQE at 512² idle, then beside one busy process (default / PASSIVE wait policy, 1 thread)."""
    h = w = 512
    print(f"CPU NIQE at {h}x{w}, batch 1, median of {reps} calls; {threads} threads unless stated; {os.cpu_count()} cores")
    idle = _run_worker(h, w, 1, reps, "cpu", threads, None)["ms_per_image"]
    idle_passive = _run_worker(h, w, 1, reps, "cpu", threads, "PASSIVE")["ms_per_image"]
    idle_one = _run_worker(h, w, 1, reps, "cpu", 1, None)["ms_per_image"]
    print(f"{'idle, OMP_WAIT_POLICY unset':44s} {idle:9.1f} ms")
    print(f"{'idle, OMP_WAIT_POLICY=PASSIVE':44s} {idle_passive:9.1f} ms")
    print(f"{'idle, 1 thread':44s} {idle_one:9.1f} ms")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let the neighbour reach full speed
        rows = [
            ("busy neighbour, OMP_WAIT_POLICY unset", _run_worker(h, w, 1, reps, "cpu", threads, None)),
            ("busy neighbour, OMP_WAIT_POLICY=PASSIVE", _run_worker(h, w, 1, reps, "cpu", threads, "PASSIVE")),
            ("busy neighbour, 1 thread", _run_worker(h, w, 1, reps, "cpu", 1, None)),
        ]
    finally:
        burner.terminate()
        burner.wait()
    for label, r in rows:
        t = r["ms_per_image"]
        print(f"{label:44s} {t:9.1f} ms  ({t / idle:5.1f}x idle, {t / idle_one:5.1f}x idle 1-thread)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="batch 1 only, fewer repetitions")
    parser.add_argument(
        "--contended",
        action="store_true",
        help="CPU NIQE at 512x512 beside one busy process, with and without OMP_WAIT_POLICY=PASSIVE",
    )
    parser.add_argument("--smallest", action="store_true", help="only the smallest size (a check that it runs)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    threads = args.threads or torch.get_num_threads()
    if args.worker:
        h, w, batch, reps = (int(v) for v in args.worker[:4])
        print(json.dumps(_worker(h, w, batch, reps, args.worker[4], threads)))
        return
    if args.contended:
        contended(threads)
        return

    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu", "cuda"]
    if "cuda" in devices and not torch.cuda.is_available():
        devices.remove("cuda")
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, CPU threads {threads} "
        f"(of {os.cpu_count()} cores), cpu: {platform.processor() or platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f} (other processes slow CPU timings)"
    )
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name(0)}")
    print(
        f"{'device':6s} {'H×W':>10s} {'batch':>5s} {'ms/image (median)':>18s} {'ms/image (min)':>15s} "
        f"{'CPU-time ms/image':>18s} {'peak extra MiB':>15s}"
    )
    for device in devices:
        for h, w, batch, reps in CONFIGS[:1] if args.smallest else CONFIGS:
            if args.quick:
                if batch > 1:
                    continue
                reps = max(2, reps // 3)
            if device == "cuda":
                reps = max(reps, 10)
            r = _run_worker(h, w, batch, reps, device, threads)
            print(
                f"{device:6s} {f'{h}×{w}':>10s} {batch:5d} {r['ms_per_image']:18.2f} {r['ms_min']:15.2f} "
                f"{r['cpu_ms_per_image']:18.2f} {r['peak_mib']:15.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
