"""Shared fixtures and markers: ``slow`` (deselected by default) and ``gpu`` (skipped without CUDA)."""

from __future__ import annotations

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
