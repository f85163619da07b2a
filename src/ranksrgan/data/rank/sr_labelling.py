"""Labelling of the SR rank dataset: the same HR images super-resolved by several methods, scored
per patch location and ranked.

Level sources (``sr``: ``{method: source}``, listed BEST FIRST, e.g. ``{esrgan: dir, srgan: dir,
srresnet: dir}``): a folder of SR images with the HR file stems, or ``"hr"`` (the HR image
itself, as in RankSRGAN-HR), or ``"bicubic"`` (MATLAB bicubic up-scaling of the MATLAB bicubic
LR; no files needed: this is what the demo uses). A source folder named ``hr`` or ``bicubic`` is
written ``./hr``. Every SR image must have the size of its HR image, or of the HR mod-cropped
to the ``scale`` (then all levels are cut to that size); any other file set or size stops the
build with an error naming the files.

Pipeline:

1. :func:`build_sr_labels` cuts aligned ``patch_size`` windows on a ``stride`` grid and writes one
   row per (image, location, method) with sharpness, RMSE to HR and the requested metrics (NIQE
   on Y, ``crop_border`` shaved, 96×96 blocks, as the original labelling) to a label file
   (:mod:`ranksrgan.data.rank.labels`: atomic, resumable). Patches are scored in batches on the
   GPU when there is one.
2. :func:`select_locations` turns rows into labelled locations (at load time, so thresholds can
   change without relabelling): metric rank (``label_mode="rank"``, MR: level = rank of the metric
   value at that location, 0 = best) or model classification (``label_mode="method"``, MC:
   level = position in the method list). A location is kept when the sharpness of its BEST
   level's patch is at least ``min_sharpness``, every two of its metric values differ by at least
   ``min_gap`` (default 0: the paper names no gap filter; the authors' pipeline is described as
   keeping ``|NIQE(SRGAN) - NIQE(ESRGAN)| > 0.1``, a filter on the two best methods only) and no
   value is NaN; at most ``max_patches_per_image`` per image (a seeded random subset).
3. :class:`ranksrgan.data.rank.sr.SRRankDataModule` serves the locations for training.

This module needs no Lightning: ``ranksrgan-build-rankset`` runs steps 1 and 2 with it alone.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ranksrgan.data.rank import bicubic_upscale, grid_positions
from ranksrgan.data.rank.labels import LABEL_FORMAT, LabelTable, PartWriter, read_labels
from ranksrgan.data.rank.patch_scores import LABEL_METRICS, combine_metrics, label_metrics, parse_metric_spec
from ranksrgan.device import resolve_device
from ranksrgan.io import ImageReadError, decode_image, images_by_stem, list_images, mod_sizes, read_matched, to_tensor
from ranksrgan.metrics.registry import PIRM

log = logging.getLogger(__name__)

__all__ = [
    "SPECIAL_SOURCES",
    "LABEL_MODES",
    "LABEL_SETTINGS",
    "check_sources",
    "load_levels",
    "build_sr_labels",
    "Location",
    "select_locations",
    "check_label_settings",
]

SPECIAL_SOURCES = ("hr", "bicubic")
LABEL_MODES = ("rank", "method")


# ----------------------------------------------------------------------------- sources


def check_sources(hr: str | os.PathLike, sr: Mapping[str, str]) -> tuple[list[Path], dict[str, dict[str, Path]]]:
    """Check that every SR folder holds exactly the HR file stems.

    Returns the HR files and, per folder source, ``{stem: path}``. Raises ValueError naming the
    missing / extra files, FileNotFoundError for a missing folder, ValueError for < 2 methods.
    """
    if not isinstance(sr, Mapping) or len(sr) < 2:
        raise ValueError(f"sr: need at least two methods {{name: folder | 'hr' | 'bicubic'}}, got {sr!r}")
    hr_files = list_images(hr)
    if not hr_files:
        raise FileNotFoundError(f"{hr}: no HR images")
    stems = [p.stem for p in hr_files]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise ValueError(f"{hr}: several files share a stem: {', '.join(dup[:5])}")
    by_source: dict[str, dict[str, Path]] = {}
    for name, source in sr.items():
        if str(source) in SPECIAL_SOURCES:
            continue
        files = images_by_stem(source)
        missing = sorted(set(stems) - set(files))
        extra = sorted(set(files) - set(stems))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})")
            if extra:
                parts.append(
                    f"extra {len(extra)} ({', '.join(files[s].name for s in extra[:5])}{', ...' if len(extra) > 5 else ''})"
                )
            raise ValueError(f"sr method {name!r} folder {source}: file set differs from HR folder {hr}: {'; '.join(parts)}")
        by_source[name] = files
    return hr_files, by_source


def load_levels(
    hr_path: Path,
    sr: Mapping[str, str],
    files: Mapping[str, Mapping[str, Path]],
    scale: int,
    hr: np.ndarray | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Decode the HR image (unless given as ``hr``) and its level images in method order, all
    cut to one size (at least the HR mod-cropped to ``scale``).

    Returns ``(hr, [level arrays])``, each ``H×W×3`` uint8/uint16. An SR image must be the HR's
    size or the HR's size mod-cropped to ``scale``; otherwise :class:`ImageReadError` names both.
    """
    if hr is None:
        hr = decode_image(hr_path)
    h, w = hr.shape[:2]
    mh, mw = h - h % scale, w - w % scale
    arrays = []
    for name, source in sr.items():
        if source == "hr":
            arrays.append(hr)
        elif source == "bicubic":
            arrays.append(bicubic_upscale(hr, scale))
        else:
            img = read_matched(
                files[name],
                hr_path.stem,
                mod_sizes(h, w, scale),
                f"{hr_path}: no SR image with stem {hr_path.stem!r} (method {name})",
                "SR image",
                f"HR {hr_path} is {h}x{w} (expected {h}x{w} or {mh}x{mw} at x{scale})",
                hr.dtype,
            )
            arrays.append(img)
    ch = min(a.shape[0] for a in arrays)
    cw = min(a.shape[1] for a in arrays)
    return np.ascontiguousarray(hr[:ch, :cw]), [np.ascontiguousarray(a[:ch, :cw]) for a in arrays]


