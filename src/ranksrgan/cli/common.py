"""Plumbing shared by the command-line front ends: one-line errors with exit codes, NAME=PATH.

Imports no torch (nor any module that does), so that ``--help`` answers at once: every command
imports its heavy modules inside its body.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "CLIError",
    "CLIParser",
    "command_parser",
    "run_cli",
    "skipped_error",
    "add_strict_option",
    "add_device_option",
    "split_named",
]


class CLIError(ValueError):
    """A usage error (bad argument combination) reported as one line; ``code`` is the exit status.

    A ``ValueError``, so Python callers of the library functions that raise it can catch it as such.
    """

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class CLIParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose usage errors raise :class:`CLIError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(message, 2)


def command_parser(prog: str, description: str, epilog: str) -> CLIParser:
    """The :class:`CLIParser` of a command whose ``epilog`` (file formats, exit status) is shown as written."""
    return CLIParser(prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


def run_cli(
    prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: Sequence[str] | None
) -> int:
    """Parse ``argv`` and run ``body``; every expected failure becomes one stderr line.

    Exit codes: 0 success; 1 bad input data (unreadable image, size mismatch, NaN values ...),
    including a batch command that skipped some items (it says how many and which, last);
    2 bad command line or missing/unusable files named on it (unknown metric, missing,
    unreadable or unsafe checkpoint, missing Ma model). ``--help`` exits 0 through argparse as usual.
    """

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prog}: warning: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            args = parser.parse_args(argv)
            return body(args)
    except CLIError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.code
    except (FileNotFoundError, ValueError, OSError) as err:  # ImageReadError and CheckpointError are ValueErrors
        usage = isinstance(err, (FileNotFoundError, IsADirectoryError)) or _is_instance(
            err, "ranksrgan.checkpoints", "CheckpointError"
        )
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        if _is_missing_ma_model(err):  # name this command's way to give the file, if it has one
            msg = err.message("pass --ma-model FILE" if "--ma-model" in parser.format_usage() else None)
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2 if usage else 1
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and not _is_instance(err, "torch", "OutOfMemoryError"):
            raise
        print(f"{prog}: error: out of memory; use a smaller --tile / --batch-size or another device", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _is_instance(err: BaseException, module: str, name: str) -> bool:
    """``isinstance(err, module.name)`` without importing ``module``: only an imported module can
    have raised its own error class."""
    found = sys.modules.get(module)
    return found is not None and isinstance(err, getattr(found, name))


def _is_missing_ma_model(err: BaseException) -> bool:
    return _is_instance(err, "ranksrgan.metrics.ma", "MaModelNotFoundError")


def skipped_error(labels: Sequence[str], total: int, noun: str = "images", verb: str = "skipped") -> CLIError:
    """The closing one-line error (exit 1) of a batch command that skipped ``labels`` out of
    ``total`` items: ``"2 of 10 images skipped: a.png, b.png"`` (the first five named)."""
    shown = ", ".join(labels[:5]) + (f", ... (+{len(labels) - 5} more)" if len(labels) > 5 else "")
    return CLIError(f"{len(labels)} of {total} {noun} {verb}: {shown}", 1)


def add_strict_option(parser: argparse.ArgumentParser, what: str = "image") -> None:
    """``--strict``: stop at the first unusable item instead of skipping it."""
    parser.add_argument(
        "--strict",
        action="store_true",
        help=f"stop at the first unusable {what} (default: skip it with a warning, finish, exit 1)",
    )


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: ``auto`` (GPU when present; :func:`ranksrgan.device.resolve_device`) or a torch device."""
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda, cuda:1 ... (default auto)")


def split_named(spec: str, what: str) -> tuple[str, Path]:
    """``"NAME=PATH"`` -> ``(NAME, PATH)``; a plain ``"PATH"`` -> ``(folder name or file stem, PATH)``.

    The text is split at the first ``=`` only when the part before it is non-empty and holds no
    path separator (so ``dir=x/file`` is a name, ``a/b=c`` is a path).
    """
    name, sep, rest = spec.partition("=")
    if sep and name and "/" not in name and "\\" not in name and not Path(spec).exists():
        if not rest:
            raise CLIError(f"{what} {spec!r}: empty path after '='")
        return name, Path(rest)
    path = Path(spec)
    return (path.name if path.is_dir() else path.stem) or str(path), path
