"""``ranksrgan-upscale``: super-resolve image files and folders with a trained generator.

Image rules (also in ``--help``):

* Input is read as RGB: gray images are copied into R, G and B; an alpha channel is DROPPED
  (colour values kept as stored, not composited). Output is always a 3-channel RGB PNG without
  alpha, named ``<input stem>.png`` in the output folder.
* Bit depth: ``--bit-depth auto`` (default) writes 16-bit PNG for 16-bit input and 8-bit PNG
  otherwise; ``8`` or ``16`` forces it. 16-bit input keeps its full precision as network input.
* Large images are processed tile by tile (:mod:`ranksrgan.tiling`): ``--tile`` LR pixels per
  tile side plus ``--tile-overlap`` LR pixels of context per side, cropped away afterwards (no
  blending needed, no seams). The result equals whole-image inference when the overlap is at
  least the generator's receptive-field radius (36 LR px for the standard 16-block SRResNet;
  ``ranksrgan.tiling.receptive_field_radius`` measures it); with less, pixels next to tile
  edges may differ (by an amount that depends on the weights).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ranksrgan.cli.common import CLIError, add_device_option, add_strict_option, command_parser, run_cli, skipped_error

__all__ = ["main", "build_parser"]

PROG = "ranksrgan-upscale"

EPILOG = """\
Output: <OUTDIR>/<input stem>.png, RGB. Gray input becomes RGB (gray copied to all channels);
alpha is dropped. --bit-depth auto: 16-bit PNG for 16-bit input, else 8-bit.
Tiling: each tile covers --tile LR px plus --tile-overlap LR px of context per side, which is
cropped from its output; the result equals untiled inference when the overlap is at least the
generator's receptive-field radius (36 LR px for the 16-block SRResNet; with less, pixels next
to tile edges may differ). --tile 0 runs whole images (memory grows with image size).
Every output is written atomically: a file in OUTDIR is always a complete result. An input that
cannot be read or upscaled is skipped with a one-line warning; the rest are written and the run
exits 1 naming the failed inputs (--strict, implied for a single input: stop at the first one,
saying how many outputs were already written). An output folder created by this run is removed
again if nothing was written.
Exit status: 0 ok, 1 bad image data (or inputs failed), 2 bad arguments or missing files.
"""


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, "Super-resolve images with a RankSRGAN/SRResNet/ESRGAN generator.", EPILOG)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files and/or folders of images (not recursive)")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="OUTDIR", help="output folder (created)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        metavar="PATH",
        help="generator: our .ckpt/.pth or a released SRResNet/RankSRGAN/ESRGAN state dict",
    )
    p.add_argument("--tile", type=int, default=512, metavar="N", help="tile side in LR pixels (default 512; 0 = no tiling)")
    p.add_argument(
        "--tile-overlap",
        type=int,
        default=16,
        metavar="N",
        help="LR pixels of context per tile side, cropped from the output (default 16)",
    )
    add_device_option(p)
    p.add_argument(
        "--bit-depth",
        choices=("auto", "8", "16"),
        default="auto",
        help="PNG bit depth: auto = 16 for 16-bit input, else 8 (default auto)",
    )
    add_strict_option(p, "input")
    return p


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ranksrgan.checkpoints import load_generator
    from ranksrgan.device import resolve_device
    from ranksrgan.io import collect_images, decode_image, to_tensor, write_image
    from ranksrgan.tiling import infer_scale, upscale

    if args.tile < 0:
        raise CLIError(f"--tile must be >= 0, got {args.tile}")
    if args.tile_overlap < 0:
        raise CLIError(f"--tile-overlap must be >= 0, got {args.tile_overlap}")
    if args.checkpoint.is_dir():
        raise CLIError(f"--checkpoint {args.checkpoint}: is a folder, not a checkpoint file")
    if not args.checkpoint.is_file():
        raise CLIError(f"checkpoint file not found: {args.checkpoint}")
    files = collect_images(args.inputs)
    targets = [args.out / f"{f.stem}.png" for f in files]
    seen: dict[Path, Path] = {}
    for f, t in zip(files, targets):
        if t in seen:
            raise CLIError(f"{f} and {seen[t]} would both be written to {t}; upscale them separately")
        seen[t] = f
        if t.exists() and t.resolve() == f.resolve():
            raise CLIError(f"{f}: output would overwrite the input; choose another output folder")
    device = resolve_device(args.device)
    model = load_generator(args.checkpoint, device=device)
    scale = infer_scale(model)
    tile = args.tile or None
    created = _missing_dirs(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    written = 0
    failed: list[Path] = []
    try:
        for f, target in zip(tqdm(files, desc="upscaling", unit="img", disable=None), targets):
            try:
                img = decode_image(f)
                depth = 16 if args.bit_depth == "16" or (args.bit_depth == "auto" and img.dtype == np.uint16) else 8
                lr = to_tensor(img)
                del img
                sr = upscale(model, lr, tile=tile, overlap=args.tile_overlap, scale=scale, progress=True)
                write_image(target, sr, bit_depth=depth)
            except (ValueError, OSError) as err:  # OSError other than a missing input: e.g. a full disk
                msg = (str(err).splitlines() or [type(err).__name__])[0]
                item_error = isinstance(err, (ValueError, FileNotFoundError, IsADirectoryError))
                if args.strict or len(files) == 1 or not item_error:
                    where = f"{written} of {len(files)} output(s) already written to {args.out}" if written else "nothing written"
                    raise CLIError(f"{msg} (stopped at this input; {where})", 1) from err
                reason = msg[len(f"{f}: ") :] if msg.startswith(f"{f}: ") else msg
                warnings.warn(f"{f}: skipped: {reason}", RuntimeWarning, stacklevel=1)
                failed.append(f)
                continue
            written += 1
    finally:
        if written == 0:
            _remove_empty(created)
    if written:
        print(f"wrote {written} image(s) to {args.out} (x{scale}, {device}, {time.perf_counter() - start:.1f} s)")
    else:
        print(f"wrote nothing to {args.out}{' (the folder was removed again)' if created else ''}")
    if failed:
        raise skipped_error([str(f) for f in failed], len(files), "inputs", "failed")
    return 0


def _missing_dirs(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for d in [folder, *folder.parents]:
        if d.exists():
            break
        missing.append(d)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this run created (deepest first), each only while it is empty."""
    for d in folders:
        try:
            d.rmdir()
        except OSError:
            return


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ranksrgan-upscale``; returns the exit status."""
    return run_cli(PROG, build_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
