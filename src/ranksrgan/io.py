"""Image files <-> float tensors, with clear errors and atomic writes.

Decoding is done by OpenCV (``IMREAD_UNCHANGED``), which keeps 16-bit PNG/TIFF at full depth and
refuses truncated files instead of returning half an image. What the codecs print on the C-level
stderr while decoding (``libpng error: ...``, OpenCV's own log lines) is captured: it becomes part
of the :class:`ImageReadError` message when decoding fails and is dropped otherwise, so a bad file
gives one clean error and nothing else on the terminal.

Channel rule (applied by :func:`read_image`):

* gray ``H×W`` -> RGB by copying the gray value into R, G and B;
* gray + alpha -> the gray value copied into R, G, B; alpha dropped;
* RGBA -> RGB by dropping alpha (colour values kept as stored, not composited).

Pixel data is used as stored (EXIF orientation is ignored), as SR benchmarks do.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import torch

from ranksrgan.ops.color import round_levels

__all__ = [
    "READ_EXTENSIONS",
    "ImageReadError",
    "list_images",
    "images_by_stem",
    "mod_sizes",
    "read_matched",
    "decode_image",
    "levels",
    "to_tensor",
    "to_array",
    "convert_depth",
    "read_image",
    "check_min_size",
    "atomic_path",
    "atomic_write_bytes",
    "write_image",
    "collect_images",
]

READ_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_WRITE_DEPTHS = {".png": (8, 16), ".tif": (8, 16), ".tiff": (8, 16), ".jpg": (8,), ".jpeg": (8,), ".bmp": (8,)}


class ImageReadError(ValueError):
    """An image file exists but cannot be used (corrupt, truncated, unsupported or too small)."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Sorted image files (by extension, case-insensitive) directly inside ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in READ_EXTENSIONS)


def images_by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    """``{file stem: path}`` of the images directly inside ``folder`` (:func:`list_images`)."""
    return {p.stem: p for p in list_images(folder)}


