"""The authors' released state-dict layouts and their mapping to our key names.

Recognised layouts (the ``module.`` prefix and the BasicSR wrappers are removed before):

- SRResNet, new layout: ``conv_first``, ``recon_trunk.{i}.conv{1,2}``, ``LRconv``,
  ``upconv1`` [, ``upconv2``], ``HRconv``, ``conv_last``;
- SRResNet, old flattened layout: ``model.0`` (conv_first), ``model.1.sub.{i}.res.{0,2}``
  (block i conv1/conv2), ``model.1.sub.{nb}`` (LRconv), then the upsampling convs, HRconv and
  conv_last at the remaining top-level indices (``model.2, 5, 8, 10`` at x4);
- RRDBNet: ESRGAN layout (``RRDB_trunk.{i}.RDB{k}.conv{m}``, ``trunk_conv``, ``upconv{1,2}``,
  ``HRconv``), BasicSR layout (``body.{i}.rdb{k}``, ``conv_body``, ``conv_up{1,2}``,
  ``conv_hr``) and the oldest flattened layout (``model.1.sub.{i}.RDB{k}.conv{m}.0``,
  ``model.3, 6, 8, 10``);
- Ranker: ``conv{i}_{j}``, ``bn{i}_{j}``, ``classifier.{0,2}``; or the older ``features.N`` /
  ``classifier.N`` layout (convs and BNs matched by order).

Architecture sizes (blocks, features, scale, variant) are inferred from the key counts and
tensor shapes. A layout converter returns ``(arch name, constructor kwargs, state dict in our key
names)``, or None when the keys are not in its layout; :class:`LayoutError` when they look like
it but cannot be mapped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from ranksrgan.nets import RANKER_VARIANTS
from ranksrgan.nets.ranker import vgg_body_specs

__all__ = ["StateDict", "Converter", "LayoutError", "GENERATOR_LAYOUTS", "RANKER_LAYOUTS"]

StateDict = dict[str, torch.Tensor]
Converter = Callable[[StateDict], "tuple[str, dict[str, Any], StateDict] | None"]


class LayoutError(ValueError):
    """The keys look like a known layout but cannot be mapped (message without the file name)."""


# --------------------------------------------------------------------------- layout helpers


def _indices(state: StateDict, pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.fullmatch(k))})


def _shape(state: StateDict, key: str) -> torch.Size:
    if key not in state:
        raise LayoutError(f"layout recognised but key {key!r} is missing")
    return state[key].shape


def _rename(state: StateDict, old: str, new: str, out: StateDict) -> None:
    """Move ``old.weight`` / ``old.bias`` to ``new.*`` in ``out`` (those present)."""
    for suffix in ("weight", "bias"):
        if f"{old}.{suffix}" in state:
            out[f"{new}.{suffix}"] = state[f"{old}.{suffix}"]


def _scale_from_upconvs(widths: list[int], nf: int) -> int:
    """SR scale from the output channels of the PixelShuffle convs."""
    if widths == [4 * nf, 4 * nf]:
        return 4
    if widths == [4 * nf]:
        return 2
    if widths == [9 * nf]:
        return 3
    raise LayoutError(f"upsampling convs with {widths} output channels fit no scale (nf={nf})")


def _rrdb_scale(in_conv: int, out_channels: int) -> tuple[int, int]:
    """(scale, in_channels) of an RRDBNet from conv_first's input channels (in == out assumed)."""
    for scale, factor in ((4, 1), (2, 4), (1, 16)):
        if in_conv == out_channels * factor:
            return scale, out_channels
    raise LayoutError(f"conv_first takes {in_conv} channels, which fits no scale for {out_channels} outputs")


# --------------------------------------------------------------------------- generator layouts


def _srresnet_new(state: StateDict) -> tuple[str, dict[str, Any], StateDict] | None:
    if "recon_trunk.0.conv1.weight" not in state or "conv_first.weight" not in state:
        return None
    nf, in_channels = _shape(state, "conv_first.weight")[:2]
    widths = [_shape(state, f"{k}.weight")[0] for k in ("upconv1", "upconv2") if f"{k}.weight" in state]
    kwargs = {
        "in_channels": in_channels,
        "out_channels": _shape(state, "conv_last.weight")[0],
        "num_features": nf,
        "num_blocks": len(_indices(state, r"recon_trunk\.(\d+)\.conv1\.weight")),
        "scale": _scale_from_upconvs(widths, nf),
    }
    return "SRResNet", kwargs, state


def _tail_indices(state: StateDict) -> list[int]:
    """Top-level ``model.N`` conv indices after the trunk (N >= 2), in order."""
    return [n for n in _indices(state, r"model\.(\d+)\.weight") if n >= 2]