def _normalise_sources(sr: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, source in sr.items():
        source = str(source)
        out[str(name)] = source if source in SPECIAL_SOURCES else str(Path(source).resolve())
    return out


# ----------------------------------------------------------------------------- building labels


def build_sr_labels(
    hr: str | os.PathLike,
    sr: Mapping[str, str],
    out: str | os.PathLike,
    metrics: Sequence[str] = ("niqe",),
    patch_size: int = 296,
    stride: int = 200,
    crop_border: int | None = None,
    scale: int = 4,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    progress: bool = True,
    skipped: list[tuple[Path, str]] | None = None,
) -> LabelTable:
    """Write the label file ``out`` for HR folder ``hr`` and level sources ``sr`` (resumable).

    Args:
        hr: folder of HR images.
        sr: ``{method: folder | "hr" | "bicubic"}``, best method first (see module docstring).
        out: label file to write (CSV); ``<out>.part`` holds the rows of an unfinished build.
        metrics: no-reference metrics to compute (``niqe``, ``ma``, ``pi``); sharpness and RMSE
            are always computed.
        patch_size / stride: the window grid (RankSRGAN: 296 / 200).
        crop_border: pixels shaved before NIQE / Ma / RMSE; None: the registry's ``PIRM``
            convention, ``scale`` (RankSRGAN: 4).
        scale: SR factor (HR mod-crop and the ``bicubic`` source).
        batch_size: patches scored per batch; every batch is one durable chunk of rows.
        device: where metrics run (default: CUDA when available, else CPU).
        progress: show a tqdm bar over images.
        skipped: None (default): an unusable image (an HR or SR file that cannot be decoded, an
            SR image of the wrong size) stops the build with its error. A list: such an image
            is skipped instead (no rows; a ``RuntimeWarning`` names it) and ``(HR path,
            reason)`` is appended to the list. The finished file leaves it out (to add it, fix
            the file and build into a new ``out``); if every image is unusable the build stops
            with an error instead of writing an empty file.

    Returns the finished table. If ``out`` already exists with the same settings it is returned
    as is; with other settings a ValueError asks for another path.
    """
    metrics = list(dict.fromkeys(metrics))
    if crop_border is None:
        crop_border = PIRM.crop_border(scale)
    for m in metrics:
        if m not in LABEL_METRICS:
            raise ValueError(
                f"metrics: unknown metric {m!r}; choose from {LABEL_METRICS} (rmse and sharpness are always computed)"
            )
    if patch_size < 32 or stride < 1 or batch_size < 1 or scale < 1 or crop_border < 0:
        raise ValueError(
            f"bad sizes: patch_size={patch_size} (>= 32), stride={stride}, batch_size={batch_size}, "
            f"scale={scale}, crop_border={crop_border}"
        )
    sources = _normalise_sources(sr)
    meta = {
        "format": LABEL_FORMAT,
        "hr": str(Path(hr).resolve()),
        "sr": sources,
        "methods": list(sources),
        "metrics": metrics,
        "patch_size": patch_size,
        "stride": stride,
        "crop_border": crop_border,
        "scale": scale,
    }
    out = Path(out)
    if out.exists():
        table = read_labels(out)
        if table.meta != meta:
            raise ValueError(f"{out}: exists with other settings; choose another --out or delete it")
        return table
    hr_files, files = check_sources(hr, sources)
    device = resolve_device(device)
    writer = PartWriter(out, meta)
    methods = list(sources)
    skipped_before = len(skipped) if skipped is not None else 0
    for hr_path in tqdm(hr_files, desc="labelling", unit="img", disable=not progress):
        stem = hr_path.stem
        try:
            hr_img = decode_image(hr_path)
        except (ImageReadError, FileNotFoundError) as err:
            if skipped is None:
                raise
            _skip_image(hr_path, err, skipped)
            continue
        h, w = hr_img.shape[0] - hr_img.shape[0] % scale, hr_img.shape[1] - hr_img.shape[1] % scale
        positions = grid_positions(h, w, patch_size, stride)
        if not positions:
            log.warning("%s: %dx%d is smaller than patch %d: no locations", hr_path, h, w, patch_size)
            continue
        todo = [(y, x, k) for (y, x) in positions for k in range(len(methods)) if (stem, y, x, methods[k]) not in writer.done]
        if not todo:  # finished by an earlier, interrupted run: no SR decoding, no metrics
            continue
        try:
            hr_img, levels = load_levels(hr_path, sources, files, scale, hr=hr_img)
        except (ImageReadError, FileNotFoundError) as err:
            if skipped is None:
                raise
            _skip_image(hr_path, err, skipped)
            continue
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            x = torch.stack([to_tensor(levels[k][y : y + patch_size, x_ : x_ + patch_size]) for y, x_, k in chunk]).to(device)
            ref = torch.stack([to_tensor(hr_img[y : y + patch_size, x_ : x_ + patch_size]) for y, x_, _ in chunk]).to(device)
            cols = [c.tolist() for c in label_metrics(x, ref, metrics, crop_border)]
            writer.append([[stem, y, x_, methods[k]] + [c[i] for c in cols] for i, (y, x_, k) in enumerate(chunk)])
    if skipped is not None and len(skipped) - skipped_before == len(hr_files):
        first, reason = skipped[skipped_before]
        raise ImageReadError(f"{hr}: every image is unusable, no label file written (first: {first}: {reason})")
    return writer.finish()


def _skip_image(hr_path: Path, err: Exception, skipped: list[tuple[Path, str]]) -> None:
    """Warn about an image :func:`build_sr_labels` leaves out and record it in ``skipped``."""
    reason = (str(err).splitlines() or [type(err).__name__])[0]
    if reason.startswith(f"{hr_path}: "):
        reason = reason[len(f"{hr_path}: ") :]
    warnings.warn(f"{hr_path}: skipped: {reason}", RuntimeWarning, stacklevel=3)
    skipped.append((hr_path, reason))


# ----------------------------------------------------------------------------- selecting locations


@dataclass
class Location:
    """One labelled patch location: ``levels[k]`` and ``values[k]`` of method ``k`` (list order)."""

    image: str
    y: int
    x: int
    levels: np.ndarray  # (L,) int64, 0 = best
    values: np.ndarray  # (L,) float64, higher = worse


def select_locations(
    table: LabelTable,
    metric: str | Mapping[str, float] = "niqe",
    label_mode: str = "rank",
    min_sharpness: float = 0.0,
    min_gap: float = 0.0,
    max_patches_per_image: int | None = None,
    seed: int = 0,
) -> list[Location]:
    """Labelled, filtered locations of a label table (see the module docstring for the rules).

    Args:
        table: a label file's rows (:func:`ranksrgan.data.rank.labels.read_labels`).
        metric: metric name or ``{name: weight}`` sum (higher = worse; ``ma`` enters as 10 - Ma).
        label_mode: ``"rank"`` (MR: level = rank of the metric value, value = metric value) or
            ``"method"`` (MC: level = value = position in the method list, best first).
        min_sharpness: minimum sharpness (mean Y gradient magnitude, 0-255) of the best level's patch.
        min_gap: minimum difference between any two metric values of a location.
        max_patches_per_image: keep at most this many locations per image (seeded random subset).
        seed: seed of that subset.

    Returns locations sorted by (image, y, x). Raises ValueError for unknown modes / metrics or
    a location that lacks some method's row.
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    methods = list(table.meta["methods"])
    metric_names = set(parse_metric_spec(metric))
    columns = {name: table.column(name) for name in ("rmse", *table.meta["metrics"])}
    missing = metric_names - set(columns)
    if missing:
        raise ValueError(f"metric {sorted(missing)} not in the label file (it has {sorted(columns)}); relabel with it")
    combined = combine_metrics(columns, metric)
    sharp = table.column("sharpness")
    grouped: dict[tuple[str, int, int], dict[str, int]] = defaultdict(dict)
    for i, row in enumerate(table.rows):
        grouped[(row[0], row[1], row[2])][row[3]] = i
    by_image: dict[str, list[Location]] = defaultdict(list)
    for (image, y, x), rows in sorted(grouped.items()):
        if set(rows) != set(methods):
            raise ValueError(f"label file: location {image} ({y}, {x}) has methods {sorted(rows)}, expected {methods}")
        idx = [rows[m] for m in methods]
        values = combined[idx]
        if not np.isfinite(values).all():
            continue
        if label_mode == "rank":
            levels = np.argsort(np.argsort(values, kind="stable"), kind="stable")
        else:
            levels = np.arange(len(methods))
        if sharp[idx][int(np.argmin(levels))] < min_sharpness:
            continue
        if len(values) > 1 and np.diff(np.sort(values)).min() < min_gap:
            continue
        out_values = values if label_mode == "rank" else levels.astype(np.float64)
        by_image[image].append(Location(image, int(y), int(x), levels.astype(np.int64), out_values.astype(np.float64)))
    rng = np.random.default_rng(seed)
    kept: list[Location] = []
    for image in sorted(by_image):
        locs = by_image[image]
        if max_patches_per_image is not None and len(locs) > max_patches_per_image:
            pick = np.sort(rng.choice(len(locs), size=max_patches_per_image, replace=False))
            locs = [locs[i] for i in pick]
        kept.extend(locs)
    return kept


# ----------------------------------------------------------------------------- settings a label file fixes


#: Labelling settings of ``conf/ranker/sr.yaml`` that must agree with a label file's header.
LABEL_SETTINGS = ("patch_size", "stride", "crop_border", "scale")


def check_label_settings(path: str | os.PathLike, meta: Mapping, **settings: object) -> None:
    """Raise ValueError naming both values when a labelling setting disagrees with the label
    file's header (``meta``, line 1 of the file); settings the header lacks are not checked."""
    for name, value in settings.items():
        if name in meta and meta[name] != value:
            raise ValueError(
                f"{path}: the label file was built with {name}={meta[name]}, but the config says {name}={value}; "
                f"set ranker.datamodule.{name}={meta[name]} or build new labels"
            )
