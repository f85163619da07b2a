"""``ranksrgan-export``: write a generator checkpoint as a state dict, TorchScript or ONNX file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ranksrgan.cli.common import CLIError, command_parser, run_cli

__all__ = ["main", "build_parser"]

PROG = "ranksrgan-export"

#: file extension -> format used when --format is not given
FORMAT_BY_SUFFIX = {".pth": "state_dict", ".pt": "torchscript", ".onnx": "onnx"}

EPILOG = """\
Formats (default from the --out extension: .pth state_dict, .pt torchscript, .onnx onnx):
  state_dict   {"ranksrgan_arch", "state_dict"}; loads with ranksrgan.checkpoints.load_generator
  torchscript  traced module, any batch and image size; torch.jit.load(path)
  onnx         input "input" B×3×h×w in [0, 1], output "output" B×3×(s·h)×(s·w), dynamic
               batch/height/width (needs the onnx package)
The generator is traced on a 1×3×64×64 example. Outputs are not clamped to [0, 1].
"""


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(PROG, "Export an SR generator.", EPILOG)
    p.add_argument(
        "--checkpoint", type=Path, required=True, metavar="PATH", help="generator checkpoint (any layout load_generator reads)"
    )
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file (.pth, .pt or .onnx)")
    p.add_argument("--format", choices=("state_dict", "torchscript", "onnx"), help="output format (default: from the extension)")
    return p


def _run(args: argparse.Namespace) -> int:
    import torch

    from ranksrgan import export
    from ranksrgan.checkpoints import load_generator

    fmt = args.format or FORMAT_BY_SUFFIX.get(args.out.suffix.lower())
    if fmt is None:
        raise CLIError(f"--out {args.out}: cannot tell the format from {args.out.suffix!r}; use .pth, .pt or .onnx or --format")
    if not args.checkpoint.is_file():
        raise CLIError(f"checkpoint file not found: {args.checkpoint}")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise CLIError("ONNX export needs the 'onnx' package (pip install onnx)") from None
    model = load_generator(args.checkpoint, device="cpu")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, int(getattr(model, "in_channels", 3)), 64, 64)
    if fmt == "state_dict":
        export.save_state_dict(model, args.out)
    elif fmt == "torchscript":
        export.export_torchscript(model, args.out, example)
    else:
        export.export_onnx(model, args.out, example, dynamic_hw=True)
    print(f"wrote {args.out} ({fmt})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ranksrgan-export``; returns the exit status."""
    return run_cli(PROG, build_parser(), _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
