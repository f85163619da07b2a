"""The paper's Table 3 (and the comparison of Fig. 22): SR methods on benchmark sets.

:func:`evaluate` runs every method on every image of the sets and scores the outputs in the
``PIRM`` convention (:mod:`ranksrgan.metrics.registry`); :mod:`ranksrgan.evaluation.table3_format`
presents the result.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ranksrgan.data.hr_lr_pairs import load_pair
from ranksrgan.evaluation.csvformat import SKIPPED, mean, skipped_records
from ranksrgan.evaluation.scoring import (
    ITEM_ERRORS,
    RANK_PREFIX,
    item_reason,
    load_learned_metrics,
    ranker_score,
    warn_nan,
)
from ranksrgan.io import ImageReadError, decode_image, list_images, to_tensor
from ranksrgan.metrics.registry import METRICS, PIRM, check_names, compute
from ranksrgan.ops.color import quantize_uint8
from ranksrgan.ops.resize import imresize

__all__ = [
    "BenchmarkSet",
    "Evaluation",
    "evaluate",
]


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
        return mean([r[metric] for r in self.records if r["dataset"] == dataset and r["method"] == method and not r.get(SKIPPED)])

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


def _check_inputs(
    test_sets: Sequence[BenchmarkSet],
    checkpoints: Sequence[tuple[str, Path]],
    sr_dirs: Sequence[tuple[str, Path]],
    rankers: Sequence[tuple[str, Path]],
    ranker_crop: int | None,
    include_hr: bool,
    max_images: int | None,
) -> tuple[list[str], list[str], list[str]]:
    """Validate :func:`evaluate`'s arguments; returns the method, Ranker and test-set names."""
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

    return names, ranker_names, set_names


def _resolve_metrics(metrics: Sequence[str] | None, with_pi: bool | None, ma_model: Any) -> tuple[list[str], Any, list[str]]:
    """The metric columns (``ma``/``pi`` dropped with a note when no Ma model is found and
    ``with_pi`` is None), the loaded Ma model or None, and the notes."""
    metrics = ["niqe", "pi", "psnr", "ssim"] if metrics is None else list(metrics)
    check_names(metrics)
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
    return metrics, model_ma, notes


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
      stem, size HR/scale) — :func:`ranksrgan.data.hr_lr_pairs.load_pairs`.
    * Methods: ``Bicubic`` (MATLAB bicubic ``imresize(LR, scale)``), each generator checkpoint
      (run in memory on ``device``, tiled with ``tile``/``overlap`` when the LR is larger than
      ``tile``), each folder of precomputed SR images (matched by stem; ``folder/<set name>/``
      when that subfolder exists, else the folder itself). Every SR image is rounded to 8 bits,
      as a saved PNG would be, before it is scored.
    * Metrics, all on the MATLAB ``rgb2ycbcr`` Y channel with ``scale`` pixels shaved per side:
      NIQE, PI (only when a Ma model is available), PSNR, SSIM. On request (``metrics``) also
      ``grid`` (the pattern repeated at the period ``scale``, :mod:`ranksrgan.metrics.grid`), the
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
    names, ranker_names, set_names = _check_inputs(test_sets, checkpoints, sr_dirs, rankers, ranker_crop, include_hr, max_images)
    metrics, model_ma, notes = _resolve_metrics(metrics, with_pi, ma_model)
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
                    hr_arr, lr_arr = load_pair(hr_path, scale, lr_by_stem, t.lr_dir)
                except ITEM_ERRORS as err:
                    if not skip_errors:
                        raise
                    for name in names:
                        skip(name, item_reason(err))
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
                    except ITEM_ERRORS as err:
                        if not skip_errors:
                            raise
                        outputs.append((name, item_reason(err)))
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
                        vals = compute(metrics, sr_dev, hr_dev, PIRM, scale, model_ma, quiet_nan=True)
                        for column, ranker in loaded_rankers:
                            vals[column] = ranker_score(ranker, sr_dev, crop_border=PIRM.crop_border(scale), crop=ranker_crop)
                    except ValueError as err:
                        if not skip_errors:
                            raise ValueError(f"{label} ({name}): {err}") from err
                        skip(name, item_reason(err))
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
