"""Network architectures (plain ``nn.Module``s, no Lightning/Hydra).

Every trainable net stores its constructor arguments in ``.config``; :func:`net_spec` turns a
net into the plain ``{"name": ..., "kwargs": ...}`` dict that checkpoints carry under
``"ranksrgan_arch"``, and :func:`build_net` rebuilds the net from it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ranksrgan.nets.discriminator import VGGDiscriminator
from ranksrgan.nets.ranker import RANKER_VARIANTS, Ranker
from ranksrgan.nets.rrdbnet import RRDBNet
from ranksrgan.nets.srresnet import SRResNet
from ranksrgan.nets.vgg import VGGFeatureExtractor

__all__ = [
    "NETS",
    "RANKER_VARIANTS",
    "RRDBNet",
    "Ranker",
    "SRResNet",
    "VGGDiscriminator",
    "VGGFeatureExtractor",
    "build_net",
    "net_spec",
]

#: architecture name (as stored in checkpoints) -> class
NETS: dict[str, type[nn.Module]] = {
    "SRResNet": SRResNet,
    "RRDBNet": RRDBNet,
    "Ranker": Ranker,
    "VGGDiscriminator": VGGDiscriminator,
}


def net_spec(model: nn.Module) -> dict[str, Any]:
    """``{"name": class name, "kwargs": constructor arguments}`` of a net from :data:`NETS`."""
    name = type(model).__name__
    if NETS.get(name) is not type(model):
        raise ValueError(f"net_spec: {name} is not one of the known nets {sorted(NETS)}")
    return {"name": name, "kwargs": dict(model.config)}


def build_net(spec: dict[str, Any]) -> nn.Module:
    """Build a freshly initialised net from a :func:`net_spec` dict."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"build_net: expected a dict with 'name' and 'kwargs', got {spec!r}")
    name = spec["name"]
    if name not in NETS:
        raise ValueError(f"build_net: unknown architecture {name!r}; expected one of {sorted(NETS)}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"build_net: 'kwargs' must be a dict, got {type(kwargs).__name__}")
    try:
        return NETS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"build_net: bad arguments for {name}: {err}") from err
