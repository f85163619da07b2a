"""Learned full-reference metrics through piq: LPIPS (Zhang et al. 2018) and DISTS (Ding et al. 2020).

Both compare deep VGG16 features of the SR image with those of HR; both are distances in
[0, ~1], LOWER is better. The arithmetic (layers, learned channel weights, DISTS's structure and
texture terms, its resizing of images whose short side exceeds 256) is piq's; our conventions
are applied here:

* as metrics (:func:`lpips`, :func:`dists`, the ``lpips`` / ``dists`` columns of
  ``ranksrgan-score`` and ``ranksrgan-evaluate``): RGB in [0, 1] rounded to 8 bits first, as a
  saved PNG would be, ``crop_border`` pixels shaved per side, one value per image (float64);
* as generator loss terms (:class:`LPIPSLoss`, :class:`DISTSLoss`, :func:`perceptual_metric_loss`):
  no rounding (it has no gradient), the batch mean, gradients flow to the SR image only.

Weights: each metric needs two files, downloaded into the torch hub cache
(``torch.hub.get_dir()/checkpoints``) on first use:

| metric | learned weights | environment variable | backbone |
|---|---|---|---|
| LPIPS | ``lpips_weights.pt`` | ``RANKSRGAN_LPIPS_WEIGHTS`` | ``vgg16-397923af.pth`` (``RANKSRGAN_VGG16_WEIGHTS``) |
| DISTS | ``dists_weights.pt`` | ``RANKSRGAN_DISTS_WEIGHTS`` | the same VGG16 file |

A set environment variable names the file to use (it must exist; nothing is downloaded). Without
network and without the file, :class:`WeightsNotFoundError` (a ``FileNotFoundError``) says in one
line which file is missing, the folder to put it in and the variable that can point at it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

__all__ = [
    "KINDS",
    "WeightsNotFoundError",
    "weights_file",
    "build_metric",
    "learned_metric",
    "lpips",
    "dists",
    "LPIPSLoss",
    "DISTSLoss",
    "perceptual_metric_loss",
]


@dataclass(frozen=True)
class _WeightsFile:
    label: str
    name: str
    url: str
    env: str


_VGG16 = _WeightsFile(
    "VGG16 backbone (torchvision ImageNet)",
    "vgg16-397923af.pth",
    "https://download.pytorch.org/models/vgg16-397923af.pth",
    "RANKSRGAN_VGG16_WEIGHTS",
)
_FILES = {
    "lpips": _WeightsFile(
        "LPIPS",
        "lpips_weights.pt",
        "https://github.com/photosynthesis-team/photosynthesis.metrics/releases/download/v0.4.0/lpips_weights.pt",
        "RANKSRGAN_LPIPS_WEIGHTS",
    ),
    "dists": _WeightsFile(
        "DISTS",
        "dists_weights.pt",
        "https://github.com/photosynthesis-team/piq/releases/download/v0.4.1/dists_weights.pt",
        "RANKSRGAN_DISTS_WEIGHTS",
    ),
}
#: The learned metrics of this module.
KINDS = tuple(_FILES)

# VGG16 channel widths at the five layers piq's LPIPS / DISTS read (relu1_2 ... relu5_3); DISTS
# also weighs the 3 input channels.
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)
_DISTS_CHANNELS = 3 + sum(_LPIPS_CHANNELS)


class WeightsNotFoundError(FileNotFoundError):
    """A weights file of a learned metric is neither given, cached nor downloadable (one-line message)."""


def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest`` (through a temporary file, as torch hub does)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(dest), progress=False)


def _resolve(spec: _WeightsFile) -> Path:
    given = os.environ.get(spec.env)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{spec.label} weights: {spec.env}={given} is not a file (it should be {spec.name}, from {spec.url}; "
                f"or unset {spec.env} and put the file in {cache})"
            )
        return path
    path = cache / spec.name
    if path.is_file():
        return path
    try:
        _download(spec.url, path)
    except Exception as err:  # noqa: BLE001 - offline, proxy, HTTP and disk errors come in many types
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise WeightsNotFoundError(
            f"{spec.label} weights file {spec.name} not found and could not be downloaded ({type(err).__name__}: {reason}): "
            f"put it in {cache} or set {spec.env} to its path (download it from {spec.url})"
        ) from None
    return path


def weights_file(kind: str) -> tuple[Path, Path]:
    """``(metric weights, VGG16 weights)`` files of ``kind`` (``"lpips"`` / ``"dists"``): the
    environment variable's file, else the torch hub cache's, else downloaded there.

    Raises:
        WeightsNotFoundError: a file is missing and cannot be downloaded (one line naming it,
            the cache folder and the environment variable).
    """
    if kind not in _FILES:
        raise ValueError(f"learned metric must be one of {KINDS}, got {kind!r}")
    return _resolve(_FILES[kind]), _resolve(_VGG16)


def _load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle, zip and tensor errors
        raise ValueError(f"{path}: not a readable weights file ({type(err).__name__}: {err})") from None


def _vgg16_features(state: dict | None) -> nn.Sequential:
    """torchvision's VGG16 ``features`` (without allocating the classifier), loaded from a
    torchvision state dict (``features.*`` keys; others ignored), or random when ``state`` is None."""
    from torchvision.models import vgg16

    with torch.device("meta"):
        net = vgg16(weights=None)
    features = net.features.to_empty(device="cpu")
    if state is None:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in features.parameters():
                if p.dim() > 1:  # He initialisation of the convolutions
                    p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
                else:
                    p.zero_()
        return features
    sub = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    try:
        features.load_state_dict(sub)
    except RuntimeError as err:
        raise ValueError(f"not a torchvision VGG16 state dict: {str(err).splitlines()[0]}") from None
    return features


def _standin_weights(kind: str):
    """Deterministic placeholder metric weights (``pretrained=False``: tests, smoke runs)."""
    if kind == "lpips":
        return [torch.full((1, c, 1, 1), 1.0 / c) for c in _LPIPS_CHANNELS]
    half = torch.full((1, _DISTS_CHANNELS, 1, 1), 0.5 / _DISTS_CHANNELS)  # alpha + beta sum to 1
    return {"alpha": half.clone(), "beta": half.clone()}


def build_metric(kind: str, pretrained: bool = True) -> nn.Module:
    """piq's ``LPIPS`` or ``DISTS`` module (``reduction="none"``, eval mode, frozen) with our
    weights files (:func:`weights_file`); ``pretrained=False``: random VGG16 and placeholder
    metric weights, nothing read or downloaded (tests, smoke runs)."""
    from unittest import mock

    import piq
    import piq.perceptual

    if kind not in _FILES:
        raise ValueError(f"learned metric must be one of {KINDS}, got {kind!r}")
    if pretrained:
        metric_path, vgg_path = weights_file(kind)
        metric_weights = _load(metric_path)
        try:
            features = _vgg16_features(_load(vgg_path))
        except ValueError as err:
            raise ValueError(f"{vgg_path}: {err}") from None
    else:
        metric_weights, features = _standin_weights(kind), _vgg16_features(None)

    def fake_vgg16(*args, **kwargs) -> SimpleNamespace:
        return SimpleNamespace(features=features)

    def fake_hub_load(url: str, *args, **kwargs):
        if url.rsplit("/", 1)[-1] != _FILES[kind].name:
            raise RuntimeError(f"unexpected weights request {url}")
        return metric_weights

    # piq's constructors fetch both files themselves; hand them ours instead, so that piq's own
    # layer lists and weight splits stay the single source of truth
    cls = piq.LPIPS if kind == "lpips" else piq.DISTS
    with (
        mock.patch.object(piq.perceptual, "vgg16", fake_vgg16),
        mock.patch.object(torch.hub, "load_state_dict_from_url", fake_hub_load),
    ):
        try:
            module = cls(reduction="none")
        except (RuntimeError, AssertionError, KeyError, TypeError) as err:
            raise ValueError(f"{_FILES[kind].label} weights do not fit piq's {cls.__name__}: {err}") from None
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@functools.lru_cache(maxsize=8)
def _cached(kind: str, device: str) -> nn.Module:
    return build_metric(kind).to(device)


def learned_metric(kind: str, device: torch.device | str = "cpu") -> nn.Module:
    """The pretrained :func:`build_metric` module on ``device``, built once per process."""
    return _cached(kind, str(torch.device(device)))


def _score(kind: str, sr: torch.Tensor, hr: torch.Tensor, crop_border: int, quantize: bool) -> torch.Tensor:
    from ranksrgan.metrics.fidelity import _prepare

    x, y = _prepare(sr, hr, crop_border, quantize, to_y=False)
    if x.shape[1] != 3:
        raise ValueError(f"{kind} needs RGB images, got shape {tuple(sr.shape)}")
    if min(x.shape[-2:]) < 16:
        raise ValueError(f"{kind} needs at least 16×16 pixels after cropping, got {tuple(x.shape[-2:])}")
    net = learned_metric(kind, x.device)
    with torch.no_grad():
        return net(x.float(), y.float()).double().reshape(-1)


def lpips(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """LPIPS (VGG16, piq) of ``(B,)3×H×W`` in [0, 1] against HR: B-vector, [0, ~1], lower is better."""
    return _score("lpips", sr, hr, crop_border, quantize)


def dists(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 0, quantize: bool = True) -> torch.Tensor:
    """DISTS (piq) of ``(B,)3×H×W`` in [0, 1] against HR: B-vector, [0, 1], lower is better."""
    return _score("dists", sr, hr, crop_border, quantize)


class _MetricLoss(nn.Module):
    kind = ""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        self.metric = build_metric(self.kind, pretrained=pretrained)

    def train(self, mode: bool = True) -> _MetricLoss:
        super().train(mode)
        self.metric.eval()  # frozen: always in eval mode
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Mean distance of ``B×3×H×W`` SR and HR images in [0, 1] (a scalar; differentiable in ``sr``)."""
        if sr.shape != hr.shape or sr.dim() != 4 or sr.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: expected two B×3×H×W tensors, got {tuple(sr.shape)} and {tuple(hr.shape)}")
        return self.metric(sr, hr.detach()).mean()


class LPIPSLoss(_MetricLoss):
    """LPIPS as a generator loss term (frozen piq ``LPIPS``; batch mean, lower is better)."""

    kind = "lpips"


class DISTSLoss(_MetricLoss):
    """DISTS as a generator loss term (frozen piq ``DISTS``; batch mean, lower is better)."""

    kind = "dists"


def perceptual_metric_loss(kind: str, pretrained: bool = True) -> nn.Module:
    """:class:`LPIPSLoss` (``kind="lpips"``) or :class:`DISTSLoss` (``"dists"``)."""
    losses = {"lpips": LPIPSLoss, "dists": DISTSLoss}
    if kind not in losses:
        raise ValueError(f"perceptual metric loss must be one of {tuple(losses)}, got {kind!r}")
    return losses[kind](pretrained=pretrained)
