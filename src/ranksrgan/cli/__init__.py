"""Command-line front ends (console scripts ``ranksrgan-*``; ``train.py`` at the repository root).

Importing this package sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user has set it, BEFORE torch
is imported (``import ranksrgan`` does not import torch): idle OpenMP threads then sleep instead of
spinning, which on a machine shared with other busy processes made one CPU NIQE call ~20x
slower (see ``benchmarks/bench_niqe.py --contended``). Set ``OMP_WAIT_POLICY=ACTIVE`` to keep
spinning threads. It has no effect when torch was already imported by the caller.
"""

import os

__all__: list[str] = []

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
