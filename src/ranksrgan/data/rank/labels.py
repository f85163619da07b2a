"""Label files of the SR rank dataset: per-patch metric values, written atomically, built resumably.

File format (CSV, UTF-8):

* line 1: ``# {json}`` — the build settings (``format``, ``hr``, ``sr`` {method: source},
  ``methods`` (best first), ``metrics``, ``patch_size``, ``stride``, ``crop_border``, ``scale``);
* line 2: header ``image,y,x,method,sharpness,rmse,<metric>...``;
* one row per (image, patch location, method): ``image`` is the HR file stem, ``y``/``x`` the
  top-left corner of the ``patch_size`` window, ``sharpness`` and the metric values of that
  method's patch (floats written with ``repr``: exact round trip; ``nan`` where undefined).

The key of a row is ``(image, y, x, method)``. Readers keep the first row of each key.

Resumable build: rows are appended to ``<out>.part`` (same format) in chunks, each chunk flushed
and fsync'ed. After an interruption the next build with the SAME settings re-reads the part file,
drops a torn last line, skips every key already there and appends the rest; at the end all rows
are de-duplicated, sorted and written atomically to ``<out>`` (temporary file + ``os.replace``),
and the part file is removed. A part file written with other settings is refused (not mixed).

The values in the rows (sharpness, the metrics, how they combine into one label):
:mod:`ranksrgan.data.rank.patch_scores`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ranksrgan.io import atomic_write_bytes

__all__ = [
    "LABEL_FORMAT",
    "BASE_COLUMNS",
    "LabelTable",
    "read_labels",
    "write_labels",
    "PartWriter",
    "part_path",
]

LABEL_FORMAT = "ranksrgan-rankset/1"
BASE_COLUMNS = ("image", "y", "x", "method", "sharpness", "rmse")

Key = tuple[str, int, int, str]


# ----------------------------------------------------------------------------- table and file I/O


class LabelTable:
    """Rows of a label file. ``meta``: build settings; ``columns``: header; ``rows``: lists of values.

    Use :meth:`column` for a NumPy column and :meth:`keys` for the row keys.
    """

    def __init__(self, meta: dict, columns: Sequence[str], rows: list[list]) -> None:
        self.meta, self.columns, self.rows = meta, list(columns), rows

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> np.ndarray:
        i = self.columns.index(name)
        dtype = object if name in ("image", "method") else np.int64 if name in ("y", "x") else np.float64
        return np.array([r[i] for r in self.rows], dtype=dtype)

    def keys(self) -> list[Key]:
        return [(r[0], r[1], r[2], r[3]) for r in self.rows]


def part_path(out: str | os.PathLike) -> Path:
    """The in-progress file of a resumable build of ``out``."""
    out = Path(out)
    return out.with_name(out.name + ".part")


def _columns(meta: dict) -> list[str]:
    return list(BASE_COLUMNS) + list(meta["metrics"])


def _format_row(row: Sequence) -> list[str]:
    return [row[0], str(int(row[1])), str(int(row[2])), row[3]] + [repr(float(v)) for v in row[4:]]


def _encode(meta: dict | None, rows: Iterable[Sequence], header: Sequence[str] | None) -> bytes:
    buf = io.StringIO()
    if meta is not None:
        buf.write("# " + json.dumps(meta, sort_keys=True) + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow(_format_row(row))
    return buf.getvalue().encode("utf-8")


def _parse(path: Path, text: str, allow_torn_tail: bool) -> LabelTable:
    lines = text.split("\n")
    if not lines[0].startswith("# "):
        raise ValueError(f"{path}: not a rank label file (first line must be '# {{json settings}}')")
    try:
        meta = json.loads(lines[0][2:])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: unreadable settings line: {err}") from err
    if meta.get("format") != LABEL_FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {LABEL_FORMAT!r}")
    columns = _columns(meta)
    if len(lines) < 2 or next(csv.reader([lines[1]]), []) != columns:
        raise ValueError(f"{path}: header must be {','.join(columns)}")
    body = lines[2:]
    if body and body[-1] == "":
        body = body[:-1]
    elif body and allow_torn_tail:
        body = body[:-1]  # no final newline: the last line was being written when the run stopped
    rows, seen = [], set()
    for n, fields in enumerate(csv.reader(body), start=3):
        try:
            if len(fields) != len(columns):
                raise ValueError(f"{len(fields)} fields, expected {len(columns)}")
            row = [fields[0], int(fields[1]), int(fields[2]), fields[3]] + [float(v) for v in fields[4:]]
        except ValueError as err:
            raise ValueError(f"{path}: line {n}: {err}") from err
        key = (row[0], row[1], row[2], row[3])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return LabelTable(meta, columns, rows)


def read_labels(path: str | os.PathLike) -> LabelTable:
    """Read a label file (duplicate keys: the first row wins). Raises FileNotFoundError/ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such label file (build it with ranksrgan-build-rankset)")
    return _parse(path, path.read_text(encoding="utf-8"), allow_torn_tail=False)


