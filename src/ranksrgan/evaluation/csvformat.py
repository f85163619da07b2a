"""The per-image CSV format and plain-text tables of scores.

Per-image CSV format (written by ``ranksrgan-score`` and ``ranksrgan-evaluate``, read by
``ranksrgan-upper-bound``; one definition: :func:`write_per_image_csv` /
:func:`read_per_image_csv`):

* UTF-8, comma separated, one header row.
* Key columns first: ``image`` (the file stem); ``ranksrgan-score`` adds ``path`` (the file as
  found) after it, and ``folder`` (the file's folder) before it when the files come from several
  folders; ``ranksrgan-evaluate`` puts ``dataset`` and ``method`` before it.
* Then one column per metric, named by its id (:data:`ranksrgan.metrics.registry.METRICS`: ``niqe``, ``ma``, ``pi``,
  ``grid``, ``psnr``, ``ssim``, the colour measures ``psnr_rgb``, ``chroma``, ``deltae``, and the learned
  ``lpips``, ``dists``; ``evaluate``
  adds ``rank/<name>`` for each Ranker it is given), values as Python ``repr`` of the float
  (exact round trip; ``nan``/``inf`` where the metric gives them).
* Summary rows: for each group of rows (each dataset/method in ``evaluate``, each folder or the
  whole file in ``score``) a final row whose ``image`` is :data:`MEAN_ROW` (``<mean>``, not a valid stem on
  Windows and unusual elsewhere) holding the arithmetic mean of the group (NaN if any value is
  NaN). Readers skip these rows.
* Skipped images: ``ranksrgan-score`` and ``ranksrgan-evaluate`` do not stop at an unusable
  image (unreadable file, no or a mismatched reference / SR image, too small for a metric) but
  write its row with ``nan`` in every metric column. A file with such a row has one more, last
  column, ``skipped``: the reason on skipped rows, empty on scored rows, ``"<n> skipped"`` on a
  summary row, whose means then leave the skipped rows out. Files without skipped rows have no
  ``skipped`` column (exactly the earlier format); :func:`read_per_image_csv` reads both, and
  skipped rows as NaN.
"""

from __future__ import annotations

import csv
import io as _io
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ranksrgan.io import atomic_write_bytes
from ranksrgan.metrics.registry import METRICS

__all__ = [
    "MEAN_ROW",
    "SKIPPED",
    "skipped_records",
    "write_csv",
    "write_per_image_csv",
    "read_per_image_csv",
    "format_table",
    "mean",
]

#: Record key of an item that could not be scored: the reason (absent or "" when scored).
SKIPPED = "skipped"


