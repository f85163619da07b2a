"""``ranksrgan-evaluate``: the paper's Table 3 (NIQE, PI, PSNR, SSIM per test set and method).

The protocol is documented in :func:`ranksrgan.evaluation.evaluate`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ranksrgan.cli.common import (
    CLIError,
    add_device_option,
    add_strict_option,
    command_parser,
    run_cli,
    skipped_error,
    split_named,
)
from ranksrgan.metrics.registry import METRICS

__all__ = ["main", "build_parser"]

PROG = "ranksrgan-evaluate"

EPILOG = """\
Protocol: HR mod-cropped to a multiple of --scale; LR = MATLAB bicubic imresize(HR, 1/scale)
(or --lr folders, one per --hr, matched by stem); methods: Bicubic (MATLAB bicubic upscaling of
the LR), each --checkpoint (run in memory, tiled above --tile LR px), each --sr folder (images
matched by stem; DIR/<set name>/ is used when it exists). SR images are rounded to 8 bits. NIQE,
PI, PSNR and SSIM on the MATLAB Y channel with --scale px shaved per side. PI needs the Ma model
(--ma-model or RANKSRGAN_MA_MODEL); without it the PI row is omitted with a note.
--metric chooses the rows (repeatable; default niqe, pi, psnr, ssim): also ma, grid (amplitude
of the pattern repeated at the period --scale, grey levels of Y, lower is better), the colour
measures psnr_rgb, chroma, deltae, and the learned lpips, dists (piq; RGB, same crop, lower is
better). Their weights come from the torch hub cache (downloaded on first use) or from
RANKSRGAN_LPIPS_WEIGHTS / RANKSRGAN_DISTS_WEIGHTS and RANKSRGAN_VGG16_WEIGHTS; a missing file
stops the run before any image with one line naming it.
Outputs in --out: table3.md (printed too), summary.csv (dataset,metric,<methods>), per_image.csv
(dataset,method,image,<metrics> with "<mean>" rows; input of ranksrgan-upper-bound).
Unusable items are skipped with a one-line warning, not fatal: a bad HR/LR file skips that image
for every method, a missing, unreadable or wrongly sized SR image skips it for that method, an
image too small for a metric (NIQE needs 2 blocks of 96x96 after the crop) for the methods it
fails on. They are nan in per_image.csv with the reason in a last "skipped" column, left out of
the means and listed under the table; the run finishes and exits 1 naming them. --strict stops
at the first one instead.
Exit status: 0 ok, 1 bad image data (or items skipped), 2 bad arguments or missing files.
"""


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, "Benchmark SR methods as in RankSRGAN's Table 3.", EPILOG)
    p.add_argument(
        "--hr",
        action="append",
        required=True,
        metavar="[NAME=]DIR",
        help="HR folder of a test set (repeatable); name = folder name unless NAME= is given",
    )
    p.add_argument(
        "--lr",
        action="append",
        metavar="DIR",
        help="LR folder for each --hr, in the same order (default: MATLAB bicubic of the HR)",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="generator checkpoint to evaluate (repeatable); name = file stem unless NAME= is given",
    )
    p.add_argument(
        "--sr",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="folder of precomputed SR images (repeatable); name = folder name unless NAME= is given",
    )
    p.add_argument("--scale", type=int, default=4, help="SR factor (default 4)")
    p.add_argument("--out", type=Path, default=Path("evaluation"), metavar="DIR", help="output folder (default ./evaluation)")
    add_device_option(p)
    p.add_argument("--tile", type=int, default=512, metavar="N", help="tile side in LR px for generators (0 = whole images)")
    p.add_argument("--tile-overlap", type=int, default=16, metavar="N", help="LR px of context per tile side (default 16)")
    p.add_argument("--ma-model", type=Path, metavar="FILE", help="Ma model file for PI (then PI is required)")
    p.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="NAME",
        help=f"metric row, repeatable: {', '.join(METRICS)} (default: niqe, pi, psnr, ssim)",
    )
    add_strict_option(p, "image or image pair")
    return p


def _run(args: argparse.Namespace) -> int:
    from ranksrgan.device import resolve_device
    from ranksrgan.evaluation import BenchmarkSet, evaluate, format_markdown, write_evaluation

    if args.scale < 1:
        raise CLIError(f"--scale must be >= 1, got {args.scale}")
    if args.tile < 0 or args.tile_overlap < 0:
        raise CLIError("--tile and --tile-overlap must be >= 0")
    if args.lr is not None and len(args.lr) != len(args.hr):
        raise CLIError(f"got {len(args.hr)} --hr but {len(args.lr)} --lr folders; give one --lr per --hr")
    metrics = None if args.metrics is None else list(dict.fromkeys(args.metrics))
    unknown = [m for m in metrics or [] if m not in METRICS]
    if unknown:
        raise CLIError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    sets = []
    for i, spec in enumerate(args.hr):
        name, path = split_named(spec, "--hr")
        sets.append(BenchmarkSet(name, path, Path(args.lr[i]) if args.lr is not None else None))
    checkpoints = [split_named(s, "--checkpoint") for s in args.checkpoint]
    srs = [split_named(s, "--sr") for s in args.sr]
    names = ["Bicubic"] + [n for n, _ in checkpoints + srs]
    for what, seen in (("method", names), ("test set", [t.name for t in sets])):
        dup = sorted({n for n in seen if seen.count(n) > 1})
        if dup:
            raise CLIError(f"{what} name {dup[0]!r} is used twice (Bicubic is reserved); name them with NAME=PATH")
    ev = evaluate(
        sets,
        checkpoints,
        srs,
        scale=args.scale,
        device=resolve_device(args.device),
        tile=args.tile or None,
        overlap=args.tile_overlap,
        ma_model=args.ma_model,
        with_pi=True if args.ma_model is not None else None,
        metrics=metrics,
        progress=True,
        skip_errors=not args.strict,
    )
    print(format_markdown(ev), end="")
    paths = write_evaluation(ev, args.out)
    print(f"wrote {paths['markdown']}, {paths['summary']}, {paths['per_image']}")
    skipped = ev.skipped()
    if skipped:
        total = len({(r["dataset"], r["image"]) for r in ev.records})
        raise skipped_error(skipped, total)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ranksrgan-evaluate``; returns the exit status."""
    return run_cli(PROG, build_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
