"""Scoring, benchmark tables (the paper's Table 3) and the upper bounds of §3.4 (Eq. 10).

The command-line tools (``ranksrgan-score``, ``ranksrgan-evaluate``, ``ranksrgan-upper-bound``)
are thin wrappers over this module; everything here is usable from Python.

Per-image CSV format (written by ``ranksrgan-score`` and ``ranksrgan-evaluate``, read by
``ranksrgan-upper-bound``; one definition: :func:`write_per_image_csv` /
:func:`read_per_image_csv`):

* UTF-8, comma separated, one header row.
* Key columns first: ``image`` (the file stem); ``ranksrgan-score`` adds ``path`` (the file as
  found) after it; ``ranksrgan-evaluate`` puts ``dataset`` and ``method`` before it.
* Then one column per metric, named by its id (:data:`METRICS`: ``niqe``, ``ma``, ``pi``,
  ``psnr``, ``ssim``, the colour measures ``psnr_rgb``, ``chroma``, ``deltae``, and the learned
  ``lpips``, ``dists``; ``evaluate``
  adds ``rank/<name>`` for each Ranker it is given), values as Python ``repr`` of the float
  (exact round trip; ``nan``/``inf`` where the metric gives them).
* Summary rows: for each group of rows (each dataset/method in ``evaluate``, the whole file in
  ``score``) a final row whose ``image`` is :data:`MEAN_ROW` (``<mean>``, not a valid stem on
  Windows and unusual elsewhere) holding the arithmetic mean of the group (NaN if any value is
  NaN). Readers skip these rows.
* Skipped images: ``ranksrgan-score`` and ``ranksrgan-evaluate`` do not stop at an unusable
  image (unreadable file, no or a mismatched reference / SR image, too small for a metric) but
  write its row with ``nan`` in every metric column. A file with such a row has one more, last
  column, ``skipped``: the reason on skipped rows, empty on scored rows, ``"<n> skipped"`` on a
  summary row, whose means then leave the skipped rows out. Files without skipped rows have no
  ``skipped`` column (exactly the earlier format); :func:`read_per_image_csv` reads both, and
  skipped rows as NaN.

Polarity: NIQE, PI, CIEDE2000, LPIPS, DISTS and Ranker scores lower = better; Ma, PSNR, SSIM, RGB PSNR higher
= better; chroma ratio ideal 1 (HR's colourfulness; ~0 = grey output).
"""

from __future__ import annotations

import csv
import io as _io
import math
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ranksrgan.io import ImageReadError, atomic_write_bytes, decode_image, list_images, to_tensor
from ranksrgan.metrics.fidelity import chroma_ratio, ciede2000, psnr_rgb, psnr_y, ssim_y
from ranksrgan.metrics.niqe import niqe
from ranksrgan.metrics.perceptual import dists, lpips
from ranksrgan.ops.color import quantize_uint8
from ranksrgan.ops.resize import imresize

__all__ = [
    "MEAN_ROW",
    "METRICS",
    "MetricSpec",
    "LEARNED_METRICS",
    "load_learned_metrics",
    "RANK_PREFIX",
    "SKIPPED",
    "skipped_records",
    "metric_spec",
    "score_batch",
    "ranker_score",
    "warn_nan",
    "score_images",
    "write_csv",
    "write_per_image_csv",
    "read_per_image_csv",
    "format_table",
    "UpperBound",
    "upper_bounds",
    "BenchmarkSet",
    "Evaluation",
    "evaluate",
    "format_markdown",
    "format_comparison",
    "write_evaluation",
]

#: ``image`` value of the summary rows of a per-image CSV.
MEAN_ROW = "<mean>"


