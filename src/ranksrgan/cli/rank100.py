"""``ranksrgan-rank100``: does a Ranker separate SR methods? (paper §5.6, Fig. 20, "Rank100").

Scores the same images produced by several methods with one Ranker and prints the mean and
standard deviation of the score per method (higher score = worse image), the methods sorted
from best (lowest mean) to worst, and the spread of the method means (the paper reads a large
spread as a Ranker that tells the methods apart).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ranksrgan.cli.common import CLIError, CLIParser, run_cli, split_named
from ranksrgan.evaluation import write_csv
from ranksrgan.io import list_images, read_image

PROG = "ranksrgan-rank100"

EPILOG = """\
Each method is NAME=DIR; all folders must hold the same file stems. Images are scored whole
(equal sizes batched) or, with --center-crop N, as their central NxN crop (at least 32).
CSV (--csv): columns method,image,score, one row per image.
Exit status: 0 ok, 1 bad image data, 2 bad arguments or files.
"""


def matched_files(methods: Mapping[str, Path]) -> dict[str, dict[str, Path]]:
    """``{method: {stem: path}}``; ValueError naming the files when the folders' stems differ."""
    files = {name: {p.stem: p for p in list_images(folder)} for name, folder in methods.items()}
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
    """Table of per-method mean / std score, best (lowest mean) first, and the spread of the means."""
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


def build_parser() -> argparse.ArgumentParser:
    p = CLIParser(
        prog=PROG,
        description="Mean / std Ranker score per SR method (does a Ranker separate them?).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--ranker", required=True, type=Path, metavar="FILE", help="Ranker checkpoint (.ckpt/.pth)")
    p.add_argument("methods", nargs="+", metavar="NAME=DIR", help="folders of images, one per method")
    p.add_argument("--center-crop", type=int, metavar="N", help="score the central NxN crop instead of the whole image")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images of equal size per batch (default 8)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write method,image,score rows (atomic)")
    p.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, ... (default auto)")
    return p


def _body(args: argparse.Namespace) -> int:
    from ranksrgan.checkpoints import load_ranker

    methods: dict[str, Path] = {}
    for spec in args.methods:
        name, folder = split_named(spec, "method")
        if name in methods:
            raise CLIError(f"method {name!r} given twice")
        methods[name] = folder
    if args.center_crop is not None and args.center_crop < 32:
        raise CLIError(f"--center-crop must be >= 32 (the Ranker's minimum input), got {args.center_crop}")
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not args.ranker.is_file():
        raise CLIError(f"{args.ranker}: no such Ranker checkpoint")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    ranker = load_ranker(args.ranker, device=device)
    scores = ranker_scores(ranker, methods, args.center_crop, args.batch_size, device)
    print(format_summary(scores))
    if args.csv:
        write_csv(
            args.csv,
            ["method", "image", "score"],
            [(m, stem, s) for m, by_stem in scores.items() for stem, s in sorted(by_stem.items())],
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return run_cli(PROG, build_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