def skipped_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of items that were skipped (their ``skipped`` value is the reason)."""
    return [r for r in records if r.get(SKIPPED)]


#: ``image`` value of the summary rows of a per-image CSV.
MEAN_ROW = "<mean>"


def _fmt_csv(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file atomically (floats as ``repr``, i.e. exact)."""
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(header))
    for row in rows:
        w.writerow([_fmt_csv(v) for v in row])
    atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean in float64 (NaN if any value is NaN, or for no values)."""
    return float(np.mean(np.asarray(values, dtype=np.float64))) if values else math.nan


def write_per_image_csv(
    path: str | Path,
    records: Sequence[Mapping[str, Any]],
    key_columns: Sequence[str],
    metrics: Sequence[str],
    group_by: Sequence[str] = (),
) -> None:
    """Write records in the per-image CSV format (module docstring), with a :data:`MEAN_ROW`
    after each group of consecutive records sharing the ``group_by`` columns.

    ``key_columns`` must include ``"image"``; ``group_by`` is a subset of the key columns. When a
    record was skipped (``record["skipped"]`` holds a reason), a last column ``skipped`` is added:
    the reason on such rows, empty on scored rows, ``"<n> skipped"`` on a group's mean row; the
    means leave skipped rows out.
    """
    if "image" not in key_columns:
        raise ValueError("key_columns must include 'image'")
    with_skipped = bool(skipped_records(records))
    rows: list[list[Any]] = []

    def mean_row(group: list[Mapping[str, Any]]) -> list[Any]:
        row: list[Any] = []
        for k in key_columns:
            row.append(MEAN_ROW if k == "image" else group[0][k] if k in group_by else "")
        scored = [g for g in group if not g.get(SKIPPED)]
        row += [mean([g[m] for g in scored]) for m in metrics]
        if with_skipped:
            n = len(group) - len(scored)
            row.append(f"{n} skipped" if n else "")
        return row

    group: list[Mapping[str, Any]] = []
    for rec in records:
        if group and any(rec[k] != group[0][k] for k in group_by):
            rows.append(mean_row(group))
            group = []
        group.append(rec)
        rows.append(
            [rec[k] for k in key_columns] + [float(rec[m]) for m in metrics] + ([rec.get(SKIPPED) or ""] if with_skipped else [])
        )
    if group:
        rows.append(mean_row(group))
    write_csv(path, list(key_columns) + list(metrics) + ([SKIPPED] if with_skipped else []), rows)


def read_per_image_csv(path: str | Path, metric: str, method: str | None = None) -> dict[str, float]:
    """Per-image values of one metric from a per-image CSV (summary rows skipped).

    Args:
        path: CSV in the per-image format.
        metric: metric column to read.
        method: for files with a ``method`` column holding several methods, the one to read;
            ignored (may be None) when the file holds one method or has no such column.

    Returns:
        ``{image key: value}``; the key is ``"dataset/image"`` when there is a ``dataset`` column,
        ``"folder/image"`` when there is a ``folder`` column, else ``"image"``. Rows of skipped images (files with a ``skipped`` column) read as NaN.

    Raises:
        FileNotFoundError: no such file. ValueError: missing columns, unknown or ambiguous method,
        duplicate image keys, or a value that is not a number (messages name file and row).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        if "image" not in cols:
            raise ValueError(f"{path}: not a per-image metric CSV (no 'image' column; columns: {', '.join(cols)})")
        if metric not in cols:
            have = [c for c in cols if c in METRICS] or [
                c for c in cols if c not in ("image", "path", "folder", "dataset", "method", SKIPPED)
            ]
            raise ValueError(f"{path}: no {metric!r} column (metric columns: {', '.join(have) or 'none'})")
        rows = [r for r in reader if r["image"] != MEAN_ROW]
    if "method" in cols:
        methods = list(OrderedDict.fromkeys(r["method"] for r in rows))
        if method is not None and method in methods:
            rows = [r for r in rows if r["method"] == method]
        elif len(methods) > 1:
            hint = f"method {method!r} is not among" if method is not None else "it holds several methods:"
            raise ValueError(f"{path}: {hint} {', '.join(methods)}; name one with --names")
    out: dict[str, float] = {}
    for r in rows:
        group = "dataset" if "dataset" in cols else "folder" if "folder" in cols else None
        key = f"{r[group]}/{r['image']}" if group else r["image"]
        if key in out:
            raise ValueError(f"{path}: image {key!r} appears twice; keys must be unique")
        if r.get(SKIPPED):
            out[key] = math.nan
            continue
        try:
            out[key] = float(r[metric])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: row for {key!r}: {metric} value {r[metric]!r} is not a number") from None
    if not out:
        raise ValueError(f"{path}: no per-image rows")
    return out


def format_table(records: Sequence[Mapping[str, Any]], metrics: Sequence[str], digits: int = 4, group: str | None = None) -> str:
    """Plain-text table: one row per record (``image`` + metrics) and a mean row; skipped
    records are marked ``(skipped)`` and left out of the mean.

    With ``group`` (a record key, e.g. ``"folder"``), that key is the first column and each
    group of records (in first-seen order) gets its own mean row.
    """
    keys = [group, "image"] if group else ["image"]
    header = keys + [METRICS[m].label + (" ↑" if METRICS[m].higher_is_better else " ↓") for m in metrics]
    sections: OrderedDict[Any, list[Mapping[str, Any]]] = OrderedDict()
    for r in records:
        sections.setdefault(r[group] if group else None, []).append(r)
    blocks = []
    for key, recs in sections.items():
        lead = [str(key)] if group else []
        body = [
            lead + [r["image"] + (" (skipped)" if r.get(SKIPPED) else "")] + [f"{r[m]:.{digits}f}" for m in metrics] for r in recs
        ]
        scored = [r for r in recs if not r.get(SKIPPED)]
        blocks.append((body, lead + ["mean"] + [f"{mean([r[m] for r in scored]):.{digits}f}" for m in metrics]))
    rows = [header] + [row for body, total in blocks for row in body + [total]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[i]) if i < len(keys) else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(header), rule]
    for i, (body, total) in enumerate(blocks):
        out += [line(r) for r in body] + [rule, line(total)] + ([rule] if i < len(blocks) - 1 else [])
    return "\n".join(out)
