"""``ranksrgan-upper-bound``: upper bounds of model classification and metric rank (§3.4, Eq. 10).

Definitions (per image, lower-is-better metric): see :func:`ranksrgan.evaluation.upper_bounds`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ranksrgan.cli.common import CLIError, command_parser, run_cli
from ranksrgan.metrics.registry import METRICS

__all__ = ["main", "build_parser"]

PROG = "ranksrgan-upper-bound"

EPILOG = """\
Inputs: per-image CSVs of ranksrgan-score or ranksrgan-evaluate (column "image", optional
"dataset", one column per metric; "<mean>" rows are skipped). Images are matched by
dataset/image (or image). For a CSV that holds several methods (evaluate's per_image.csv),
--names selects the method read from each file; the same file may be given twice.
Eq. 10, with a_i, b_i the scores of method 1 and 2 on image i (lower is better):
  UB_MC = mean of the method model classification labels better (lower mean; 2 on a tie)
  UB_MR = mean_i min(a_i, b_i)     (per-image better output; ties change nothing)
Only lower-is-better metrics (niqe, pi) are accepted.
"""


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, "Upper bounds of model classification and metric rank (RankSRGAN Eq. 10).", EPILOG)
    p.add_argument("csv1", type=Path, metavar="A.csv", help="per-image scores of method 1 (SR1, e.g. SRGAN)")
    p.add_argument("csv2", type=Path, metavar="B.csv", help="per-image scores of method 2 (SR2, e.g. ESRGAN)")
    p.add_argument("--metric", default="niqe", help="lower-is-better metric column (default niqe)")
    p.add_argument(
        "--names",
        nargs=2,
        metavar=("NAME1", "NAME2"),
        help="method names (default: file stems); select the method in multi-method CSVs",
    )
    return p


def _run(args: argparse.Namespace) -> int:
    from ranksrgan.evaluation import read_per_image_csv, upper_bounds

    spec = METRICS.get(args.metric)
    if spec is None:
        raise CLIError(
            f"unknown metric {args.metric!r}; choose from {', '.join(m for m in METRICS if not METRICS[m].higher_is_better)}"
        )
    if spec.higher_is_better:
        raise CLIError(f"Eq. 10 is defined for lower-is-better metrics; {args.metric} is higher-is-better")
    names = tuple(args.names) if args.names else (args.csv1.stem, args.csv2.stem)
    if not args.names and names[0] == names[1]:  # e.g. srgan/per_image.csv and esrgan/per_image.csv
        names = (f"{args.csv1.parent.name}/{args.csv1.stem}", f"{args.csv2.parent.name}/{args.csv2.stem}")
    if names[0] == names[1] and args.csv1 == args.csv2:
        raise CLIError("both inputs are the same method; give two files or two --names")
    s1 = read_per_image_csv(args.csv1, args.metric, method=names[0] if args.names else None)
    s2 = read_per_image_csv(args.csv2, args.metric, method=names[1] if args.names else None)
    ub = upper_bounds(s1, s2, names)
    w = max(len(n) for n in names) + 14
    label = spec.label
    print(f"{label} (lower is better), {ub.n} images")
    print(f"{'mean ' + names[0]:<{w}} {ub.mean1:.4f}")
    print(f"{'mean ' + names[1]:<{w}} {ub.mean2:.4f}")
    print(f"{'UB_MC':<{w}} {ub.ub_mc:.4f}  (model classification: all of {ub.mc_method})")
    print(f"{'UB_MR':<{w}} {ub.ub_mr:.4f}  (metric rank: per-image better of the two)")
    print(f"{names[0]} better than {names[1]} on {100 * ub.frac1_better:.1f}% of images (ties {100 * ub.frac_tie:.1f}%)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ranksrgan-upper-bound``; returns the exit status."""
    return run_cli(PROG, build_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
