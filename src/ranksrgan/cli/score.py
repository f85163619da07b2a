"""``ranksrgan-score``: NIQE / Ma / PI / grid / PSNR / SSIM / LPIPS / DISTS of image files and folders.

Also runs as ``python -m ranksrgan.cli.score``. The logic lives in :mod:`ranksrgan.evaluation`;
the metrics and conventions in :mod:`ranksrgan.metrics.registry`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ranksrgan.cli.common import CLIError, add_device_option, add_strict_option, command_parser, run_cli, skipped_error
from ranksrgan.metrics.registry import CONVENTIONS, METRICS, convention, polarity_table

__all__ = ["main", "build_parser"]

PROG = "ranksrgan-score"

EPILOG = f"""\
metrics ({polarity_table()}):
  niqe  NIQE (LIVE model), MATLAB-faithful
  ma    Ma et al. (NRQM); needs the authors' trained model file (--ma-model or RANKSRGAN_MA_MODEL)
  pi    Perceptual Index ((10 - Ma) + NIQE) / 2; needs the Ma model
  grid  peak-to-peak amplitude (grey levels of the 8-bit luminance) of the pattern repeated at
        the period --scale: the mean high-pass residual of each pixel phase (y mod S, x mod S);
        0 for a flat image, ~0.1-0.5 for photographs at x4 (ranksrgan.metrics.grid)
  psnr  PSNR on the MATLAB Y channel; needs --ref
  ssim  SSIM on the MATLAB Y channel; needs --ref
  lpips LPIPS (VGG16, piq) on RGB; needs --ref; weights lpips_weights.pt and vgg16-397923af.pth
        from the torch hub cache (downloaded on first use) or RANKSRGAN_LPIPS_WEIGHTS /
        RANKSRGAN_VGG16_WEIGHTS
  dists DISTS (piq) on RGB; needs --ref; weights dists_weights.pt (or RANKSRGAN_DISTS_WEIGHTS)
        and the same VGG16 file

--convention PIRM (the PIRM2018 / RankSRGAN evaluation: MATLAB Y, --scale px shaved per side,
as ranksrgan-evaluate) or LIVE (MATLAB gray, nothing shaved) sets --color and --crop-border;
either given explicitly wins. Without --convention: Y and --crop-border 0 (files of unknown scale). Images are read as RGB (gray is copied to R, G, B;
alpha is dropped); 16-bit images are scored after rounding to 8 bits, as the metrics define.
Images of equal size are scored in batches (same results as one at a time).

--ref: each image is matched to the reference with the same file stem. Both are cut to a
multiple of --scale (bottom/right; default 4), the mod-crop of ranksrgan-evaluate, so the
original HR folder matches SR outputs made from its bicubic LR without cropping it by hand;
then their sizes must agree. --scale 1 compares the files as they are. Without --ref nothing
is cut.

Unusable images (unreadable, no or a mismatched reference, too small for a metric: NIQE needs
at least 2 blocks of 96x96 after the crop) are skipped with a one-line warning, scored as nan
with the reason in the CSV, and left out of the mean; the run finishes and then exits 1 naming
them. --strict (implied for a single image) stops at the first one instead. A constant image is
not skipped: its NIQE is nan, with a warning.

