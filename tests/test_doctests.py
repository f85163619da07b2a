"""The ``>>>`` examples of the public API run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "ranksrgan.io",
    "ranksrgan.ops.resize",
    "ranksrgan.ops.color",
    "ranksrgan.metrics.registry",
    "ranksrgan.metrics.fidelity",
    "ranksrgan.metrics.niqe",
    "ranksrgan.checkpoints",
    "ranksrgan.data.hr_lr_pairs",
    "ranksrgan.losses",
    "ranksrgan.data.rank.patch_scores",
    "ranksrgan.evaluation.scoring",
    "ranksrgan.evaluation.rank100",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (details above)"


def test_at_least_twenty_examples():
    finder = doctest.DocTestFinder()
    count = sum(len(t.examples) for name in MODULES for t in finder.find(importlib.import_module(name)))
    assert count >= 20, count