def _srresnet_old(state: StateDict) -> tuple[str, dict[str, Any], StateDict] | None:
    if "model.0.weight" not in state or "model.1.sub.0.res.0.weight" not in state:
        return None
    blocks = _indices(state, r"model\.1\.sub\.(\d+)\.res\.0\.weight")
    nb = len(blocks)
    if blocks != list(range(nb)):
        raise LayoutError(f"residual blocks model.1.sub.N are not numbered 0..{nb - 1}: {blocks}")
    tail = _tail_indices(state)
    if len(tail) not in (3, 4):
        raise LayoutError(f"expected 3 or 4 convs after the trunk (model.2 ...), found model.{tail}")
    nf, in_channels = _shape(state, "model.0.weight")[:2]
    out: StateDict = {}
    _rename(state, "model.0", "conv_first", out)
    for i in blocks:
        _rename(state, f"model.1.sub.{i}.res.0", f"recon_trunk.{i}.conv1", out)
        _rename(state, f"model.1.sub.{i}.res.2", f"recon_trunk.{i}.conv2", out)
    _rename(state, f"model.1.sub.{nb}", "LRconv", out)
    *ups, hr, last = tail
    for j, n in enumerate(ups, start=1):
        _rename(state, f"model.{n}", f"upconv{j}", out)
    _rename(state, f"model.{hr}", "HRconv", out)
    _rename(state, f"model.{last}", "conv_last", out)
    _carry_unmapped(state, out, r"model\.(0|1\.sub\.\d+\.res\.[02]|1\.sub\.\d+|\d+)\.(weight|bias)")
    kwargs = {
        "in_channels": in_channels,
        "out_channels": _shape(state, f"model.{last}.weight")[0],
        "num_features": nf,
        "num_blocks": nb,
        "scale": _scale_from_upconvs([_shape(state, f"model.{n}.weight")[0] for n in ups], nf),
    }
    return "SRResNet", kwargs, out


def _carry_unmapped(state: StateDict, out: StateDict, mapped: str) -> None:
    """Keep keys outside the mapped pattern under their own names (so they show as unexpected)."""
    regex = re.compile(mapped)
    for key, value in state.items():
        if not regex.fullmatch(key):
            out[key] = value


def _rrdb_kwargs(state: StateDict, first: str, block: str, rdb1_conv1: str, last: str) -> dict[str, Any]:
    nf, in_conv = _shape(state, f"{first}.weight")[:2]
    out_channels = _shape(state, f"{last}.weight")[0]
    scale, in_channels = _rrdb_scale(in_conv, out_channels)
    return {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "num_features": nf,
        "num_blocks": len(_indices(state, block)),
        "growth": _shape(state, rdb1_conv1)[0],
        "scale": scale,
    }


def _rrdb_esrgan(state: StateDict) -> tuple[str, dict[str, Any], StateDict] | None:
    if "RRDB_trunk.0.RDB1.conv1.weight" not in state:
        return None
    kwargs = _rrdb_kwargs(
        state, "conv_first", r"RRDB_trunk\.(\d+)\.RDB1\.conv1\.weight", "RRDB_trunk.0.RDB1.conv1.weight", "conv_last"
    )
    return "RRDBNet", kwargs, state


_BASICSR_RRDB_NAMES = {
    "conv_body": "trunk_conv",
    "conv_up1": "upconv1",
    "conv_up2": "upconv2",
    "conv_hr": "HRconv",
}


def _rrdb_basicsr(state: StateDict) -> tuple[str, dict[str, Any], StateDict] | None:
    if "body.0.rdb1.conv1.weight" not in state:
        return None
    out: StateDict = {}
    for key, value in state.items():
        m = re.fullmatch(r"body\.(\d+)\.rdb([123])\.(conv[1-5]\.(?:weight|bias))", key)
        if m:
            out[f"RRDB_trunk.{m.group(1)}.RDB{m.group(2)}.{m.group(3)}"] = value
            continue
        head, _, suffix = key.partition(".")
        out[f"{_BASICSR_RRDB_NAMES.get(head, head)}.{suffix}" if suffix else key] = value
    kwargs = _rrdb_kwargs(
        out, "conv_first", r"RRDB_trunk\.(\d+)\.RDB1\.conv1\.weight", "RRDB_trunk.0.RDB1.conv1.weight", "conv_last"
    )
    return "RRDBNet", kwargs, out