def mod_sizes(h: int, w: int, scale: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The sizes an SR image of an ``h×w`` HR may have: ``(h, w)`` or mod-cropped to ``scale``.

    >>> mod_sizes(10, 13, 4)
    ((10, 13), (8, 12))
    """
    return (h, w), (h - h % scale, w - w % scale)


def read_matched(
    by_stem: Mapping[str, Path],
    stem: str,
    sizes: Sequence[tuple[int, int]],
    missing: str,
    what: str,
    against: str,
    dtype: np.dtype | type | None = None,
) -> np.ndarray:
    """The image with file stem ``stem`` of a folder (``by_stem``: :func:`images_by_stem`),
    decoded, its size checked and, with ``dtype``, rounded to that bit depth: the one way an SR or
    LR image is matched to its HR by name.

    Raises:
        FileNotFoundError: no such stem; the message is ``missing``.
        ImageReadError: unreadable, or its ``H×W`` is none of ``sizes``:
            ``"<path>: <what> is <H>x<W> but <against>"``.
    """
    path = by_stem.get(stem)
    if path is None:
        raise FileNotFoundError(missing)
    img = decode_image(path)
    if tuple(img.shape[:2]) not in {tuple(s) for s in sizes}:
        raise ImageReadError(f"{path}: {what} is {img.shape[0]}x{img.shape[1]} but {against}")
    return img if dtype is None else convert_depth(img, dtype)


_STDERR_LOCK = threading.Lock()
_LOG_PREFIX = re.compile(r"^(\[\s*\w+:[\d@.]+\]\s+(global\s+)?(\S+:\d+\s+)?(\S+\s+)?|lib\w+ (error|warning):\s*)")


@contextmanager
def _captured_c_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 to a temporary file for the duration of the block; the lines
    written there (by C libraries, which bypass ``sys.stderr``) are put into the yielded list.

    Without a usable descriptor 2 (or on any failure to redirect it) nothing is captured."""
    lines: list[str] = []
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
                    sink.seek(0)
                    text = sink.read(65536).decode("utf-8", "replace")
                    lines.extend(line.strip() for line in text.splitlines() if line.strip())
        finally:
            os.close(saved)


def _codec_detail(lines: list[str]) -> str:
    """The codec's complaint as one short phrase (OpenCV log prefixes removed), or ''; an error
    line is preferred to a warning; OpenCV's internal assertion texts are left out."""
    ranked = sorted((x for x in lines if "OpenCV(" not in x), key=lambda line: "error" not in line.lower())
    for line in ranked:
        line = _LOG_PREFIX.sub("", line).strip()
        if line:
            return line if len(line) <= 160 else line[:157] + "..."
    return ""


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an ``H×W×3`` RGB array of dtype uint8 or uint16 (channel rule above).

    Raises:
        FileNotFoundError: no such file. IsADirectoryError: ``path`` is a folder.
        ImageReadError: unsupported extension, empty, corrupt or truncated file (the message
            carries the codec's own complaint when it gave one).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() not in READ_EXTENSIONS:
        raise ImageReadError(f"{path}: unsupported extension {path.suffix!r} (expected one of {', '.join(READ_EXTENSIONS)})")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    with _captured_c_stderr() as codec_lines:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        detail = _codec_detail(codec_lines)
        raise ImageReadError(
            f"{path}: cannot decode image (corrupt, truncated or unsupported data{': ' + detail if detail else ''})"
        )
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: unsupported sample type {img.dtype} (expected 8- or 16-bit)")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 2:  # gray + alpha
        img = np.repeat(img[:, :, :1], 3, axis=2)
    elif img.shape[2] == 4:  # BGRA
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise ImageReadError(f"{path}: unsupported channel count {img.shape[2]}")
    return np.ascontiguousarray(img)


def levels(dtype: np.dtype | type) -> float:
    """The top sample value of an image dtype: 65535 for uint16, else 255.

    >>> levels(np.uint16), levels(np.uint8)
    (65535.0, 255.0)
    """
    return 65535.0 if np.dtype(dtype) == np.uint16 else 255.0


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """``H×W×C`` uint8/uint16 array -> float32 tensor ``C×H×W`` in [0, 1].

    >>> to_tensor(np.full((2, 4, 3), 255, np.uint8)).shape
    torch.Size([3, 2, 4])
    """
    return torch.from_numpy(img.astype(np.float32) / levels(img.dtype)).permute(2, 0, 1).contiguous()


def to_array(x: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """``C×H×W`` float tensor in [0, 1] -> ``H×W×C`` uint8/uint16 array: the one rounding rule of
    the package (:func:`ranksrgan.ops.color.round_levels`, MATLAB's cast: half up), in ``x``'s dtype.

    Values must already lie in [0, 1] (clamp first). The inverse of :func:`to_tensor` on the grid:

    >>> x = torch.tensor([[[0.0, 0.5 / 255, 1.0]]])
    >>> to_array(x)[..., 0]
    array([[  0,   1, 255]], dtype=uint8)
    >>> to_array(to_tensor(np.arange(6, dtype=np.uint16).reshape(1, 2, 3)), np.uint16).ravel().tolist()
    [0, 1, 2, 3, 4, 5]
    """
    arr = round_levels(x, levels(dtype)).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr.astype(dtype))


def convert_depth(img: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """An ``H×W×C`` uint8/uint16 image at the bit depth ``dtype`` (``img`` itself when it has it).

    >>> convert_depth(np.array([[[255, 128, 0]]], np.uint8), np.uint16).ravel().tolist()
    [65535, 32896, 0]
    """
    if img.dtype == np.dtype(dtype):
        return img
    return to_array(to_tensor(img), dtype)


def read_image(path: str | os.PathLike, min_size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Read an 8/16-bit PNG, JPEG, BMP or TIFF as a float32 tensor ``3×H×W`` in [0, 1].

    Args:
        path: image file.
        min_size: optional ``s`` or ``(h, w)``: raise if the image is smaller (e.g. a patch size).

    Raises:
        FileNotFoundError: the file does not exist. IsADirectoryError: ``path`` is a folder.
        ImageReadError: corrupt/truncated/unsupported data, or smaller than ``min_size``.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "grey.png"
    >>> write_image(path, torch.full((3, 4, 6), 0.5))
    >>> x = read_image(path)
    >>> x.shape, x.dtype, round(x[0, 0, 0].item() * 255)
    (torch.Size([3, 4, 6]), torch.float32, 128)
    """
    img = decode_image(path)
    if min_size is not None:
        check_min_size(path, img.shape[0], img.shape[1], min_size)
    return to_tensor(img)


def check_min_size(path: str | os.PathLike, h: int, w: int, min_size: int | tuple[int, int]) -> None:
    """Raise :class:`ImageReadError` naming ``path`` if ``h×w`` is smaller than ``min_size``."""
    mh, mw = (min_size, min_size) if isinstance(min_size, int) else min_size
    if h < mh or w < mw:
        raise ImageReadError(f"{path}: image is {h}x{w}, smaller than the required {mh}x{mw}")


def _umask_mode() -> int:
    """Permissions a plain ``open()`` would give a new file (0o666 minus the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success fsync it and ``os.replace`` it over
    ``path`` (normal file permissions); on any error remove it, leaving ``path`` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_image(path: str | os.PathLike, x: torch.Tensor, bit_depth: int = 8) -> None:
    """Write ``x`` (``3×H×W`` or ``1×H×W`` float in [0, 1], clamped) atomically.

    The format follows the extension (PNG, JPEG (quality 95), BMP, TIFF); ``bit_depth`` 16 is
    allowed for PNG and TIFF. Values are rounded to the nearest level (:func:`to_array`).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "ramp16.png"
    >>> write_image(path, torch.linspace(0, 1, 8).expand(3, 2, 8), bit_depth=16)
    >>> decode_image(path).dtype, decode_image(path).shape
    (dtype('uint16'), (2, 8, 3))
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_DEPTHS:
        raise ValueError(f"{path}: cannot write extension {path.suffix!r}")
    if bit_depth not in _WRITE_DEPTHS[ext]:
        raise ValueError(f"{path}: {ext} cannot hold {bit_depth}-bit samples")
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"{path}: expected a 3×H×W or 1×H×W tensor, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{path}: refusing to write an image with NaN or Inf values")
    arr = to_array(x.detach().float().clamp(0, 1), np.uint16 if bit_depth == 16 else np.uint8)
    if arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr), params)
    if not ok:
        raise ValueError(f"{path}: encoding failed")
    atomic_write_bytes(path, buf.tobytes())


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Image files from files and folders (folders: their images, sorted, not recursive).

    Raises:
        FileNotFoundError: a path does not exist, or a folder holds no images.
        ImageReadError: a file argument does not have an image extension.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise FileNotFoundError(f"{p}: folder holds no images ({', '.join(READ_EXTENSIONS)})")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in READ_EXTENSIONS:
                raise ImageReadError(f"{p}: not an image file (expected one of {', '.join(READ_EXTENSIONS)})")
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return files
