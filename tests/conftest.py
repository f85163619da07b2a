"""Shared fixtures and markers: ``slow`` (deselected by default) and ``gpu`` (skipped without CUDA)."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One intra-op thread: tiny tensors gain nothing from two, and on a 2-core machine with
# DataLoader workers or other jobs running, OpenMP spin-waiting made single tests 10-50x slower.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NIQE_REFERENCE = SHARED / "reference" / "niqe"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _constructor_keywords(cls: type) -> set[str]:
    """The keyword arguments ``cls(...)`` accepts: its ``__init__`` parameters, and those of the
    base classes it passes ``**settings`` on to."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return names - {"self"}


@pytest.fixture(scope="session")
def constructor_keywords():
    """:func:`_constructor_keywords`, for "no dead configuration keys" checks."""
    return _constructor_keywords


@pytest.fixture()
def isolated_command_env(monkeypatch, tmp_path):
    """For command-line tests: no Ma model from the user's environment, a private cache folder,
    and one intra-op thread for the test (restored after it)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("RANKSRGAN_MA_MODEL", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def demo_rgb() -> np.ndarray:
    """A 96×128 uint8 RGB crop of skimage's astronaut (natural content, no download)."""
    from ranksrgan.data.demo import demo_image

    return demo_image("astronaut")[100:196, 150:278].copy()


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The built-in demo data set written once per test session."""
    from ranksrgan.data.demo import build_demo_dataset

    root = tmp_path_factory.mktemp("demo")
    build_demo_dataset(root)
    return root


# The demo pipeline shrunk to seconds (conf/experiment/smoke.yaml).
TINY_PIPELINE = ["experiment=smoke"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Run the tiny demo pipeline once per session: ``(cfg, overrides, pipeline.run result)``.

    The store (trained Rankers and generators, their JSON records) is under ``cfg.paths.store``.
    """
    from hydra import compose, initialize_config_dir

    from ranksrgan import pipeline

    root = tmp_path_factory.mktemp("tiny_run")
    overrides = TINY_PIPELINE + [f"paths.root={root}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
        result = pipeline.run(cfg, overrides)
    return cfg, overrides, result