def _rrdb_oldest(state: StateDict) -> tuple[str, dict[str, Any], StateDict] | None:
    if "model.0.weight" not in state or "model.1.sub.0.RDB1.conv1.0.weight" not in state:
        return None
    blocks = _indices(state, r"model\.1\.sub\.(\d+)\.RDB1\.conv1\.0\.weight")
    nb = len(blocks)
    tail = _tail_indices(state)
    if len(tail) != 4:
        raise LayoutError(f"expected two upsampling convs, HRconv and conv_last after the trunk, found model.{tail}")
    out: StateDict = {}
    _rename(state, "model.0", "conv_first", out)
    for i in blocks:
        for k in (1, 2, 3):
            for m in range(1, 6):
                _rename(state, f"model.1.sub.{i}.RDB{k}.conv{m}.0", f"RRDB_trunk.{i}.RDB{k}.conv{m}", out)
    _rename(state, f"model.1.sub.{nb}", "trunk_conv", out)
    for n, name in zip(tail, ("upconv1", "upconv2", "HRconv", "conv_last")):
        _rename(state, f"model.{n}", name, out)
    _carry_unmapped(state, out, r"model\.(\d+|1\.sub\.\d+|1\.sub\.\d+\.RDB[123]\.conv[1-5]\.0)\.(weight|bias)")
    kwargs = _rrdb_kwargs(
        out, "conv_first", r"RRDB_trunk\.(\d+)\.RDB1\.conv1\.weight", "RRDB_trunk.0.RDB1.conv1.weight", "conv_last"
    )
    return "RRDBNet", kwargs, out


GENERATOR_LAYOUTS: list[Converter] = [_srresnet_new, _srresnet_old, _rrdb_esrgan, _rrdb_basicsr, _rrdb_oldest]


# --------------------------------------------------------------------------- Ranker layouts


def _variant_for(num_convs: int) -> str:
    for variant, per_block in RANKER_VARIANTS.items():
        if num_convs == 2 + 4 * (per_block + 1):
            return variant
    raise LayoutError(f"{num_convs} conv layers fit no Ranker variant (6, 10 or 14 expected)")


def _ranker_new(state: StateDict) -> tuple[str, dict[str, Any], StateDict] | None:
    if "conv0_0.weight" not in state or "classifier.0.weight" not in state:
        return None
    convs = [k for k in state if re.fullmatch(r"conv\d+_\d+\.weight", k)]
    nf, in_channels = _shape(state, "conv0_0.weight")[:2]
    kwargs = {
        "variant": _variant_for(len(convs)),
        "in_channels": in_channels,
        "num_features": nf,
        "conv_bias": "conv0_1.bias" in state,
    }
    return "Ranker", kwargs, state


def _ranker_features(state: StateDict) -> tuple[str, dict[str, Any], StateDict] | None:
    if "features.0.weight" not in state or "classifier.0.weight" not in state:
        return None
    layers = []  # (index, "conv" | "bn") in order
    for n in _indices(state, r"features\.(\d+)\.weight"):
        if f"features.{n}.running_mean" in state:
            layers.append((n, "bn"))
        elif state[f"features.{n}.weight"].dim() == 4:
            layers.append((n, "conv"))
        else:
            raise LayoutError(f"features.{n} is neither a conv nor a batch norm")
    convs = [i for i, (_, kind) in enumerate(layers) if kind == "conv"]
    nf, in_channels = _shape(state, "features.0.weight")[:2]
    variant = _variant_for(len(convs))
    specs = vgg_body_specs(in_channels, nf, RANKER_VARIANTS[variant])
    out: StateDict = {}
    used: set[str] = set()
    for spec, pos in zip(specs, convs):
        tag, has_bn = spec[0], spec[5]
        conv_index = layers[pos][0]
        _rename(state, f"features.{conv_index}", f"conv{tag}", out)
        used.update({f"features.{conv_index}.weight", f"features.{conv_index}.bias"})
        follows_bn = pos + 1 < len(layers) and layers[pos + 1][1] == "bn"
        if follows_bn != has_bn:
            raise LayoutError(
                f"features.{conv_index} (conv{tag}) is {'' if follows_bn else 'not '}followed by a batch norm, "
                f"which does not fit the {variant} Ranker"
            )
        if has_bn:
            bn_index = layers[pos + 1][0]
            for suffix in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                if f"features.{bn_index}.{suffix}" in state:
                    out[f"bn{tag}.{suffix}"] = state[f"features.{bn_index}.{suffix}"]
                    used.add(f"features.{bn_index}.{suffix}")
    for key, value in state.items():
        if key not in used:
            out[key] = value
    conv0_1 = layers[convs[1]][0]
    kwargs = {
        "variant": variant,
        "in_channels": in_channels,
        "num_features": nf,
        "conv_bias": f"features.{conv0_1}.bias" in state,
    }
    return "Ranker", kwargs, out


RANKER_LAYOUTS: list[Converter] = [_ranker_new, _ranker_features]
