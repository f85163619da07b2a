"""Every command answers ``--help`` without importing torch (so at once, on any machine)."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _console_scripts() -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = [ln.strip() for ln in cfg["options.entry_points"]["console_scripts"].splitlines() if ln.strip()]
    return dict(tuple(part.strip() for part in ln.split("=", 1)) for ln in lines)


SCRIPTS = _console_scripts()

# Build the parser and print the help in a fresh interpreter; then report whether torch was imported.
PROBE = """
import sys
module, func = sys.argv[1].split(":")
main = getattr(__import__(module, fromlist=[func]), func)
try:
    {call}
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print("TORCH" if "torch" in sys.modules else "NO-TORCH", file=sys.stderr)
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_every_console_script_is_listed():
    assert "ranksrgan-score" in SCRIPTS and "ranksrgan-train" in SCRIPTS and len(SCRIPTS) >= 9


@pytest.mark.parametrize("name", sorted(set(SCRIPTS) - {"ranksrgan-train"}))
def test_help_does_not_import_torch(name):
    res = _run(PROBE.format(call="main(['--help'])"), SCRIPTS[name])
    assert res.returncode == 0, res.stderr
    assert "usage:" in res.stdout
    assert res.stderr.strip().endswith("NO-TORCH"), f"{name} --help imported torch"


def test_train_help_does_not_import_torch():
    """``ranksrgan-train`` (and ``python train.py``) is a Hydra app: its help comes from Hydra."""
    res = _run(PROBE.format(call="sys.argv = ['train.py', '--help']; main()"), SCRIPTS["ranksrgan-train"])
    assert res.returncode == 0, res.stderr
    assert "Powered by Hydra" in res.stdout or "== Config ==" in res.stdout
    assert res.stderr.strip().endswith("NO-TORCH")