# =============================================================================== metrics


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the scoring tools.

    Attributes:
        name: id used on the command line and as CSV column.
        label: display name.
        higher_is_better: polarity.
        full_reference: needs the HR image.
        needs_ma: needs the Ma (NRQM) model file.
        ideal: the best value when it lies inside the range rather than at an end (the chroma
            ratio: 1.0); tables then mark the value closest to it as best.
        digits: decimals shown in tables.
    """

    name: str
    label: str
    higher_is_better: bool
    full_reference: bool = False
    needs_ma: bool = False
    ideal: float | None = None
    digits: int = 2

    @property
    def arrow(self) -> str:
        """``↑`` / ``↓`` (polarity), or ``→1`` for a metric with an ideal value."""
        if self.ideal is not None:
            return f"→{self.ideal:g}"
        return "↑" if self.higher_is_better else "↓"

    def best(self, values: Sequence[float]) -> float | None:
        """The best of ``values`` (NaN ignored), or None when none is a number."""
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return None
        if self.ideal is not None:
            return min(finite, key=lambda v: abs(v - self.ideal))
        return max(finite) if self.higher_is_better else min(finite)


#: Metrics in display order.
METRICS: dict[str, MetricSpec] = {
    # NIQE: no-reference naturalness on Y, [0, ~100), lower is better.
    "niqe": MetricSpec("niqe", "NIQE", False),
    # Ma (NRQM): no-reference, [0, 10], higher is better.
    "ma": MetricSpec("ma", "Ma", True, needs_ma=True),
    # PI = (10 - Ma + NIQE) / 2, lower is better.
    "pi": MetricSpec("pi", "PI", False, needs_ma=True),
    # PSNR on Y in dB, [0, inf], higher is better.
    "psnr": MetricSpec("psnr", "PSNR", True, full_reference=True),
    # SSIM on Y, [-1, 1], higher is better.
    "ssim": MetricSpec("ssim", "SSIM", True, full_reference=True, digits=4),
    # PSNR over R, G and B in dB, [0, inf], higher is better: sees colour errors that Y misses.
    "psnr_rgb": MetricSpec("psnr_rgb", "PSNR-RGB", True, full_reference=True),
    # (std Cb + std Cr) of SR over HR's, [0, inf): 1 = HR's colourfulness, ~0 = grey; ideal 1.
    "chroma": MetricSpec("chroma", "Chroma", True, full_reference=True, ideal=1.0, digits=3),
    # Mean CIEDE2000 colour difference to HR, [0, ~100], lower is better (CPU, ~1 s per Mpx).
    "deltae": MetricSpec("deltae", "ΔE00", False, full_reference=True),
    # LPIPS (VGG16, piq) to HR on RGB, [0, ~1], lower is better; weights downloaded on first use.
    "lpips": MetricSpec("lpips", "LPIPS", False, full_reference=True, digits=4),
    # DISTS (piq) to HR on RGB, [0, 1], lower is better; weights downloaded on first use.
    "dists": MetricSpec("dists", "DISTS", False, full_reference=True, digits=4),
}

#: Metrics computed by a network whose weights files are loaded (or downloaded) before scoring.
LEARNED_METRICS = ("lpips", "dists")


def load_learned_metrics(metrics: Sequence[str], device: torch.device | str = "cpu") -> None:
    """Build the networks of the learned metrics among ``metrics`` once, before any image is
    scored, so that a missing weights file stops the run with its one-line
    :class:`ranksrgan.metrics.perceptual.WeightsNotFoundError` instead of failing every image."""
    wanted = [m for m in metrics if m in LEARNED_METRICS]
    if wanted:
        from ranksrgan.metrics.perceptual import learned_metric

        for m in wanted:
            learned_metric(m, device)


#: Column prefix of Ranker scores in :func:`evaluate` (``rank/<ranker name>``).
RANK_PREFIX = "rank/"


def metric_spec(column: str) -> MetricSpec:
    """The :class:`MetricSpec` of a column: a :data:`METRICS` id, or ``rank/<name>`` (a Ranker's
    mean score; a higher score means a WORSE image, so lower is better)."""
    if column in METRICS:
        return METRICS[column]
    if column.startswith(RANK_PREFIX) and len(column) > len(RANK_PREFIX):
        return MetricSpec(column, f"Rank-{column[len(RANK_PREFIX) :]}", False, digits=3)
    raise KeyError(f"unknown metric column {column!r}; choose from {', '.join(METRICS)} or {RANK_PREFIX}<ranker>")


def score_batch(
    x: torch.Tensor,
    metrics: Sequence[str],
    hr: torch.Tensor | None = None,
    crop_border: int = 0,
    color: str = "y",
    ma_model: Any = None,
) -> dict[str, torch.Tensor]:
    """All requested metrics of one batch.

    Args:
        x: ``B×3×H×W`` images in [0, 1] (one size), on the device to compute on.
        metrics: ids from :data:`METRICS`.
        hr: ``B×3×H×W`` references (needed by the full-reference metrics), same device.
        crop_border: pixels shaved per side for every metric.
        color: luminance of the no-reference metrics, ``"y"`` (MATLAB ``rgb2ycbcr``, PIRM /
            RankSRGAN) or ``"gray"`` (MATLAB ``rgb2gray``). PSNR and SSIM always use Y;
            ``psnr_rgb``, ``chroma``, ``deltae``, ``lpips`` and ``dists`` use all three channels.
        ma_model: a loaded Ma model (:func:`ranksrgan.metrics.ma.load_ma_model`), for ``ma``/``pi``.

    Returns:
        ``{metric: (B,) float64 CPU tensor}``. NaN where a metric is undefined (constant image);
        the metric's own warning (which only knows batch positions) is suppressed here, and
        callers name the files instead (:func:`warn_nan`).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*score is NaN.*", category=RuntimeWarning)
        return _score_batch(x, metrics, hr, crop_border, color, ma_model)


def warn_nan(label: str, values: Mapping[str, float]) -> None:
    """Warn (``RuntimeWarning``) for every NaN metric value of the image ``label``."""
    bad = [m for m, v in values.items() if isinstance(v, float) and math.isnan(v)]
    if bad:
        warnings.warn(
            f"{label}: {', '.join(bad)} is NaN (undefined, e.g. a constant or near-constant image)", RuntimeWarning, stacklevel=2
        )


