"""Rank100 (paper §5.6, Fig. 20): does a Ranker separate SR methods?

The same images produced by several methods are scored with one Ranker: the mean and standard
deviation of the score per method (higher score = worse image), the methods sorted from best
(lowest mean) to worst, and the spread of the method means (the paper reads a large spread as a
Ranker that tells the methods apart). ``ranksrgan-rank100`` is the command-line front end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ranksrgan.io import images_by_stem, read_image

__all__ = ["matched_files", "center_crop", "ranker_scores", "format_summary"]


def matched_files(methods: Mapping[str, Path]) -> dict[str, dict[str, Path]]:
    """``{method: {stem: path}}``; ValueError naming the files when the folders' stems differ."""
    files = {name: images_by_stem(folder) for name, folder in methods.items()}
    names = list(files)
    ref = set(files[names[0]])
    if not ref:
        raise FileNotFoundError(f"{methods[names[0]]}: no images")
    for name in names[1:]:
        missing, extra = sorted(ref - set(files[name])), sorted(set(files[name]) - ref)
        if missing or extra:
            raise ValueError(f"{name} ({methods[name]}) vs {names[0]}: missing {missing[:5]}, extra {extra[:5]}")
    return files


def center_crop(x: torch.Tensor, size: int, path: Path) -> torch.Tensor:
    """Central ``size×size`` crop of ``3×H×W`` (ValueError naming ``path`` if it is smaller)."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{path}: {h}x{w} is smaller than --center-crop {size}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[:, top : top + size, left : left + size]


@torch.no_grad()
def ranker_scores(
    ranker: torch.nn.Module,
    methods: Mapping[str, Path],
    crop: int | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> dict[str, dict[str, float]]:
    """Ranker score of every image of every method: ``{method: {stem: score}}`` (higher = worse).

    Images of equal size are scored together in batches of ``batch_size``.
    """
    files = matched_files(methods)
    ranker = ranker.to(device).eval()
    jobs = [(name, stem, path) for name, by_stem in files.items() for stem, path in sorted(by_stem.items())]
    images = {}
    for name, stem, path in jobs:
        x = read_image(path)
        images[(name, stem)] = center_crop(x, crop, path) if crop else x
    by_size: dict[tuple[int, ...], list[tuple[str, str]]] = {}
    for key, x in images.items():
        by_size.setdefault(tuple(x.shape), []).append(key)
    out: dict[str, dict[str, float]] = {name: {} for name in files}
    for keys in by_size.values():
        for start in range(0, len(keys), batch_size):
            chunk = keys[start : start + batch_size]
            scores = ranker(torch.stack([images[k] for k in chunk]).to(device)).float().cpu().tolist()
            for (name, stem), s in zip(chunk, scores):
                out[name][stem] = s
    return out


def format_summary(scores: Mapping[str, Mapping[str, float]]) -> str:
    """Table of per-method mean / std score, best (lowest mean) first, and the spread of the means.

    >>> print(format_summary({"bicubic": {"a": 3.0, "b": 5.0}, "esrgan": {"a": 1.0, "b": 1.0}}))
    method       n        mean         std
    ----------------------------------------
    esrgan       2      1.0000      0.0000
    bicubic      2      4.0000      1.0000
    std of the method means: 1.5000 (higher score = worse image; best method first)
    """
    stats = {m: (float(np.mean(list(v.values()))), float(np.std(list(v.values())))) for m, v in scores.items()}
    order = sorted(stats, key=lambda m: stats[m][0])
    width = max(len("method"), *(len(m) for m in order))
    lines = [f"{'method'.ljust(width)}  {'n':>5}  {'mean':>10}  {'std':>10}", "-" * (width + 33)]
    for m in order:
        lines.append(f"{m.ljust(width)}  {len(scores[m]):5d}  {stats[m][0]:10.4f}  {stats[m][1]:10.4f}")
    means = [stats[m][0] for m in order]
    spread = float(np.std(means)) if len(means) > 1 else math.nan
    lines.append(f"std of the method means: {spread:.4f} (higher score = worse image; best method first)")
    return "\n".join(lines)