def _sort_key(meta: dict) -> Callable[[Sequence], tuple]:
    order = {m: i for i, m in enumerate(meta["methods"])}
    return lambda r: (r[0], r[1], r[2], order.get(r[3], len(order)), r[3])


def write_labels(path: str | os.PathLike, table: LabelTable) -> None:
    """Write ``table`` atomically (rows de-duplicated by key, sorted by image, y, x, method order)."""
    seen, rows = set(), []
    for row in sorted(table.rows, key=_sort_key(table.meta)):
        key = (row[0], row[1], row[2], row[3])
        if key not in seen:
            seen.add(key)
            rows.append(row)
    atomic_write_bytes(path, _encode(table.meta, rows, _columns(table.meta)))


class PartWriter:
    """Append-only, crash-tolerant writer of ``<out>.part`` for a resumable build.

    Opening it reads what an earlier run with the same ``meta`` left (``done`` holds those keys),
    cuts a torn last line, and refuses a part file written with different settings. Each
    :meth:`append` writes one chunk of rows, then flushes and fsyncs. :meth:`finish` merges into
    ``out`` atomically and deletes the part file.
    """

    def __init__(self, out: str | os.PathLike, meta: dict) -> None:
        self.out, self.path, self.meta = Path(out), part_path(out), meta
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[list] = []
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8")
            if not text.startswith("# ") or "\n" not in text:  # stopped before the header was complete
                self.path.unlink()
            else:
                table = _parse(self.path, text, allow_torn_tail=True)
                if table.meta != meta:
                    raise ValueError(
                        f"{self.path}: left by a build with other settings ({_diff(table.meta, meta)}); "
                        "delete it or build with the same settings"
                    )
                self.rows = table.rows
                if not text.endswith("\n"):
                    keep = len(text[: text.rfind("\n") + 1].encode("utf-8"))
                    with open(self.path, "r+b") as fh:
                        fh.truncate(keep)
        self.done: set[Key] = {(r[0], r[1], r[2], r[3]) for r in self.rows}
        if not self.path.exists():
            with open(self.path, "wb") as fh:
                fh.write(_encode(meta, [], _columns(meta)))
                fh.flush()
                os.fsync(fh.fileno())

    def append(self, rows: Sequence[Sequence]) -> None:
        """Append rows (``[image, y, x, method, sharpness, rmse, *metrics]``) durably; skip known keys."""
        new = [list(r) for r in rows if (r[0], r[1], r[2], r[3]) not in self.done]
        if not new:
            return
        with open(self.path, "ab") as fh:
            fh.write(_encode(None, new, None))
            fh.flush()
            os.fsync(fh.fileno())
        self.rows.extend(new)
        self.done.update((r[0], r[1], r[2], r[3]) for r in new)

    def finish(self) -> LabelTable:
        """Write ``out`` atomically from every row, remove the part file, return the table."""
        table = LabelTable(self.meta, _columns(self.meta), self.rows)
        write_labels(self.out, table)
        self.path.unlink(missing_ok=True)
        return read_labels(self.out)


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} vs {new.get(k)!r}" for k in keys) or "same"
