"""The paper's Fig. 9: per-image NIQE of each method against the NIQE of its own HR image.

From the per-image records of an :func:`~ranksrgan.evaluation.evaluate` run made with
``include_hr=True``: for each method, the share of images whose score is better than that of
their HR image (for NIQE: lower; the paper reports 76.2 % for SRGAN, 86.6 % for ESRGAN and 90.4 %
for RankSRGAN on DIV2K / Flickr2K validation images), the mean scores, and a PNG of the score
histograms of HR and every method.

The histogram is drawn with numpy and OpenCV (both install requirements), not matplotlib (a
development extra only): the end-of-run report of every installation can then write it, and the
picture is the same pixels everywhere.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ranksrgan.evaluation.csvformat import SKIPPED
from ranksrgan.evaluation.scoring import metric_spec
from ranksrgan.evaluation.table3 import Evaluation

__all__ = ["AgainstHR", "niqe_against_hr"]

# RGB colours of the series: HR first (grey), then the methods
_COLOURS = [(128, 128, 128), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
_WIDTH, _PANEL, _LEFT, _RIGHT, _TOP, _BOTTOM = 720, 96, 16, 16, 8, 34


@dataclass
class AgainstHR:
    """Result of :func:`niqe_against_hr`.

    Attributes:
        metric: the metric column compared (``"niqe"``).
        reference: the HR method's name in the evaluation (``"HR"``).
        datasets: the test sets pooled.
        values: per-image scores of each series, the reference first, then the methods in table
            order; finite values only (skipped and NaN images left out).
        better: per method, the share in [0, 1] of images scoring strictly better than their own HR
            image (ties are not better), over the images where both scores are finite; NaN when
            there are none.
        pairs: per method, the number of images that share counts.
    """

    metric: str
    reference: str
    datasets: list[str]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    better: dict[str, float] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)

    def format(self) -> str:
        """Plain-text table: series, images, mean score, share better than HR."""
        spec = metric_spec(self.metric)
        word = "higher" if spec.higher_is_better else "lower"
        header = ["method", "images", f"mean {spec.label}", f"{word} than {self.reference}"]
        rows = []
        for name, vals in self.values.items():
            mean = f"{float(np.mean(vals)):.{spec.digits}f}" if len(vals) else "nan"
            if name == self.reference:
                rows.append([name, str(len(vals)), mean, "-"])
            else:
                share = self.better[name]
                rows.append([name, str(self.pairs[name]), mean, "nan" if math.isnan(share) else f"{100 * share:.1f}%"])
        widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]

        def line(row: list[str]) -> str:
            return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)).rstrip()

        title = (
            f"{spec.label} of each image against its {self.reference} ({', '.join(self.datasets)}; "
            f"{word} is better; the paper's Fig. 9)"
        )
        return "\n".join([title, line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])

    def histograms(self, bins: int = 30) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Shared bin edges over every finite value and the counts of each series
        (``np.histogram``); ``bins`` equal-width bins from the smallest to the largest value."""
        pooled = np.concatenate([v for v in self.values.values()]) if self.values else np.empty(0)
        if pooled.size == 0:
            raise ValueError(f"no finite {self.metric} values to draw")
        edges = np.histogram_bin_edges(pooled, bins=bins)
        return edges, {name: np.histogram(v, bins=edges)[0] for name, v in self.values.items()}

    def image(self, bins: int = 30) -> np.ndarray:
        """The histograms as an ``H×W×3`` uint8 RGB image: one panel per series (HR on top) on a
        shared score axis and count scale; each method's panel repeats HR's histogram as a black
        outline, and each panel names its mean and its share better than HR."""
        import cv2

        edges, counts = self.histograms(bins)
        names = list(self.values)
        height = _TOP + _PANEL * len(names) + _BOTTOM
        img = np.full((height, _WIDTH, 3), 255, dtype=np.uint8)
        x0, x1 = _LEFT, _WIDTH - _RIGHT
        lo, hi = float(edges[0]), float(edges[-1])
        span = hi - lo if hi > lo else 1.0

        def x_of(v: float) -> int:
            return int(round(x0 + (v - lo) / span * (x1 - x0)))

        top_count = max(int(c.max()) for c in counts.values()) or 1
        bar_h = _PANEL - 26
        ref = counts[self.reference]
        font = cv2.FONT_HERSHEY_SIMPLEX
        spec = metric_spec(self.metric)
        for k, name in enumerate(names):
            base = _TOP + _PANEL * (k + 1) - 4  # the panel's baseline
            # grey is HR's alone; the methods cycle through the other colours
            colour = _COLOURS[0] if name == self.reference else _COLOURS[1 + (k - 1) % (len(_COLOURS) - 1)]
            for i, c in enumerate(counts[name]):
                if c:
                    top = base - int(round(c / top_count * bar_h))
                    cv2.rectangle(img, (x_of(edges[i]), top), (max(x_of(edges[i + 1]) - 1, x_of(edges[i])), base), colour, -1)
            if name != self.reference:  # HR's histogram as a step outline
                pts = [(x_of(edges[0]), base)]
                for i, c in enumerate(ref):
                    y = base - int(round(c / top_count * bar_h))
                    pts += [(x_of(edges[i]), y), (x_of(edges[i + 1]), y)]
                pts.append((x_of(edges[-1]), base))
                cv2.polylines(img, [np.array(pts, dtype=np.int32)], False, (0, 0, 0), 1)
            cv2.line(img, (x0, base), (x1, base), (0, 0, 0), 1)
            vals = self.values[name]
            text = f"{name}: n={len(vals)}, mean {spec.label} {float(np.mean(vals)):.2f}" if len(vals) else f"{name}: no values"
            if name != self.reference and not math.isnan(self.better[name]):
                text += f", {100 * self.better[name]:.1f}% better than {self.reference}"
            cv2.putText(img, text, (x0 + 4, base - bar_h - 6), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        # score axis: ticks at a round step
        step = 10 ** math.floor(math.log10(span / 5)) if span > 0 else 1.0
        for mult in (1, 2, 5, 10):
            if span / (step * mult) <= 8:
                step *= mult
                break
        axis = height - _BOTTOM + 2
        v = math.ceil(lo / step) * step
        while v <= hi + 1e-9 * span:
            x = x_of(v)
            cv2.line(img, (x, axis - 4), (x, axis + 2), (0, 0, 0), 1)
            label = f"{v:g}"
            (tw, _), _ = cv2.getTextSize(label, font, 0.4, 1)
            cv2.putText(img, label, (min(max(x - tw // 2, 0), _WIDTH - tw), axis + 16), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            v += step
        cv2.putText(img, spec.label, (x1 - 40, height - 3), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        return img

    def write_png(self, path: str | os.PathLike, bins: int = 30) -> Path:
        """Write :meth:`image` to ``path`` (PNG, atomically); returns the path."""
        from ranksrgan.io import to_tensor, write_image

        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ValueError(f"{path}: the histogram is written as PNG; name a .png file")
        write_image(path, to_tensor(self.image(bins)))
        return path


def niqe_against_hr(
    ev: Evaluation,
    png: str | os.PathLike | None = None,
    metric: str = "niqe",
    dataset: str | None = None,
    bins: int = 30,
) -> AgainstHR:
    """Per-image ``metric`` (default NIQE) of every method against its HR image (Fig. 9).

    Args:
        ev: an evaluation run with ``include_hr=True`` (its ``reference`` method) that has the
            ``metric`` column; its per-image ``records`` are used.
        png: when given, the histogram image is written there (:meth:`AgainstHR.write_png`).
        metric: any column of ``ev`` (polarity from the registry; a ``rank/<name>`` column too).
        dataset: only this test set; default: every set pooled (images are paired by set and name).
        bins: histogram bins.

    Returns the :class:`AgainstHR` (``.format()`` is the table).

    Raises:
        ValueError: ``ev`` has no HR reference, no such metric column or no such dataset.
    """
    if ev.reference is None:
        raise ValueError("the evaluation has no HR reference to compare with: run evaluate(..., include_hr=True)")
    if metric not in ev.metrics:
        raise ValueError(f"the evaluation has no {metric!r} column (it has: {', '.join(ev.metrics)})")
    if dataset is not None and dataset not in ev.datasets:
        raise ValueError(f"unknown dataset {dataset!r}; the evaluation has {', '.join(ev.datasets)}")
    datasets = ev.datasets if dataset is None else [dataset]
    higher = metric_spec(metric).higher_is_better
    scores: dict[str, dict[tuple[str, str], float]] = {m: {} for m in ev.methods}
    for r in ev.records:
        if r["dataset"] in datasets and not r.get(SKIPPED) and math.isfinite(r[metric]):
            scores[r["method"]][(r["dataset"], r["image"])] = float(r[metric])
    ref = scores[ev.reference]
    order = [ev.reference] + [m for m in ev.methods if m != ev.reference]
    result = AgainstHR(metric, ev.reference, list(datasets))
    for name in order:
        result.values[name] = np.array(list(scores[name].values()), dtype=np.float64)
        if name == ev.reference:
            continue
        paired = [(v, ref[key]) for key, v in scores[name].items() if key in ref]
        wins = sum((v > h) if higher else (v < h) for v, h in paired)
        result.pairs[name] = len(paired)
        result.better[name] = wins / len(paired) if paired else math.nan
    if png is not None:
        result.write_png(png, bins)
    return result
