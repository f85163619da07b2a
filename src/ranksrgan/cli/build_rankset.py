"""``ranksrgan-build-rankset``: write the label file of the SR rank dataset (resumable).

Also runs as ``python -m ranksrgan.cli.build_rankset``. The logic lives in
:mod:`ranksrgan.data.rank.sr_labelling` and :mod:`ranksrgan.data.rank.labels`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ranksrgan.cli.common import (
    CLIError,
    add_device_option,
    add_strict_option,
    command_parser,
    run_cli,
    skipped_error,
    split_named,
)
from ranksrgan.metrics.registry import NO_REFERENCE, PIRM

__all__ = ["main", "build_parser"]

if TYPE_CHECKING:
    from ranksrgan.data.rank.labels import LabelTable

PROG = "ranksrgan-build-rankset"

EPILOG = """\
Each --sr is NAME=SOURCE, listed BEST FIRST (e.g. esrgan, srgan, srresnet); SOURCE is a folder
of SR images with the HR file stems and the HR size, or 'hr' (the HR itself) or 'bicubic'
(MATLAB bicubic x scale of the MATLAB bicubic LR).

Writes one CSV row per (image, patch location, method): sharpness (mean Y gradient magnitude,
0-255), RMSE to HR (Y, 0-255) and each --metric (NIQE: Y channel, --crop-border shaved, 96x96
blocks). Rows are appended to OUT.part in fsync'ed chunks; rerunning the same command after an
interruption resumes there; OUT appears atomically when all rows are done. Filtering (sharpness,
metric gap, patches per image) and the label kind (metric rank / method) are chosen when the
file is loaded (SRRankDataModule), so one file serves every variant.

An image whose HR or SR file cannot be decoded, or whose SR image has the wrong size, is skipped
with a one-line warning (no rows); the build finishes without it and exits 1 naming the skipped
images (to add them, fix the files and build into a new --out). --strict stops at the first one
instead. Folders whose file sets differ, or a folder of unusable images only, stop the build.

Exit status: 0 ok, 1 bad image data (corrupt file, size mismatch; or images skipped), 2 bad
arguments or files.
"""


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, "Build the label file of an SR rank dataset.", EPILOG)
    p.add_argument("--hr", required=True, type=Path, metavar="DIR", help="folder of HR images")
    p.add_argument(
        "--sr",
        required=True,
        action="append",
        metavar="NAME=SOURCE",
        help="a method's SR folder (or 'hr' / 'bicubic'), repeatable, best method first",
    )
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="label file to write (CSV)")
    p.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="NAME",
        choices=NO_REFERENCE,
        help=f"metric to compute, repeatable: {', '.join(NO_REFERENCE)} (default: niqe)",
    )
    p.add_argument("--patch", type=int, default=296, metavar="N", help="patch side (default 296)")
    p.add_argument("--stride", type=int, default=200, metavar="N", help="patch grid stride (default 200)")
    p.add_argument(
        "--crop-border",
        type=int,
        metavar="N",
        help=f"pixels shaved before the metrics (default: the {PIRM.name} convention, --scale)",
    )
    p.add_argument("--scale", type=int, default=4, metavar="S", help="SR factor (mod-crop, 'bicubic'; default 4)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N", help="patches scored per batch/chunk (default 16)")
    add_device_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_strict_option(p)
    return p


def summary(table: LabelTable) -> str:
    """Per-method means of the label columns, as printed by the CLI."""
    import numpy as np

    methods = table.meta["methods"]
    cols = ["sharpness", "rmse", *table.meta["metrics"]]
    names = table.column("method")
    lines = [
        f"{len(table)} rows, {len(set(table.column('image')))} images, {len(table) // max(len(methods), 1)} locations",
        "method".ljust(12) + "".join(c.rjust(12) for c in cols),
    ]
    for m in methods:
        sel = names == m
        lines.append(m.ljust(12) + "".join(f"{np.nanmean(table.column(c)[sel]):12.4f}" for c in cols))
    return "\n".join(lines)


def _body(args: argparse.Namespace) -> int:
    from ranksrgan.data.rank.labels import part_path
    from ranksrgan.data.rank.sr_labelling import build_sr_labels

    sr = {}
    for spec in args.sr:
        name, source = split_named(spec, "--sr")
        if name in sr:
            raise CLIError(f"--sr: method {name!r} given twice")
        sr[name] = str(source)
    device = args.device  # "auto" or a torch device string (resolve_device)
    resumed = part_path(args.out).exists()
    skipped: list[tuple[Path, str]] | None = None if args.strict else []
    table = build_sr_labels(
        args.hr,
        sr,
        args.out,
        metrics=args.metrics or ["niqe"],
        patch_size=args.patch,
        stride=args.stride,
        crop_border=args.crop_border,
        scale=args.scale,
        batch_size=args.batch_size,
        device=device,
        progress=not args.no_progress,
        skipped=skipped,
    )
    print(f"{args.out}: {'resumed and ' if resumed else ''}done")
    print(summary(table))
    if skipped:
        n_images = len(skipped) + len(set(table.column("image")))
        raise skipped_error([str(p) for p, _ in skipped], n_images)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return run_cli(PROG, build_parser(), _body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