CSV: columns image,path,<metric>...; one row per image, then a row with image "<mean>"; when
images were skipped, a last column "skipped" holds the reason. Images from several folders
(ranksrgan-score A/ B/): a first column "folder", and a mean per folder (in the table too).
Exit status: 0 ok, 1 bad image data (or images skipped), 2 bad arguments or missing model/files.
"""


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, "Score images with no-reference and full-reference SR metrics.", EPILOG)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files and/or folders of images (not recursive)")
    p.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="NAME",
        help=f"metric to compute, repeatable: {', '.join(METRICS)} (default: niqe)",
    )
    p.add_argument(
        "--ref",
        type=Path,
        metavar="DIR",
        help="HR reference folder for the full-reference metrics, matched by file stem; both cut to a multiple of --scale",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=4,
        metavar="S",
        help="SR factor: the period grid measures; with --ref: cut image and reference to a multiple of S, "
        "as ranksrgan-evaluate does (default 4; 1 = no cut)",
    )
    p.add_argument(
        "--convention",
        type=str.upper,
        choices=tuple(CONVENTIONS),
        help="PIRM: --color y --crop-border SCALE; LIVE: --color gray --crop-border 0 (default: neither)",
    )
    p.add_argument("--crop-border", type=int, metavar="N", help="pixels shaved per side (default 0, or the --convention's)")
    p.add_argument(
        "--color",
        choices=("y", "gray"),
        help="luminance for niqe/ma/pi/grid: MATLAB rgb2ycbcr Y (default) or rgb2gray (default: the --convention's)",
    )
    p.add_argument("--csv", type=Path, metavar="FILE", help="write per-image scores and the mean (atomic)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="images of equal size per batch (default 8)")
    add_device_option(p)
    p.add_argument(
        "--ma-model", type=Path, metavar="FILE", help="Ma model (.mat of the authors' sr-metric release, or converted .npz)"
    )
    add_strict_option(p)
    return p


def _run(args: argparse.Namespace) -> int:
    from ranksrgan.device import resolve_device
    from ranksrgan.evaluation import format_table, score_images, skipped_records, write_per_image_csv
    from ranksrgan.io import collect_images

    conv = convention(args.convention) if args.convention else None
    crop_border = args.crop_border if args.crop_border is not None else conv.crop_border(args.scale) if conv else 0
    color = args.color or (conv.color if conv else "y")
    metrics = list(dict.fromkeys(args.metrics or ["niqe"]))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise CLIError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    if crop_border < 0:
        raise CLIError(f"--crop-border must be >= 0, got {crop_border}")
    if args.scale < 1:
        raise CLIError(f"--scale must be >= 1, got {args.scale}")
    if args.scale < 2 and any(METRICS[m].needs_scale for m in metrics):
        raise CLIError(f"metric grid measures the pattern of period --scale, which must be >= 2, got {args.scale}")
    if args.ref is not None and not args.ref.is_dir():
        raise CLIError(f"--ref {args.ref}: no such folder")
    if args.ref is None and any(METRICS[m].full_reference for m in metrics):
        need = "/".join(m for m in metrics if METRICS[m].full_reference)
        raise CLIError(f"metric {need} requires reference images: pass --ref HR_FOLDER")
    device = resolve_device(args.device)
    ma_model = None
    if any(METRICS[m].needs_ma for m in metrics):
        from ranksrgan.metrics.ma import MaModelNotFoundError, load_ma_model

        try:
            ma_model = load_ma_model(args.ma_model)
        except MaModelNotFoundError as err:
            need = "/".join(m for m in metrics if METRICS[m].needs_ma)
            raise CLIError(f"metric {need} requires the Ma model: {err.message('pass --ma-model FILE')}") from None
    files = collect_images(args.paths)
    records = score_images(
        files,
        metrics,
        ref_dir=args.ref,
        crop_border=crop_border,
        color=color,
        batch_size=args.batch_size,
        device=device,
        ma_model=ma_model,
        progress=True,
        scale=args.scale if args.ref is not None else 1,
        skip_errors=not args.strict and len(files) > 1,
        sr_scale=args.scale,
    )
    folders = list(dict.fromkeys(r["folder"] for r in records))
    group = "folder" if len(folders) > 1 else None
    if group:  # one block per folder, in the order the folders first appear
        records = sorted(records, key=lambda r: folders.index(r["folder"]))
    print(format_table(records, metrics, group=group))
    if args.csv is not None:
        keys = ["folder", "image", "path"] if group else ["image", "path"]
        write_per_image_csv(args.csv, records, keys, metrics, group_by=[group] if group else ())
        print(f"wrote {args.csv}")
    skipped = skipped_records(records)
    if skipped:
        raise skipped_error([r["path"] for r in skipped], len(records))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ranksrgan-score``; returns the exit status."""
    return run_cli(PROG, build_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
