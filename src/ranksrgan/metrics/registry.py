"""The one table of metrics: identity, polarity, inputs, and the evaluation conventions.

Every tool that scores images (``ranksrgan-score``, ``ranksrgan-evaluate``, the rank-set
labelling, the GAN validation) looks metrics up here and computes them with :func:`compute`;
none restates a metric's polarity or a convention. This module imports no torch (the functions
and classes are named by import path and loaded on first use), so a command-line parser can list
the metrics without paying for torch.

Conventions (:class:`Convention`): which luminance the no-reference metrics see and how many
pixels are shaved per side before any metric.

==========  ==========================  =============================================================
preset      luminance, border           where
==========  ==========================  =============================================================
``PIRM``    MATLAB ``rgb2ycbcr`` Y,     the PIRM2018 toolbox and RankSRGAN: ``ranksrgan-evaluate``,
            ``scale`` px                the GAN validation metrics, the SR rank-set labels
                                        (``ranksrgan-build-rankset``, ``SRRankDataModule``) and
                                        ``ranksrgan-score --convention PIRM``
``LIVE``    MATLAB ``rgb2gray``, 0 px   the LIVE NIQE release and Ma et al.'s ``quality_predict``
                                        on an RGB file: ``ranksrgan-score --convention LIVE``
==========  ==========================  =============================================================

Defaults that differ on purpose (the MATLAB-parity tests pin each function to its reference code):

* the functions and classes keep the defaults of the code that defines each metric:
  :func:`~ranksrgan.metrics.niqe` / ``NIQE`` (Y, 0 px: the LIVE code on the PIRM luminance),
  :func:`~ranksrgan.metrics.ma` / ``Ma`` (``LIVE``), :func:`~ranksrgan.metrics.pi` / ``PI``
  (``PIRM`` at x4: PI is defined by the PIRM toolbox); the full-reference functions shave 0 px;
* ``ranksrgan-score`` scores files of unknown origin, so without ``--convention`` it shaves
  nothing (``--crop-border 0``) and uses Y: the same as the functions' defaults.

Example:

>>> from ranksrgan.metrics.registry import LIVE, METRICS, PIRM
>>> PIRM.crop_border(4), PIRM.color, LIVE.crop_border(4), LIVE.color
(4, 'y', 0, 'gray')
>>> METRICS["niqe"].higher_is_better, METRICS["psnr"].full_reference
(False, True)
>>> METRICS["ma"].oriented(7.5)  # higher = worse: 10 - Ma
2.5
>>> NO_REFERENCE
('niqe', 'ma', 'pi')
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "Convention",
    "PIRM",
    "LIVE",
    "CONVENTIONS",
    "convention",
    "MetricInfo",
    "METRICS",
    "LEARNED_METRICS",
    "NO_REFERENCE",
    "metric",
    "check_names",
    "compute",
    "polarity_table",
]


@dataclass(frozen=True)
class Convention:
    """How images are prepared for the metrics.

    Attributes:
        name: ``"PIRM"`` or ``"LIVE"``.
        color: luminance of the no-reference metrics: ``"y"`` (MATLAB ``rgb2ycbcr``) or
            ``"gray"`` (MATLAB ``rgb2gray``). PSNR/SSIM/RMSE always use Y; the colour and learned
            metrics use RGB.
        crop_scale: shave the SR scale per side (True) or nothing (False).
    """

    name: str
    color: str
    crop_scale: bool

    def crop_border(self, scale: int) -> int:
        """Pixels shaved per side for SR factor ``scale``.

        >>> PIRM.crop_border(3), LIVE.crop_border(3)
        (3, 0)
        """
        return int(scale) if self.crop_scale else 0


#: The PIRM2018 / RankSRGAN convention: MATLAB Y, ``scale`` px shaved per side.
PIRM = Convention("PIRM", "y", True)
#: The LIVE / Ma et al. convention: MATLAB gray, no border shaved.
LIVE = Convention("LIVE", "gray", False)
CONVENTIONS: dict[str, Convention] = {c.name: c for c in (PIRM, LIVE)}


def convention(name: str | Convention) -> Convention:
    """A preset by name (case-insensitive), or ``name`` itself when it is a :class:`Convention`.

    >>> convention("pirm") is PIRM
    True
    """
    if isinstance(name, Convention):
        return name
    found = CONVENTIONS.get(str(name).upper())
    if found is None:
        raise ValueError(f"unknown convention {name!r}; choose from {', '.join(CONVENTIONS)}")
    return found


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class MetricInfo:
    """One metric.

    Attributes:
        name: id on command lines, in CSV columns and label files.
        label: display name.
        higher_is_better: polarity.
        function: ``"module:function"`` of the functional form (B-vector, float64).
        metric_class: ``"module:Class"`` of the torchmetrics form, or None.
        full_reference: needs the HR image.
        needs_ma: needs the Ma (NRQM) model file.
        luminance: computed on the convention's luminance (``color``/``crop_border`` keywords);
            False: on Y (``psnr``, ``ssim``, ``rmse``) or RGB, with ``crop_border`` only.
        rgb: computed on the three RGB channels.
        learned: a network whose weights are loaded (or downloaded) before scoring.
        needs_scale: measured at the SR scale's period (``scale`` keyword): ``grid``.
        upper: top of the scale of a higher-is-better metric; :meth:`oriented` maps it to
            higher = worse as ``upper - value`` (Ma: 10, as in PI).
        ideal: the best value when it lies inside the range (chroma ratio: 1.0).
        digits: decimals shown in tables.
    """

    name: str
    label: str
    higher_is_better: bool
    function: str = ""
    metric_class: str | None = None
    full_reference: bool = False
    needs_ma: bool = False
    luminance: bool = False
    rgb: bool = False
    learned: bool = False
    needs_scale: bool = False
    upper: float | None = None
    ideal: float | None = None
    digits: int = 2

    @property
    def arrow(self) -> str:
        """``↑`` / ``↓`` (polarity), or ``→1`` for a metric with an ideal value.

        >>> METRICS["ssim"].arrow, METRICS["niqe"].arrow, METRICS["chroma"].arrow
        ('↑', '↓', '→1')
        """
        if self.ideal is not None:
            return f"→{self.ideal:g}"
        return "↑" if self.higher_is_better else "↓"

    def best(self, values: Sequence[float]) -> float | None:
        """The best of ``values`` (NaN ignored), or None when none is a number.

        >>> METRICS["chroma"].best([0.2, 1.3, 0.8])
        0.8
        """
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return None
        if self.ideal is not None:
            return min(finite, key=lambda v: abs(v - self.ideal))
        return max(finite) if self.higher_is_better else min(finite)

    def oriented(self, values: Any) -> Any:
        """``values`` (a number or an array) mapped so that higher = worse: unchanged for a
        lower-is-better metric, ``upper - values`` for a bounded higher-is-better one."""
        if not self.higher_is_better:
            return values
        if self.upper is None:
            raise ValueError(f"{self.name}: higher is better and its scale has no top; it cannot be oriented")
        return self.upper - values

    def fn(self) -> Callable[..., torch.Tensor]:
        """The functional form (imports its module)."""
        return _load(self.function)

    def cls(self) -> type:
        """The torchmetrics class (imports its module)."""
        if self.metric_class is None:
            raise ValueError(f"{self.name} has no torchmetrics class")
        return _load(self.metric_class)

    def kwargs(self, conv: Convention, scale: int) -> dict[str, Any]:
        """Keyword arguments that apply ``conv`` at SR factor ``scale`` to this metric."""
        out: dict[str, Any] = {"crop_border": conv.crop_border(scale)}
        if self.luminance:
            out["color"] = conv.color
        if self.needs_scale:
            out["scale"] = int(scale)
        return out

    def make(self, conv: Convention | None = None, scale: int = 4, **kwargs: Any) -> Any:
        """A torchmetrics instance with ``conv`` (default :data:`PIRM`) at ``scale`` applied."""
        return self.cls()(**self.kwargs(conv or PIRM, scale), **kwargs)


_F = "ranksrgan.metrics.fidelity:"
_C = "ranksrgan.metrics.classes:"
_P = "ranksrgan.metrics.perceptual:"

#: Every metric, in display order.
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        # NIQE: no-reference naturalness, [0, ~100), lower is better.
        MetricInfo("niqe", "NIQE", False, "ranksrgan.metrics.niqe:niqe", "ranksrgan.metrics.classes:NIQE", luminance=True),
        # Ma (NRQM): no-reference, [0, 10], higher is better.
        MetricInfo(
            "ma", "Ma", True, "ranksrgan.metrics.ma:ma", "ranksrgan.metrics.classes:Ma", needs_ma=True, luminance=True, upper=10.0
        ),
        # PI = (10 - Ma + NIQE) / 2, lower is better.
        MetricInfo("pi", "PI", False, "ranksrgan.metrics.ma:pi", "ranksrgan.metrics.classes:PI", needs_ma=True, luminance=True),
        # Grid: no-reference, peak-to-peak of the period-scale motif in grey levels, [0, 255], lower is better.
        MetricInfo("grid", "Grid", False, "ranksrgan.metrics.grid:grid_amplitude", _C + "Grid", luminance=True, needs_scale=True),
        # PSNR on Y in dB, [0, inf], higher is better.
        MetricInfo("psnr", "PSNR", True, _F + "psnr_y", _C + "PSNRY", full_reference=True),
        # SSIM on Y, [-1, 1], higher is better.
        MetricInfo("ssim", "SSIM", True, _F + "ssim_y", _C + "SSIMY", full_reference=True, upper=1.0, digits=4),
        # RMSE on Y, 0-255 scale, lower is better (the rank-set labels' fidelity column).
        MetricInfo("rmse", "RMSE", False, _F + "rmse_y", full_reference=True),
        # PSNR over R, G and B in dB, higher is better: sees colour errors that Y misses.
        MetricInfo("psnr_rgb", "PSNR-RGB", True, _F + "psnr_rgb", full_reference=True, rgb=True),
        # (std Cb + std Cr) of SR over HR's: 1 = HR's colourfulness, ~0 = grey; ideal 1. The one chroma
        # (table and GAN validation): MATLAB rgb2ycbcr Cb/Cr on 8-bit values, as every other metric here.
        MetricInfo(
            "chroma", "Chroma", True, _F + "chroma_ratio", _C + "ChromaRatio", full_reference=True, rgb=True, ideal=1.0, digits=3
        ),
        # Mean CIEDE2000 colour difference to HR, [0, ~100], lower is better (CPU, ~1 s per Mpx).
        MetricInfo("deltae", "ΔE00", False, _F + "ciede2000", full_reference=True, rgb=True),
        # LPIPS (VGG16, piq) to HR, [0, ~1], lower is better; weights downloaded on first use.
        MetricInfo("lpips", "LPIPS", False, _P + "lpips", full_reference=True, rgb=True, learned=True, digits=4),
        # DISTS (piq) to HR, [0, 1], lower is better; weights downloaded on first use.
        MetricInfo("dists", "DISTS", False, _P + "dists", full_reference=True, rgb=True, learned=True, digits=4),
    )
}

#: Metrics computed by a network whose weights files are loaded before scoring.
LEARNED_METRICS = tuple(m for m, info in METRICS.items() if info.learned)
#: No-reference quality scores, the ones a rank-set label can be built from (the label build
#: gives no SR scale, so the ``grid`` artifact measure is not among them).
NO_REFERENCE = tuple(m for m, info in METRICS.items() if not info.full_reference and not info.needs_scale)


def metric(name: str) -> MetricInfo:
    """The entry of ``name``; ValueError naming the choices for an unknown one.

    >>> metric("pi").label, metric("pi").needs_ma
    ('PI', True)
    """
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}") from None


def check_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list, after checking each is a metric (ValueError names the first unknown)."""
    for name in names:
        metric(name)
    return list(names)


