"""``ranksrgan-rank100``: does a Ranker separate SR methods? (paper §5.6, Fig. 20, "Rank100").

Argument parsing and printing only; the logic is :mod:`ranksrgan.evaluation.rank100`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ranksrgan.cli.common import CLIError, add_device_option, command_parser, run_cli, split_named

__all__ = ["main", "build_parser"]

PROG = "ranksrgan-rank100"

EPILOG = """\
Each method is NAME=DIR; all folders must hold the same file stems. Images are scored whole
(equal sizes batched) or, with --center-crop N, as their central NxN crop (at least 32).
CSV (--csv): columns method,image,score, one row per image.
Exit status: 0 ok, 1 bad image data, 2 bad arguments or files.
"""


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, "Mean / std Ranker score per SR method (does a Ranker separate them?).", EPILOG)
    p.add_argument("--ranker", required=True, type=Path, metavar="FILE", help="Ranker checkpoint (.ckpt/.pth)")
    p.add_argument("methods", nargs="+", metavar="NAME=DIR", help="folders of images, one per method")
    p.add_argument("--center-crop", type=int, metavar="N", help="score the central NxN crop instead of the whole image")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images of equal size per batch (default 8)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write method,image,score rows (atomic)")
    add_device_option(p)
    return p


def _body(args: argparse.Namespace) -> int:
    from ranksrgan.checkpoints import load_ranker
    from ranksrgan.device import resolve_device
    from ranksrgan.evaluation import format_summary, ranker_scores, write_csv

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
    device = resolve_device(args.device)
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