def _score_batch(
    x: torch.Tensor, metrics: Sequence[str], hr: torch.Tensor | None, crop_border: int, color: str, ma_model: Any
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name in metrics:
        if name == "niqe":
            v = niqe(x, color=color, crop_border=crop_border)
        elif name in ("ma", "pi"):
            from ranksrgan.metrics.ma import ma as ma_fn
            from ranksrgan.metrics.ma import pi as pi_fn

            fn = ma_fn if name == "ma" else pi_fn
            v = fn(x, ma_model, color=color, crop_border=crop_border)
        elif name in _FULL_REFERENCE_FNS:
            if hr is None:
                raise ValueError(f"{name} needs reference images")
            v = _FULL_REFERENCE_FNS[name](x, hr, crop_border=crop_border)
        else:
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
        out[name] = v.detach().double().cpu().reshape(-1)
    return out


_FULL_REFERENCE_FNS = {
    "psnr": psnr_y,
    "ssim": ssim_y,
    "psnr_rgb": psnr_rgb,
    "chroma": chroma_ratio,
    "deltae": ciede2000,
    "lpips": lpips,
    "dists": dists,
}


def ranker_score(ranker: torch.nn.Module, x: torch.Tensor, crop_border: int = 0, crop: int | None = 512) -> torch.Tensor:
    """A Ranker's scores of images ``B×3×H×W`` in [0, 1] (higher = WORSE image).

    ``crop_border`` pixels are shaved per side; then, when ``crop`` is set and a side is longer
    than ``crop``, only the centre ``crop`` pixels of that side are scored (the Rankers are trained
    on 296² patches, and a whole 2K image costs ~100 GFLOP on a VGG-12). Images are scored as
    given (round them to 8 bits first for the saved-PNG convention), in float32, without
    gradients. Returns a ``(B,)`` float64 CPU tensor.
    """
    if x.dim() != 4:
        raise ValueError(f"ranker_score: expected B×3×H×W images, got shape {tuple(x.shape)}")
    if crop_border:
        x = x[..., crop_border:-crop_border, crop_border:-crop_border]
    if crop is not None:
        h, w = x.shape[-2:]
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        x = x[..., top : top + crop, left : left + crop]
    param = next(ranker.parameters())
    was_training = ranker.training
    ranker.eval()
    try:
        with torch.no_grad():
            return ranker(x.to(device=param.device, dtype=param.dtype)).detach().double().cpu().reshape(-1)
    finally:
        ranker.train(was_training)


def _image_size(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` from the file header without decoding pixels, or None if unknown."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            w, h = im.size
            return int(h), int(w)
    except Exception:  # noqa: BLE001 - unreadable headers are reported when the file is decoded
        return None


def _plan_batches(files: Sequence[Path], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of equal image size (in first-seen order); images of a size
    that occurs once, or of unknown size, form batches of one."""
    groups: OrderedDict[Any, list[int]] = OrderedDict()
    for i, f in enumerate(files):
        size = _image_size(f) if batch_size > 1 else None
        groups.setdefault(size if size is not None else ("single", i), []).append(i)
    batches = []
    for idx in groups.values():
        for start in range(0, len(idx), batch_size):
            batches.append(idx[start : start + batch_size])
    return batches


def _load(path: Path, scale: int = 1) -> torch.Tensor:
    """``3×H×W`` tensor of an image file, cut to a multiple of ``scale`` (bottom/right) when > 1."""
    x = to_tensor(decode_image(path))
    if scale > 1:
        x = x[:, : x.shape[1] - x.shape[1] % scale, : x.shape[2] - x.shape[2] % scale]
    return x


#: Record key of an item that could not be scored: the reason (absent or "" when scored).
SKIPPED = "skipped"

# What makes one item (image, pair) unusable without condemning the whole run: unreadable or
# vanished files, size mismatches, images a metric cannot score (e.g. too small for NIQE).
_ITEM_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError)


def _reason(err: BaseException, path: str | Path | None = None) -> str:
    """One-line reason of an item error, without a leading ``"<path>: "`` (the label names it)."""
    msg = (str(err).splitlines() or [type(err).__name__])[0]
    prefix = f"{path}: "
    return msg[len(prefix) :] if path is not None and msg.startswith(prefix) else msg


def skipped_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The records of items that were skipped (their ``skipped`` value is the reason)."""
    return [r for r in records if r.get(SKIPPED)]


def score_images(
    files: Sequence[Path],
    metrics: Sequence[str],
    ref_dir: Path | None = None,
    crop_border: int = 0,
    color: str = "y",
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    ma_model: Any = None,
    progress: bool = False,
    scale: int = 1,
    skip_errors: bool = False,
) -> list[dict[str, Any]]:
    """Score image files; returns one record per file, in input order.

    Each record is ``{"image": stem, "path": str(file), <metric>: float, ...}``. Images of the
    same size are scored together in batches of up to ``batch_size`` (results equal one-at-a-time
    scoring); the rest one at a time. Full-reference metrics match each file to the file with the
    same stem in ``ref_dir``.

    Args:
        scale: when > 1, every image and reference is cut to a multiple of ``scale`` (bottom and
            right, the mod-crop of :func:`evaluate`) before scoring, so an HR folder that was not
            mod-cropped matches SR outputs made from its bicubic LR.
        skip_errors: an unusable file (unreadable, no or a mismatched reference, a metric fails
            on it, e.g. too small for NIQE) does not stop the run: it is warned about
            (``RuntimeWarning``, one line naming the file) and its record holds NaN metrics and
            ``"skipped": reason``. Default: raise.

    Raises:
        FileNotFoundError: no reference with the stem of a file (with ``skip_errors``: of any file).
        ImageReadError: unreadable file, or image and reference sizes differ (names both).
        ValueError: a metric fails on an image (message names the file).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if scale < 1:
        raise ValueError(f"--scale must be >= 1, got {scale}")
    full_ref = any(METRICS[m].full_reference for m in metrics)
    refs: dict[str, Path] = {}
    records: list[dict[str, Any] | None] = [None] * len(files)

    def skip(i: int, reason: str) -> None:
        warnings.warn(f"{files[i]}: skipped: {reason}", RuntimeWarning, stacklevel=3)
        rec: dict[str, Any] = {"image": files[i].stem, "path": str(files[i])}
        rec.update({m: math.nan for m in metrics})
        rec[SKIPPED] = reason
        records[i] = rec

    todo = list(range(len(files)))
    if full_ref:
        if ref_dir is None:
            need = ", ".join(m for m in metrics if METRICS[m].full_reference)
            raise ValueError(f"metric {need} requires reference images: pass --ref HR_FOLDER")
        refs = {p.stem: p for p in list_images(ref_dir)}
        missing = [i for i in todo if files[i].stem not in refs]
        if missing and (not skip_errors or len(missing) == len(files)):
            f = files[missing[0]]
            raise FileNotFoundError(f"{f}: no reference image with stem {f.stem!r} in {ref_dir}")
        for i in missing:
            skip(i, f"no reference image with stem {files[i].stem!r} in {ref_dir}")
        missing_set = set(missing)
        todo = [i for i in todo if i not in missing_set]
    device = torch.device(device)
    load_learned_metrics(metrics, device)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(files), desc="scoring", unit="img", disable=None)
        bar.update(len(files) - len(todo))

    def run(batch: list[int]) -> dict[str, list[float]]:
        return _score_files([files[i] for i in batch], metrics, refs, crop_border, color, device, ma_model, scale)

    try:
        for batch in _plan_batches([files[i] for i in todo], batch_size):
            batch = [todo[k] for k in batch]
            done: dict[int, dict[str, float]] = {}
            try:
                values = run(batch)
                done = {i: {m: float(values[m][k]) for m in metrics} for k, i in enumerate(batch)}
            except (*_ITEM_ERRORS, RuntimeError) as err:
                if len(batch) == 1 and (not skip_errors or not isinstance(err, _ITEM_ERRORS)):
                    raise
                # locate the offending file(s): score the batch one image at a time
                for i in batch:
                    try:
                        one = run([i])
                    except _ITEM_ERRORS as item_err:
                        if not skip_errors:
                            raise
                        skip(i, _reason(item_err, files[i]))
                        continue
                    done[i] = {m: float(one[m][0]) for m in metrics}
            for i, vals in done.items():
                rec: dict[str, Any] = {"image": files[i].stem, "path": str(files[i])}
                rec.update(vals)
                warn_nan(str(files[i]), vals)
                records[i] = rec
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return [r for r in records if r is not None]


def _score_files(
    batch: Sequence[Path],
    metrics: Sequence[str],
    refs: Mapping[str, Path],
    crop_border: int,
    color: str,
    device: torch.device,
    ma_model: Any,
    scale: int = 1,
) -> dict[str, list[float]]:
    imgs = [_load(f, scale) for f in batch]
    if len({tuple(t.shape) for t in imgs}) != 1:  # header size was wrong: fall back per image
        out: dict[str, list[float]] = {m: [] for m in metrics}
        for f in batch:
            one = _score_files([f], metrics, refs, crop_border, color, device, ma_model, scale)
            for m in metrics:
                out[m].extend(one[m])
        return out
    x = torch.stack(imgs).to(device)
    hr = None
    if refs:
        hrs = []
        for f, t in zip(batch, imgs):
            ref = _load(refs[f.stem], scale)
            if ref.shape != t.shape:
                cut = f" (both cut to a multiple of scale {scale})" if scale > 1 else ""
                raise ImageReadError(
                    f"{f}: image is {t.shape[1]}x{t.shape[2]} but its reference {refs[f.stem]} is "
                    f"{ref.shape[1]}x{ref.shape[2]}{cut}"
                )
            hrs.append(ref)
        hr = torch.stack(hrs).to(device)
    try:
        res = score_batch(x, metrics, hr, crop_border, color, ma_model)
    except ValueError as err:
        if len(batch) == 1:
            raise ValueError(f"{batch[0]}: {err}") from err
        raise
    return {m: res[m].tolist() for m in metrics}


# =============================================================================== CSV / tables


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


def _mean(values: Sequence[float]) -> float:
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
        row += [_mean([g[m] for g in scored]) for m in metrics]
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
        else ``"image"``. Rows of skipped images (files with a ``skipped`` column) read as NaN.

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
                c for c in cols if c not in ("image", "path", "dataset", "method", SKIPPED)
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
        key = f"{r['dataset']}/{r['image']}" if "dataset" in cols else r["image"]
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


def format_table(records: Sequence[Mapping[str, Any]], metrics: Sequence[str], digits: int = 4) -> str:
    """Plain-text table: one row per record (``image`` + metrics) and a final mean row; skipped
    records are marked ``(skipped)`` and left out of the mean."""
    header = ["image"] + [METRICS[m].label + (" ↑" if METRICS[m].higher_is_better else " ↓") for m in metrics]
    body = [[r["image"] + (" (skipped)" if r.get(SKIPPED) else "")] + [f"{r[m]:.{digits}f}" for m in metrics] for r in records]
    scored = [r for r in records if not r.get(SKIPPED)]
    body.append(["mean"] + [f"{_mean([r[m] for r in scored]):.{digits}f}" for m in metrics])
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in body[:-1]] + [rule, line(body[-1])])


# =============================================================================== Eq. 10


@dataclass(frozen=True)
class UpperBound:
    """Upper bounds of §3.4 (Eq. 10) for two SR methods on the same LR images.

    Attributes:
        names: ``(method 1, method 2)`` as given.
        n: number of images matched.
        mean1, mean2: mean metric of each method.
        mc_method: the method model classification labels as better (lower mean; method 2 on a
            tie, matching the paper's order SR1 = SRGAN, SR2 = ESRGAN).
        ub_mc: upper bound of model classification = mean of ``mc_method`` over all images.
        ub_mr: upper bound of metric rank = mean over images of the per-image lower score.
        frac1_better: fraction of images where method 1 scores strictly lower than method 2.
        frac_tie: fraction of images with equal scores.
    """

    names: tuple[str, str]
    n: int
    mean1: float
    mean2: float
    mc_method: str
    ub_mc: float
    ub_mr: float
    frac1_better: float
    frac_tie: float


def upper_bounds(
    scores1: Mapping[str, float], scores2: Mapping[str, float], names: tuple[str, str] = ("method1", "method2")
) -> UpperBound:
    """Eq. 10 of the paper for a lower-is-better metric (NIQE, PI), per image.

    For each image ``i`` with scores ``a_i`` (method 1, "SR1") and ``b_i`` (method 2, "SR2"),
    the paper splits the pair into its Lower (-L) and Higher (-H) score.

    * ``UB_MC = Mean(PM_SR2-L + PM_SR2-H)``: model classification labels every output of one
      method as better, so at best a Ranker trained on such labels reproduces that method: the
      union of its lower and higher scores is all its scores, and ``UB_MC`` is that method's
      mean. The method it labels better is the one with the lower mean (the paper uses
      SR2 = ESRGAN, 2.55 vs 2.70 NIQE for SRGAN on PIRM-Test); on a tie of means, method 2.
    * ``UB_MR = Mean(PM_SR2-L + PM_SR1-L)`` where ``PM_SR1-L < PM_SR2-H``: metric rank keeps,
      per image, the output with the lower score, i.e. ``UB_MR = mean_i min(a_i, b_i)``. The
      "where" clause makes SR1 the lower one only when it is strictly lower; a tie counts as
      SR2-L, which does not change the value (``min`` is the same).

    Hence ``UB_MR <= UB_MC <= max(mean1, mean2)``. ``frac1_better`` counts strict wins of
    method 1; ties are reported separately.

    Args:
        scores1, scores2: ``{image: score}`` (lower = better); must hold the same images.
        names: display names of the two methods.

    Raises:
        ValueError: the image sets differ (some names are listed), no images, or NaN/inf scores.
    """
    only1 = sorted(set(scores1) - set(scores2))
    only2 = sorted(set(scores2) - set(scores1))
    if only1 or only2:
        parts = []
        for who, miss in ((names[0], only1), (names[1], only2)):
            if miss:
                shown = ", ".join(miss[:5]) + (f", ... (+{len(miss) - 5} more)" if len(miss) > 5 else "")
                parts.append(f"{len(miss)} image(s) only in {who}: {shown}")
        raise ValueError("the two score sets do not cover the same images: " + "; ".join(parts))
    keys = sorted(scores1)
    if not keys:
        raise ValueError("no images to compare")
    a = np.array([scores1[k] for k in keys], dtype=np.float64)
    b = np.array([scores2[k] for k in keys], dtype=np.float64)
    bad = [k for k, x, y in zip(keys, a, b) if not (math.isfinite(x) and math.isfinite(y))]
    if bad:
        raise ValueError(f"non-finite score for image {bad[0]!r} ({len(bad)} image(s) in all)")
    mean1, mean2 = float(a.mean()), float(b.mean())
    mc = names[0] if mean1 < mean2 else names[1]
    return UpperBound(
        names=(names[0], names[1]),
        n=len(keys),
        mean1=mean1,
        mean2=mean2,
        mc_method=mc,
        ub_mc=min(mean1, mean2),
        ub_mr=float(np.minimum(a, b).mean()),
        frac1_better=float((a < b).mean()),
        frac_tie=float((a == b).mean()),
    )


# =============================================================================== Table 3


@dataclass(frozen=True)
class BenchmarkSet:
    """One benchmark set: ``name``, HR folder, optional LR folder (else MATLAB bicubic LR)."""

    name: str
    hr_dir: Path
    lr_dir: Path | None = None


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    Attributes:
        scale: SR factor.
        metrics: metric ids computed, in column order (``rank/<name>`` columns last).
        methods: method names, in column order (``"Bicubic"`` first; ``"HR"`` last when asked for).
        datasets: test-set names, in order.
        records: per-image records ``{"dataset", "method", "image", <metric>: float}``.
        notes: remarks printed with the table (e.g. why PI is missing).
        reference: the method that is the HR reference itself (``"HR"`` with ``include_hr``), or
            None; tables show it but never mark it best.
    """

    scale: int
    metrics: list[str]
    methods: list[str]
    datasets: list[str]
    records: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reference: str | None = None

    def mean(self, dataset: str, method: str, metric: str) -> float:
        """Mean of ``metric`` over the images of ``dataset`` for ``method`` (skipped images left out)."""
        return _mean(
            [r[metric] for r in self.records if r["dataset"] == dataset and r["method"] == method and not r.get(SKIPPED)]
        )

    def skipped(self) -> list[str]:
        """Labels of what was skipped, in record order: ``"<set>/<image>"`` when every method of
        that image was skipped (a bad HR/LR file, an image too small for a metric), else
        ``"<set>/<image> (<method>, ...)"``."""
        by_image: OrderedDict[tuple[str, str], list[str]] = OrderedDict()
        for r in skipped_records(self.records):
            by_image.setdefault((r["dataset"], r["image"]), []).append(r["method"])
        labels = []
        for (d, image), methods in by_image.items():
            whole = len(methods) == len(self.methods)
            labels.append(f"{d}/{image}" if whole else f"{d}/{image} ({', '.join(methods)})")
        return labels


def _sr_folder(root: Path, dataset: str) -> Path:
    """``root/dataset`` when that folder exists (one subfolder per test set), else ``root``."""
    sub = root / dataset
    return sub if sub.is_dir() else root


def _load_pair(
    hr_path: Path, lr_by_stem: Mapping[str, Path] | None, lr_dir: Path | None, scale: int
) -> tuple[np.ndarray, np.ndarray]:
    """One HR image mod-cropped to ``scale`` and its LR (given, matched by stem, or MATLAB bicubic):
    :func:`ranksrgan.data.pairs.load_pairs` for a single file, so one bad file is one error."""
    from ranksrgan.data.pairs import make_lr

    hr = decode_image(hr_path)
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    if h == 0 or w == 0:
        raise ImageReadError(f"{hr_path}: image is {hr.shape[0]}x{hr.shape[1]}, smaller than the scale x{scale}")
    hr = np.ascontiguousarray(hr[:h, :w])
    if lr_by_stem is None:
        return hr, make_lr(hr, scale)
    lr_path = lr_by_stem.get(hr_path.stem)
    if lr_path is None:
        raise FileNotFoundError(f"{hr_path}: no LR image with stem {hr_path.stem!r} in {lr_dir}")
    lr = decode_image(lr_path)
    want = (h // scale, w // scale)
    if lr.shape[:2] != want:
        raise ImageReadError(
            f"{lr_path}: LR is {lr.shape[0]}x{lr.shape[1]} but HR {hr_path.name} at x{scale} needs {want[0]}x{want[1]}"
        )
    if lr.dtype != hr.dtype:
        levels = 65535.0 if hr.dtype == np.uint16 else 255.0
        lr = np.floor(to_tensor(lr).permute(1, 2, 0).numpy() * levels + 0.5).astype(hr.dtype)
    return hr, lr


def _load_sr(path: Path | None, folder: Path, method: str, dataset: str, stem: str, hr: torch.Tensor, scale: int) -> torch.Tensor:
    """A precomputed SR image ``1×3×H×W``, checked against the mod-cropped HR ``hr``."""
    if path is None:
        raise FileNotFoundError(f"{folder}: no SR image with stem {stem!r} (method {method}, set {dataset})")
    sr = to_tensor(decode_image(path)).unsqueeze(0)
    if sr.shape != hr.shape:
        raise ImageReadError(
            f"{path}: SR image is {sr.shape[-2]}x{sr.shape[-1]} but the x{scale} mod-cropped HR "
            f"{stem} is {hr.shape[-2]}x{hr.shape[-1]}"
        )
    return sr


def _warn_skips(label: str, skips: Sequence[tuple[str, str]], n_methods: int) -> None:
    """One warning per skipped image: one line when every method was skipped for the same
    reason, else one line per method."""
    if not skips:
        return
    reasons = {reason for _, reason in skips}
    if len(skips) == n_methods and len(reasons) == 1:
        warnings.warn(f"{label}: skipped: {skips[0][1]}", RuntimeWarning, stacklevel=3)
        return
    for method, reason in skips:
        warnings.warn(f"{label} ({method}): skipped: {reason}", RuntimeWarning, stacklevel=3)


def evaluate(
    test_sets: Sequence[BenchmarkSet],
    checkpoints: Sequence[tuple[str, Path]] = (),
    sr_dirs: Sequence[tuple[str, Path]] = (),
    scale: int = 4,
    device: torch.device | str = "cpu",
    tile: int | None = 512,
    overlap: int = 16,
    ma_model: Any = None,
    with_pi: bool | None = None,
    progress: bool = False,
    metrics: Sequence[str] | None = None,
    rankers: Sequence[tuple[str, Path]] = (),
    ranker_crop: int | None = 512,
    include_hr: bool = False,
    max_images: int | None = None,
    skip_errors: bool = False,
) -> Evaluation:
    """The paper's Table 3: NIQE, PI, PSNR and SSIM of several SR methods on benchmark sets
    (optionally colour measures and Ranker scores too: the comparison of Fig. 22).

    Protocol (the RankSRGAN / PIRM2018 evaluation):

    * HR images are mod-cropped to a multiple of ``scale`` (bottom/right); LR = MATLAB bicubic
      ``imresize(HR, 1/scale)`` rounded to the HR bit depth (or read from ``lr_dir``, matched by
      stem, size HR/scale) — :func:`ranksrgan.data.pairs.load_pairs`.
    * Methods: ``Bicubic`` (MATLAB bicubic ``imresize(LR, scale)``), each generator checkpoint
      (run in memory on ``device``, tiled with ``tile``/``overlap`` when the LR is larger than
      ``tile``), each folder of precomputed SR images (matched by stem; ``folder/<set name>/``
      when that subfolder exists, else the folder itself). Every SR image is rounded to 8 bits,
      as a saved PNG would be, before it is scored.
    * Metrics, all on the MATLAB ``rgb2ycbcr`` Y channel with ``scale`` pixels shaved per side:
      NIQE, PI (only when a Ma model is available), PSNR, SSIM. On request (``metrics``) also the
      colour measures on RGB with the same crop: ``psnr_rgb``, ``chroma``, ``deltae``, and the
      learned ``lpips``, ``dists`` (:mod:`ranksrgan.metrics.perceptual`; their weights files are
      loaded before the first image, so a missing one stops the run with one line).
    * Rankers (``rankers``): each scores every 8-bit output with ``scale`` px shaved per side,
      on the whole image, or on its centre ``ranker_crop``² when a side is longer
      (:func:`ranker_score`); column ``rank/<name>``; a higher score means a WORSE image.

    Args:
        test_sets: the benchmark sets.
        checkpoints: ``(method name, checkpoint path)`` pairs (:func:`ranksrgan.checkpoints.load_generator`).
        sr_dirs: ``(method name, folder)`` pairs of precomputed SR results.
        scale: SR factor; every checkpoint must have it.
        device: where generators and metrics run.
        tile, overlap: tiled inference settings (:func:`ranksrgan.tiling.upscale`); ``None`` = whole images.
        ma_model: Ma model or path for PI; None searches the default places.
        with_pi: True: PI required (a missing Ma model raises); False: no PI; None: PI when a
            Ma model is found, otherwise omitted with a note in ``notes``.
        progress: tqdm progress bar.
        metrics: metric ids (:data:`METRICS`) in column order; None = ``niqe, pi, psnr, ssim``
            (the Table 3 columns). ``ma``/``pi`` listed here follow ``with_pi`` as PI does.
        rankers: ``(name, checkpoint)`` pairs (:func:`ranksrgan.checkpoints.load_ranker`);
            adds a ``rank/<name>`` column per Ranker after the metrics.
        ranker_crop: largest side the Rankers see (centre crop); None = always the whole image.
        include_hr: add a method ``"HR"`` (the reference itself, last): the row every other
            method is compared to (PSNR inf, chroma 1, NIQE and Ranker scores of real images).
        max_images: only the first N images of each set (file-name order, as the data module's
            ``val_max_images``); None = all.
        skip_errors: an unusable item does not stop the run. A bad HR or LR file (unreadable,
            LR of the wrong size, missing LR) skips that image for every method; a bad SR image
            (missing, unreadable, not the mod-cropped HR's size) skips that image for that
            method; an image a metric cannot score (e.g. too small for NIQE) is skipped for the
            methods it fails on. Each is warned about once (``RuntimeWarning``), recorded with
            NaN metrics and ``"skipped": reason``, left out of the means and listed in ``notes``
            (:meth:`Evaluation.skipped`). Default: raise.

    Raises:
        FileNotFoundError: missing folders, checkpoints, SR images or a required Ma model
            (with ``skip_errors``: an SR folder that matches no HR image of a set).
        ValueError / ImageReadError: scale mismatch, SR image of the wrong size (names the file),
            duplicate method names; with ``skip_errors`` only the errors of the whole run.
    """
    from ranksrgan.checkpoints import load_generator, load_ranker
    from ranksrgan.tiling import infer_scale, upscale

    device = torch.device(device)
    names = ["Bicubic"] + [n for n, _ in checkpoints] + [n for n, _ in sr_dirs] + (["HR"] if include_hr else [])
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        reserved = "Bicubic and HR are" if include_hr else "Bicubic is"
        raise ValueError(f"method name {dup[0]!r} is used twice ({reserved} reserved); name methods with NAME=PATH")
    ranker_names = [n for n, _ in rankers]
    dup = sorted({n for n in ranker_names if ranker_names.count(n) > 1})
    if dup:
        raise ValueError(f"Ranker name {dup[0]!r} is used twice")
    if any(not n for n in ranker_names):
        raise ValueError("every Ranker needs a non-empty name")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1 or None, got {max_images}")
    if ranker_crop is not None and ranker_crop < 32:
        raise ValueError(f"ranker_crop must be >= 32 (the Ranker's smallest input) or None, got {ranker_crop}")
    set_names = [t.name for t in test_sets]
    dup = sorted({n for n in set_names if set_names.count(n) > 1})
    if dup:
        raise ValueError(f"test set name {dup[0]!r} is used twice; name sets with NAME=DIR")
    if not test_sets:
        raise ValueError("no test set given (--hr)")
    for t in test_sets:
        for d in (t.hr_dir, t.lr_dir):
            if d is not None and not d.is_dir():
                raise FileNotFoundError(f"{d}: no such folder")
    for _, p in list(checkpoints) + list(rankers):
        if not Path(p).is_file():
            raise FileNotFoundError(f"checkpoint file not found: {p}")
    for _, d in sr_dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(f"{d}: no such SR folder")

    metrics = ["niqe", "pi", "psnr", "ssim"] if metrics is None else list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; choose from {', '.join(METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"a metric is listed twice: {', '.join(metrics)}")
    notes: list[str] = []
    model_ma = None
    ma_ids = [m for m in metrics if METRICS[m].needs_ma]
    if ma_ids and with_pi is not False:
        from ranksrgan.metrics.ma import load_ma_model

        try:
            model_ma = load_ma_model(ma_model)
        except FileNotFoundError:
            if with_pi:
                raise
            label = "/".join(METRICS[m].label for m in ma_ids)
            notes.append(
                f"{label} omitted: the Ma (NRQM) model file was not found (see ranksrgan.metrics.ma.load_ma_model; pass --ma-model)"
            )
    if model_ma is None:
        metrics = [m for m in metrics if not METRICS[m].needs_ma]
    load_learned_metrics(metrics, device)
    columns = metrics + [RANK_PREFIX + n for n in ranker_names]
    loaded_rankers = [(RANK_PREFIX + n, load_ranker(p, device=device)) for n, p in rankers]
    if loaded_rankers:
        where = (
            "the whole image"
            if ranker_crop is None
            else f"the whole image, or its centre {ranker_crop}x{ranker_crop} when larger"
        )
        notes.append(
            f"Rank-<name>: mean score of that Ranker on each 8-bit output ({where}, {scale} px shaved per side); "
            "a higher score means a worse image"
        )

    generators = []
    for name, path in checkpoints:
        model = load_generator(path, device=device)
        s = infer_scale(model)
        if s != scale:
            raise ValueError(f"{path}: generator upscales x{s}, but --scale is {scale}")
        generators.append((name, model))

    result = Evaluation(scale, columns, names, set_names, notes=notes, reference="HR" if include_hr else None)
    for t in test_sets:
        hr_files = list_images(t.hr_dir)
        if not hr_files:
            raise FileNotFoundError(f"{t.hr_dir}: no images ({', '.join(('png', 'jpg', 'bmp', 'tif'))})")
        if max_images is not None:
            hr_files = hr_files[:max_images]
        lr_by_stem = {p.stem: p for p in list_images(t.lr_dir)} if t.lr_dir is not None else None
        sr_maps = []
        for name, d in sr_dirs:
            folder = _sr_folder(Path(d), t.name)
            by_stem = {p.stem: p for p in list_images(folder)}
            if skip_errors and not any(p.stem in by_stem for p in hr_files):
                raise FileNotFoundError(f"{folder}: no SR image matches an HR image of set {t.name} by file stem (method {name})")
            sr_maps.append((name, folder, by_stem))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(hr_files) * len(names), desc=t.name, unit="img", disable=None)
        try:
            for hr_path in hr_files:
                stem = hr_path.stem
                label = f"{t.name}/{stem}"
                image_skips: list[tuple[str, str]] = []  # (method, reason)

                def skip(method: str, reason: str, dataset: str = t.name, stem: str = stem, skips: list = image_skips) -> None:
                    rec: dict[str, Any] = {"dataset": dataset, "method": method, "image": stem}
                    rec.update({m: math.nan for m in columns})
                    rec[SKIPPED] = reason
                    result.records.append(rec)
                    skips.append((method, reason))

                try:
                    hr_arr, lr_arr = _load_pair(hr_path, lr_by_stem, t.lr_dir, scale)
                except _ITEM_ERRORS as err:
                    if not skip_errors:
                        raise
                    for name in names:
                        skip(name, _reason(err))
                    _warn_skips(label, image_skips, len(names))
                    if bar is not None:
                        bar.update(len(names))
                    continue
                hr = to_tensor(hr_arr).unsqueeze(0)
                lr = to_tensor(lr_arr).unsqueeze(0)
                del hr_arr, lr_arr
                outputs: list[tuple[str, torch.Tensor | str]] = [  # a str: why that method is skipped
                    ("Bicubic", quantize_uint8(imresize(lr.double(), float(scale)).clamp(0, 1)).float())
                ]
                for name, model in generators:
                    sr = upscale(model, lr, tile=tile, overlap=overlap, scale=scale)
                    outputs.append((name, quantize_uint8(sr)))
                for name, folder, by_stem in sr_maps:
                    try:
                        outputs.append((name, quantize_uint8(_load_sr(by_stem.get(stem), folder, name, t.name, stem, hr, scale))))
                    except _ITEM_ERRORS as err:
                        if not skip_errors:
                            raise
                        outputs.append((name, _reason(err)))
                if include_hr:
                    outputs.append(("HR", quantize_uint8(hr)))
                hr_dev = hr.to(device)
                for name, sr in outputs:
                    if bar is not None:
                        bar.update(1)
                    if isinstance(sr, str):
                        skip(name, sr)
                        continue
                    sr_dev = sr.to(device)
                    try:
                        vals = score_batch(sr_dev, metrics, hr_dev, crop_border=scale, color="y", ma_model=model_ma)
                        for column, ranker in loaded_rankers:
                            vals[column] = ranker_score(ranker, sr_dev, crop_border=scale, crop=ranker_crop)
                    except ValueError as err:
                        if not skip_errors:
                            raise ValueError(f"{label} ({name}): {err}") from err
                        skip(name, _reason(err))
                        continue
                    rec: dict[str, Any] = {"dataset": t.name, "method": name, "image": stem}
                    rec.update({m: float(vals[m][0]) for m in columns})
                    warn_nan(f"{label} ({name})", {m: rec[m] for m in columns})
                    result.records.append(rec)
                _warn_skips(label, image_skips, len(names))
        finally:
            if bar is not None:
                bar.close()
    skipped = result.skipped()
    if skipped:
        shown = "; ".join(skipped[:10]) + (f"; ... (+{len(skipped) - 10} more)" if len(skipped) > 10 else "")
        notes.append(f"skipped as unusable, left out of the means (reasons in per_image.csv): {shown}")
    # group records by dataset, then method (input order), then image
    order = {(d, m): i for i, (d, m) in enumerate((d, m) for d in set_names for m in names)}
    result.records.sort(key=lambda r: order[(r["dataset"], r["method"])])
    return result


def format_markdown(ev: Evaluation) -> str:
    """Markdown table in the layout of the paper's Table 3 (dataset × metric rows, one column per
    method, best value per row in bold), followed by the protocol and any notes."""
    lines = ["| Dataset | Metric | " + " | ".join(ev.methods) + " |", "|---|---|" + "---|" * len(ev.methods)]
    for d in ev.datasets:
        for j, m in enumerate(ev.metrics):
            spec = metric_spec(m)
            vals = [ev.mean(d, meth, m) for meth in ev.methods]
            best = _best(spec, vals, ev.methods, ev.reference)
            cells = []
            for v, meth in zip(vals, ev.methods):
                text = f"{v:.{spec.digits}f}"
                cells.append(f"**{text}**" if best is not None and v == best and meth != ev.reference else text)
            label = f"{spec.label} {spec.arrow}"
            lines.append(f"| {d if j == 0 else ''} | {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(_protocol(ev))
    for note in ev.notes:
        lines.append("")
        lines.append(f"Note: {note}.")
    return "\n".join(lines) + "\n"


def _best(spec: MetricSpec, values: Sequence[float], methods: Sequence[str], reference: str | None) -> float | None:
    """Best value among the methods other than the ``reference`` (finite values only); None when
    fewer than two methods compete."""
    if sum(meth != reference for meth in methods) < 2:
        return None
    finite = [v for v, meth in zip(values, methods) if meth != reference and math.isfinite(v)]
    return spec.best(finite)


def _protocol(ev: Evaluation) -> str:
    specs = [metric_spec(m) for m in ev.metrics]
    y_ids = [s.label for s in specs if s.name in ("niqe", "ma", "pi", "psnr", "ssim")]
    rgb_ids = [s.label for s in specs if s.name in ("psnr_rgb", "chroma", "deltae", *LEARNED_METRICS)]
    where = f"{'/'.join(y_ids)} on the MATLAB Y channel" if y_ids else ""
    if rgb_ids:
        where += ("; " if where else "") + f"{'/'.join(rgb_ids)} on RGB"
    lower = [s.label for s in specs if s.ideal is None and not s.higher_is_better]
    higher = [s.label for s in specs if s.ideal is None and s.higher_is_better]
    ideal = [f"{s.label} best at {s.ideal:g}" for s in specs if s.ideal is not None]
    polarity = [f"{'/'.join(lower)} lower is better"] if lower else []
    polarity += [f"{'/'.join(higher)} higher is better"] if higher else []
    polarity += ideal
    return (
        f"x{ev.scale}; LR = MATLAB bicubic of the mod-cropped HR; all metrics on the 8-bit outputs with "
        f"{ev.scale} px shaved per side{'; ' + where if where else ''}; {'; '.join(polarity)}; best in bold."
    )


def format_comparison(ev: Evaluation, dataset: str | None = None) -> str:
    """Methods as rows, metrics as columns (the layout of the comparison under Fig. 22): one
    plain-text table per dataset (or only ``dataset``), each column headed by its label and
    polarity (``↑`` higher is better, ``↓`` lower is better, ``→1`` best at 1), the best value of
    each column marked with ``*`` (the ``HR`` reference row, when present, is not a candidate),
    followed by the protocol and the notes.
    """
    datasets = ev.datasets if dataset is None else [dataset]
    unknown = [d for d in datasets if d not in ev.datasets]
    if unknown:
        raise ValueError(f"unknown dataset {unknown[0]!r}; the evaluation has {', '.join(ev.datasets)}")
    specs = [metric_spec(m) for m in ev.metrics]
    blocks = []
    for d in datasets:
        header = ["method"] + [f"{s.label} {s.arrow}" for s in specs]
        means = {meth: [ev.mean(d, meth, m) for m in ev.metrics] for meth in ev.methods}
        best = [_best(s, [means[meth][i] for meth in ev.methods], ev.methods, ev.reference) for i, s in enumerate(specs)]
        body = []
        for meth in ev.methods:
            row = [meth]
            for i, s in enumerate(specs):
                v = means[meth][i]
                mark = "*" if best[i] is not None and v == best[i] and meth != ev.reference else " "
                row.append(f"{v:.{s.digits}f}{mark}")
            body.append(row)
        widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

        def line(row: Sequence[str], widths: list[int] = widths) -> str:
            return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        title = f"{d} (mean over {len({r['image'] for r in ev.records if r['dataset'] == d})} images)"
        blocks.append("\n".join([title, line(header), rule] + [line(r) for r in body]))
    text = "\n\n".join(blocks) + "\n\n" + _protocol(ev).replace("best in bold", "best marked *")
    for note in ev.notes:
        text += f"\nNote: {note}."
    return text + "\n"


def write_evaluation(ev: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``table3.md``, ``summary.csv`` (``dataset,metric,<method>...`` with the means) and
    ``per_image.csv`` (per-image format, key columns ``dataset,method,image``) atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "table3.md", "summary": out_dir / "summary.csv", "per_image": out_dir / "per_image.csv"}
    atomic_write_bytes(paths["markdown"], format_markdown(ev).encode("utf-8"))
    write_csv(
        paths["summary"],
        ["dataset", "metric"] + ev.methods,
        [[d, m] + [ev.mean(d, meth, m) for meth in ev.methods] for d in ev.datasets for m in ev.metrics],
    )
    write_per_image_csv(
        paths["per_image"], ev.records, ["dataset", "method", "image"], ev.metrics, group_by=["dataset", "method"]
    )
    return paths
