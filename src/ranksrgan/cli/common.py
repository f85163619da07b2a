"""Plumbing shared by the command-line front ends: one-line errors with exit codes, NAME=PATH."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ranksrgan.io import ImageReadError


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


def run_cli(
    prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: Sequence[str] | None
) -> int:
    """Parse ``argv`` and run ``body``; every expected failure becomes one stderr line.

    Exit codes: 0 success; 1 bad input data (unreadable image, size mismatch, NaN values ...);
    2 bad command line or missing/unusable files named on it (unknown metric, missing
    checkpoint or Ma model). ``--help`` exits 0 through argparse as usual.
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
    except (FileNotFoundError, ImageReadError, ValueError, OSError) as err:
        code = 1 if isinstance(err, ImageReadError) else 2 if isinstance(err, FileNotFoundError) else 1
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return code
    except (MemoryError, torch.OutOfMemoryError):
        print(f"{prog}: error: out of memory; use a smaller --tile / --batch-size or another device", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


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
