"""The prepared GPU check runs end to end on the CPU with ``--dry``: every step starts, parses its
arguments and produces the figures the summary table reads."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_passes_and_prints_the_summary(tmp_path):
    logs = tmp_path / "logs"
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry", "--logs", str(logs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (logs / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| 0")]
    by_step = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        by_step.setdefault(cells[0], []).append(cells)
    assert set(by_step) >= {"01_pytest_gpu", "02_gan_tf32", "03_gan_bf16_cl", "05_niqe", "06_ranker_labelling", "07_pipeline"}
    for cells in (c for step in by_step.values() for c in step):
        # the reference step script lives beside the repository; without it the step says so
        assert cells[4] == "ok" or (cells[0] == "04_reference" and cells[4] == "skipped"), cells
        assert cells[2] not in ("no result", "-") or cells[0] in ("04_reference", "01_pytest_gpu"), cells
    assert any("it/s" in c[2] for c in by_step["02_gan_tf32"])
    assert by_step["07_pipeline"][0][2].startswith("5 stages")
    statuses = dict(line.split()[:2] for line in (logs / "steps.txt").read_text().splitlines())
    assert all(v == "0" for k, v in statuses.items() if k != "04_reference"), statuses


def test_gpu_check_refuses_a_gpu_run_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--logs", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "no CUDA device; use --dry" in proc.stderr
