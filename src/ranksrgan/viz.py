"""Helpers shared by the notebooks: finding the trained stages of a run, image grids and score
histograms.

Images are float tensors ``3×H×W`` or ``1×3×H×W`` in [0, 1], RGB. Plots use matplotlib (in the
``dev`` extra), imported when a plot is made, so importing this module needs only torch.

Ranker polarity, as everywhere in this package: a HIGHER score means a WORSE image.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["DEFAULT_ROOT", "runs_root", "require_stages", "to_hwc", "image_grid", "labelled_strip", "score_histograms"]

#: run folder when neither an argument nor ``RANKSRGAN_ROOT`` names one (``conf/paths/default.yaml``)
DEFAULT_ROOT = "ranksrgan_runs"


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """The run folder: ``root``, else ``$RANKSRGAN_ROOT``, else ``ranksrgan_runs``.

    A relative path that does not exist in the working folder is also looked for one level up,
    so that a notebook started in ``notebooks/`` finds the ``ranksrgan_runs/`` that ``make demo``
    writes in the repository root.
    """
    path = Path(root if root is not None else os.environ.get("RANKSRGAN_ROOT") or DEFAULT_ROOT)
    if not path.is_absolute() and not path.exists() and (Path("..") / path).exists():
        path = Path("..") / path
    return path


def require_stages(kind: str, name: str | None = None, root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Records of the finished stages of ``kind`` (``"ranker"`` or ``"generator"``), newest first.

    The records are those of :meth:`ranksrgan.store.StageStore.records` for ``<runs_root(root)>/store``
    (``"checkpoint"``, ``"name"``, ``"key"``, ``"metrics"``, ``"config"``), optionally of one ``name``.

    Raises:
        ValueError: ``kind`` is not ``"ranker"`` or ``"generator"``.
        FileNotFoundError: no such stage in the store (the message names the store and says how
            to fill it).
    """
    from ranksrgan.store import StageStore

    if kind not in ("ranker", "generator"):
        raise ValueError(f"kind must be 'ranker' or 'generator', got {kind!r}")
    store = runs_root(root) / "store"
    records = StageStore(store).records(kind, name) if store.is_dir() else []
    if not records:
        what = f"{kind} named {name!r}" if name else kind
        raise FileNotFoundError(
            f"{store}: no trained {what} stage; run `make demo` first, or set RANKSRGAN_ROOT to the folder a run wrote"
        )
    return records


def to_hwc(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """``3×H×W`` / ``1×3×H×W`` tensor in [0, 1] -> ``H×W×3`` float32 numpy array clipped to [0, 1].

    A numpy ``H×W×3`` uint8 array is accepted too (divided by 255).
    """
    if isinstance(x, np.ndarray):
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"to_hwc: expected an H×W×3 array, got shape {x.shape}")
        return x.astype(np.float32) / (255.0 if x.dtype == np.uint8 else 1.0)
    t = x.detach()
    if t.dim() == 4 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"to_hwc: expected a 3×H×W or 1×3×H×W tensor, got shape {tuple(x.shape)}")
    return t.float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def image_grid(
    rows: Sequence[Sequence[torch.Tensor]],
    titles: Sequence[Sequence[str]] | None = None,
    row_labels: Sequence[str] | None = None,
    cell_inches: float = 2.2,
    suptitle: str | None = None,
):
    """A grid of images, one list per row (rows may differ in length), pixels shown unsmoothed.

    Args:
        rows: rows of images (``3×H×W`` / ``1×3×H×W`` in [0, 1]).
        titles: a title per image, same nesting as ``rows``.
        row_labels: a label per row, written left of its first image.
        cell_inches: side of one cell in inches.
        suptitle: title of the whole figure.

    Returns:
        The matplotlib ``Figure`` (made with pyplot: a notebook shows it at the end of the cell).
    """
    import matplotlib.pyplot as plt

    rows = [list(r) for r in rows]
    if not rows or not all(rows):
        raise ValueError("image_grid: need at least one row, each with at least one image")
    if titles is not None and [len(t) for t in titles] != [len(r) for r in rows]:
        raise ValueError("image_grid: titles must have one entry per image, nested like rows")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"image_grid: got {len(row_labels)} row labels for {len(rows)} rows")
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(cell_inches * ncols, cell_inches * len(rows) + 0.3), squeeze=False)
    for i, row in enumerate(rows):
        for j, ax in enumerate(axes[i]):
            if j >= len(row):
                ax.axis("off")
                continue
            ax.imshow(to_hwc(row[j]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if titles is not None:
                ax.set_title(titles[i][j], fontsize=9)
        if row_labels is not None:
            axes[i][0].set_ylabel(row_labels[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def labelled_strip(panels: Sequence[torch.Tensor], labels: Sequence[str], bar: int = 14) -> torch.Tensor:
    """Panels ``3×H×W`` (one height, [0, 1]) side by side under a black caption bar ``bar`` px high
    that names each panel in white (PIL's default font, clipped to the panel's width).

    Returns ``3×(bar + H)×(sum W)``, float32 on the CPU.

    >>> strip = labelled_strip([torch.zeros(3, 20, 30), torch.ones(3, 20, 40)], ["a", "b"])
    >>> strip.shape, bool(strip[:, 14:, 30:].eq(1).all())
    (torch.Size([3, 34, 70]), True)
    """
    from PIL import Image, ImageDraw, ImageFont

    if len(panels) != len(labels):
        raise ValueError(f"labelled_strip: {len(panels)} panels but {len(labels)} labels")
    font = ImageFont.load_default()
    captions = []
    for panel, label in zip(panels, labels):
        canvas = Image.new("L", (int(panel.shape[-1]), bar), 0)
        ImageDraw.Draw(canvas).text((2, 1), label, fill=255, font=font)
        captions.append(torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).expand(3, -1, -1))
    images = torch.cat([p.detach().float().cpu().clamp(0, 1) for p in panels], dim=-1)
    return torch.cat([torch.cat(captions, dim=-1), images], dim=-2)


def _color_cycle() -> list[dict[str, Any]]:
    """The entries of matplotlib's current property cycle (``[{"color": ...}, ...]``)."""
    import matplotlib.pyplot as plt

    return list(plt.rcParams["axes.prop_cycle"])


def score_histograms(
    ax,
    groups: Mapping[str, Sequence[float]],
    bins: int = 20,
    xlabel: str = "Ranker score (higher = worse)",
    title: str | None = None,
):
    """Overlaid normalised histograms of scores, one per group (e.g. per level or per method).

    All groups share the same bin edges, so their positions can be compared. Returns ``ax``.
    """
    values = [np.asarray(list(v), dtype=np.float64) for v in groups.values()]
    if not values or any(v.size == 0 for v in values):
        raise ValueError("score_histograms: every group needs at least one score")
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    if hi <= lo:  # all scores equal: give the single bar a width
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    colors = [c["color"] for c in _color_cycle()]
    for k, (label, v) in enumerate(zip(groups, values)):
        color = colors[k % len(colors)]
        ax.hist(v, bins=edges, density=True, histtype="stepfilled", alpha=0.2, color=color)
        ax.hist(v, bins=edges, density=True, histtype="step", linewidth=1.6, color=color, label=f"{label} (n={v.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return ax
