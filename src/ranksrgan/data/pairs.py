"""Former name of :mod:`ranksrgan.data.hr_lr_pairs`, kept for the imports that still use it."""

from __future__ import annotations

from ranksrgan.data.hr_lr_pairs import ImagePair, augment_pair, load_pair, load_pairs, make_lr

__all__ = ["ImagePair", "make_lr", "load_pair", "load_pairs", "augment_pair"]