def compute(
    names: Sequence[str],
    x: torch.Tensor,
    hr: torch.Tensor | None = None,
    conv: Convention | str = PIRM,
    scale: int = 4,
    ma_model: Any = None,
    crop_border: int | None = None,
    color: str | None = None,
    quiet_nan: bool = False,
) -> dict[str, torch.Tensor]:
    """The metrics ``names`` of a batch, ``{name: (B,) float64 CPU tensor}``.

    Args:
        x: ``B×3×H×W`` images in [0, 1] (one size), on the device to compute on.
        hr: ``B×3×H×W`` references for the full-reference metrics, same device.
        conv, scale: the convention and SR factor that decide luminance and border (and the
            period ``grid`` measures at).
        ma_model: a loaded Ma model for ``ma``/``pi`` (None: searched, see ``load_ma_model``).
        crop_border, color: explicit values that override the convention's.
        quiet_nan: suppress the metrics' own warnings about NaN scores (which only know batch
            positions), for callers that name the files themselves.

    NaN where a metric is undefined (constant image).

    >>> import torch
    >>> x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> compute(["psnr", "rmse"], x, x, PIRM, scale=4)
    {'psnr': tensor([inf], dtype=torch.float64), 'rmse': tensor([0.], dtype=torch.float64)}
    """
    conv = convention(conv)
    out: dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():
        if quiet_nan:
            warnings.filterwarnings("ignore", message=r".*score is NaN.*", category=RuntimeWarning)
        for name in names:
            info = metric(name)
            kw = info.kwargs(conv, scale)
            if crop_border is not None:
                kw["crop_border"] = crop_border
            if color is not None and info.luminance:
                kw["color"] = color
            if info.full_reference:
                if hr is None:
                    raise ValueError(f"{name} needs reference images")
                v = info.fn()(x, hr, **kw)
            elif info.needs_ma:
                v = info.fn()(x, ma_model, **kw)
            else:
                v = info.fn()(x, **kw)
            out[name] = v.detach().double().cpu().reshape(-1)
    return out


def polarity_table(names: Mapping[str, MetricInfo] | None = None) -> str:
    """``lower is better: a, b; higher is better: c`` for the metrics (help texts).

    >>> polarity_table({k: METRICS[k] for k in ("niqe", "ma")})
    'lower is better: niqe; higher is better: ma'
    """
    infos = list((names or METRICS).values())
    lower = ", ".join(i.name for i in infos if not i.higher_is_better)
    higher = ", ".join(i.name for i in infos if i.higher_is_better and i.ideal is None)
    ideal = ", ".join(f"{i.name} best at {i.ideal:g}" for i in infos if i.ideal is not None)
    parts = [f"lower is better: {lower}" if lower else "", f"higher is better: {higher}" if higher else "", ideal]
    return "; ".join(p for p in parts if p)
