"""Scoring image files and batches with the registry's metrics, and Ranker scores.

Metric identity, polarity and conventions: :mod:`ranksrgan.metrics.registry`.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ranksrgan.evaluation.csvformat import SKIPPED
from ranksrgan.io import ImageReadError, decode_image, list_images, to_tensor
from ranksrgan.metrics.registry import LEARNED_METRICS, METRICS, MetricInfo, check_names, compute

__all__ = [
    "RANK_PREFIX",
    "load_learned_metrics",
    "metric_spec",
    "score_batch",
    "warn_nan",
    "ranker_score",
    "score_images",
    "ITEM_ERRORS",
    "item_reason",
]


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


def metric_spec(column: str) -> MetricInfo:
    """The :class:`MetricInfo` of a column: a :data:`METRICS` id, or ``rank/<name>`` (a Ranker's
    mean score; a higher score means a WORSE image, so lower is better)."""
    if column in METRICS:
        return METRICS[column]
    if column.startswith(RANK_PREFIX) and len(column) > len(RANK_PREFIX):
        return MetricInfo(column, f"Rank-{column[len(RANK_PREFIX) :]}", False, digits=3)
    raise KeyError(f"unknown metric column {column!r}; choose from {', '.join(METRICS)} or {RANK_PREFIX}<ranker>")


def score_batch(
    x: torch.Tensor,
    metrics: Sequence[str],
    hr: torch.Tensor | None = None,
    crop_border: int = 0,
    color: str = "y",
    ma_model: Any = None,
    sr_scale: int = 4,
) -> dict[str, torch.Tensor]:
    """All requested metrics of one batch, with an explicit border and luminance.

    :func:`ranksrgan.metrics.registry.compute` with ``crop_border`` and ``color`` given (for
    ``ranksrgan-score``, whose files have no known scale); ``color`` applies to the metrics on the
    convention's luminance (``niqe``, ``ma``, ``pi``, ``grid``); ``sr_scale`` is the period that
    ``grid`` measures at. Returns ``{metric: (B,) float64 CPU
    tensor}``, NaN where a metric is undefined (callers name the files: :func:`warn_nan`).

    >>> import torch
    >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> v = score_batch(x, ["psnr", "ssim"], hr=x, crop_border=4)
    >>> v["psnr"], v["ssim"]
    (tensor([inf, inf], dtype=torch.float64), tensor([1., 1.], dtype=torch.float64))
    """
    return compute(metrics, x, hr, scale=sr_scale, ma_model=ma_model, crop_border=crop_border, color=color, quiet_nan=True)


def warn_nan(label: str, values: Mapping[str, float]) -> None:
    """Warn (``RuntimeWarning``) for every NaN metric value of the image ``label``."""
    bad = [m for m, v in values.items() if isinstance(v, float) and math.isnan(v)]
    if bad:
        warnings.warn(
            f"{label}: {', '.join(bad)} is NaN (undefined, e.g. a constant or near-constant image)", RuntimeWarning, stacklevel=2
        )


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


# What makes one item (image, pair) unusable without condemning the whole run: unreadable or
# vanished files, size mismatches, images a metric cannot score (e.g. too small for NIQE).
ITEM_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError)


def item_reason(err: BaseException, path: str | Path | None = None) -> str:
    """One-line reason of an item error, without a leading ``"<path>: "`` (the label names it)."""
    msg = (str(err).splitlines() or [type(err).__name__])[0]
    prefix = f"{path}: "
    return msg[len(prefix) :] if path is not None and msg.startswith(prefix) else msg


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
    sr_scale: int = 4,
) -> list[dict[str, Any]]:
    """Score image files; returns one record per file, in input order.

    Each record is ``{"image": stem, "path": str(file), "folder": str(file's folder), <metric>: float, ...}``. Images of the
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
        sr_scale: the SR factor whose period ``grid`` measures.

    Raises:
        FileNotFoundError: no reference with the stem of a file (with ``skip_errors``: of any file).
        ImageReadError: unreadable file, or image and reference sizes differ (names both).
        ValueError: a metric fails on an image (message names the file).
    """
    check_names(metrics)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if scale < 1:
        raise ValueError(f"--scale must be >= 1, got {scale}")
    full_ref = any(METRICS[m].full_reference for m in metrics)
    refs: dict[str, Path] = {}
    records: list[dict[str, Any] | None] = [None] * len(files)

    def skip(i: int, reason: str) -> None:
        warnings.warn(f"{files[i]}: skipped: {reason}", RuntimeWarning, stacklevel=3)
        rec: dict[str, Any] = {"image": files[i].stem, "path": str(files[i]), "folder": str(files[i].parent)}
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
        return _score_files([files[i] for i in batch], metrics, refs, crop_border, color, device, ma_model, scale, sr_scale)

    try:
        for batch in _plan_batches([files[i] for i in todo], batch_size):
            batch = [todo[k] for k in batch]
            done: dict[int, dict[str, float]] = {}
            try:
                values = run(batch)
                done = {i: {m: float(values[m][k]) for m in metrics} for k, i in enumerate(batch)}
            except (*ITEM_ERRORS, RuntimeError) as err:
                if len(batch) == 1 and (not skip_errors or not isinstance(err, ITEM_ERRORS)):
                    raise
                # locate the offending file(s): score the batch one image at a time
                for i in batch:
                    try:
                        one = run([i])
                    except ITEM_ERRORS as item_err:
                        if not skip_errors:
                            raise
                        skip(i, item_reason(item_err, files[i]))
                        continue
                    done[i] = {m: float(one[m][0]) for m in metrics}
            for i, vals in done.items():
                rec: dict[str, Any] = {"image": files[i].stem, "path": str(files[i]), "folder": str(files[i].parent)}
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
    sr_scale: int = 4,
) -> dict[str, list[float]]:
    imgs = [_load(f, scale) for f in batch]
    if len({tuple(t.shape) for t in imgs}) != 1:  # header size was wrong: fall back per image
        out: dict[str, list[float]] = {m: [] for m in metrics}
        for f in batch:
            one = _score_files([f], metrics, refs, crop_border, color, device, ma_model, scale, sr_scale)
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
        res = score_batch(x, metrics, hr, crop_border, color, ma_model, sr_scale)
    except ValueError as err:
        if len(batch) == 1:
            raise ValueError(f"{batch[0]}: {err}") from err
        raise
    return {m: res[m].tolist() for m in metrics}
