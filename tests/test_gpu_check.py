"""The prepared GPU check runs end to end on the CPU with ``--dry``: every step starts, parses its
arguments and produces the figures the summary table reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the script runs on the interpreter of the tests (it would pick ``.venv`` or ``python3`` itself)
ENV = {**os.environ, "PYTHON": sys.executable}


def test_gpu_check_dry_run_passes_and_prints_the_summary(tmp_path):
    logs = tmp_path / "logs"
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry", "--logs", str(logs)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (logs / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if re.match(r"\| \d\d_", line)]
    by_step = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        by_step.setdefault(cells[0], []).append(cells)
    assert set(by_step) >= {
        "01_pytest_gpu",
        "02_gan_tf32",
        "03_gan_tuned",
        "05_gan_bf16_cl",
        "06_gan_bf16",
        "07_gan_tf32_bf16_losses",
        "08_gan_diagnostics",
        "09_host_overhead",
        "10_niqe",
        "11_ranker_labelling",
        "12_pipeline",
    }
    for cells in (c for step in by_step.values() for c in step):
        # the reference step script lives beside the repository; without it the step says so
        assert cells[4] == "ok" or (cells[0] == "04_reference" and cells[4] == "skipped"), cells
        assert cells[2] not in ("no result", "-") or cells[0] in ("04_reference", "01_pytest_gpu"), cells
    assert any("it/s" in c[2] for c in by_step["02_gan_tf32"])
    assert by_step["12_pipeline"][0][2].startswith("5 stages")
    # the tuned step ran every feed, on-device patches included, with 0 / 1 / 2 Rankers
    tuned = {(c[1].split(", ")[-2], c[1].split(", ")[-1]) for c in by_step["03_gan_tuned"] if "it/s" in c[2]}
    assert tuned == {(v, f) for v in ("srgan", "rank1", "rank2") for f in ("synthetic", "data", "device")}
    # each option's gain and the targets are stated under the table
    for what in ("bf16-mixed over TF32", "channels_last", "fused Adam", "loss networks in bf16", "on-device patches"):
        assert f"- gain of {what}" in summary, what
    assert "- target >= 40 it/s with a real loader and Rankers: " in summary
    diagnostics = {c[1].split(",")[0]: c[2] for c in by_step["08_gan_diagnostics"]}
    assert diagnostics["host syncs per iteration"] == "not counted (CUDA only)"
    assert re.match(
        r"CPU operators [\d.]+ ms of [\d.]+ ms wall per iteration \(\d+ %\); costliest: aten::", diagnostics["profile"]
    )
    overhead = {c[1].split(", ")[-1]: c[2] for c in by_step["09_host_overhead"] if c[1].split(", ")[-2] == "rank2"}
    assert set(overhead) == {"Lightning", "plain loop"}
    assert all(re.match(r"[\d.]+ ms (host )?= [\d.]+ it/s at most$", v) for v in overhead.values()), overhead
    statuses = dict(line.split()[:2] for line in (logs / "steps.txt").read_text().splitlines())
    assert all(v == "0" for k, v in statuses.items() if k != "04_reference"), statuses


def test_gpu_check_refuses_a_gpu_run_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--logs", str(tmp_path)], cwd=REPO, env=ENV, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no CUDA device; use --dry" in proc.stderr


def test_gpu_check_budget_skips_the_steps_it_cannot_fit(tmp_path):
    proc = subprocess.run(
        [
            "bash",
            "benchmarks/gpu_check.sh",
            "--dry",
            "--budget",
            "10",
            "--logs",
            str(tmp_path / "logs"),
            "--archive",
            str(tmp_path / "logs.tar.gz"),
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    steps = [line.split() for line in (tmp_path / "logs" / "steps.txt").read_text().splitlines()]
    assert len(steps) == 12
    assert all(status.startswith("skipped") for _, status, _ in steps), steps
    assert "| 02_gan_tf32 | GAN step, fp32 (TF32 convs) | no result | - | skipped |" in proc.stdout
    # one archive holds every log and the summary (what a machine that returns few files needs)
    with tarfile.open(tmp_path / "logs.tar.gz") as archive:
        names = {Path(n).name for n in archive.getnames()}
    assert {"steps.txt", "summary.md", "00_environment.log"} <= names


def test_summary_ratios_from_known_rates():
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_summary import ratios

    gan = {
        ("02_gan_tf32", "srgan", "data"): 25.0,
        ("02_gan_tf32", "rank1", "data"): 20.0,
        ("02_gan_tf32", "rank1", "synthetic"): 22.0,
        ("06_gan_bf16", "rank1", "synthetic"): 33.0,
        ("03_gan_tuned", "srgan", "device"): 50.0,
        ("03_gan_tuned", "rank1", "device"): 45.0,
    }
    ref = {"fp32_default_tf32": {"steps_per_s": 20.0}}
    notes = ratios(gan, ref)
    assert "tuned (device feed) / default (TF32, worker loader), rank1: 2.25x (45.0 vs 20.0 it/s)" in notes
    assert "ours (fp32 (TF32 convs), 1 Ranker, synthetic) / reference fp32_default_tf32: 1.10x (22.0 vs 20.0 it/s)" in notes
    assert "gain of bf16-mixed over TF32: +50.0 % (33.0 vs 22.0 it/s)" in notes
    assert "one Ranker's share of the step, fp32 (TF32 convs), data: 20.0 %" in notes
    assert "one Ranker's share of the step, bf16 + channels_last + fused Adam, device: 10.0 %" in notes
    assert notes[-1] == (
        "target >= 40 it/s with a real loader and Rankers: met; best 45.0 it/s "
        "(bf16 + channels_last + fused Adam, rank1, device feed), Rankers 10.0 % (target <= 10 %)"
    )


def test_gpu_check_only_reruns_the_named_steps(tmp_path):
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry", "--only", "10_niqe", "--logs", str(tmp_path)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    statuses = dict(line.split()[:2] for line in (tmp_path / "steps.txt").read_text().splitlines())
    assert statuses.pop("10_niqe") == "0"
    assert len(statuses) == 11
    assert all(v in ("skipped-not-selected", "skipped-no-reference-script") for v in statuses.values()), statuses
