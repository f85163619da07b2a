"""Load generators and Rankers from our checkpoints and from the authors' released files.

Accepted files:

* our Lightning ``.ckpt`` files: ``state_dict`` keys ``generator.*`` (SR module; with
  ``generator_ema.*`` too, the weights' moving average, which :func:`load_generator` returns) or
  ``ranker.*`` (Ranker module) and a top-level ``"ranksrgan_arch": {"name": ..., "kwargs": {...}}``;
* our ``.pth`` files from :func:`ranksrgan.export.save_state_dict`
  (``{"ranksrgan_arch": ..., "state_dict": ...}``);
* the authors' released state dicts, recognised by their keys (with or without a ``module.``
  prefix; BasicSR ``params`` / ``params_ema`` wrappers too):

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
tensor shapes. Loading never runs pickled code: files are read with
``torch.load(..., weights_only=True)`` and anything that needs more is refused.

Errors (each a :class:`CheckpointError`, which is a ``ValueError``; each names the file):
:class:`UnsafeCheckpointError` for a file whose pickle asks for objects beyond tensors and plain
containers (refused: it could run code); :class:`CheckpointReadError` for a file that is no
readable checkpoint at all (random bytes, text, an HTML page saved by a download tool, a
truncated or corrupt file); :class:`CheckpointError` itself for a readable file whose weights
fit no known network (:func:`load_generator` / :func:`load_ranker`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ranksrgan.nets import NETS, RANKER_VARIANTS, Ranker, build_net
from ranksrgan.nets.ranker import vgg_body_specs

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "CheckpointError",
    "CheckpointReadError",
    "UnsafeCheckpointError",
    "is_checkpoint_path",
    "load_generator",
    "load_ranker",
    "read_checkpoint",
]

#: File suffixes of checkpoints (ours: ``.ckpt``; the authors' releases: ``.pth`` / ``.pt``).
CHECKPOINT_SUFFIXES = (".ckpt", ".pth", ".pt")


def is_checkpoint_path(value: str | os.PathLike) -> bool:
    """Whether a config or command-line value names a checkpoint file rather than a recipe or
    a folder: it holds a ``/`` or ends with a :data:`CHECKPOINT_SUFFIXES` suffix (any case).

    >>> is_checkpoint_path("runs/ranker.ckpt"), is_checkpoint_path("G.PTH"), is_checkpoint_path("srgan")
    (True, True, False)
    """
    value = str(value)
    return "/" in value or value.lower().endswith(CHECKPOINT_SUFFIXES)


_GENERATORS = ("SRResNet", "RRDBNet")
_MAX_LISTED = 8

StateDict = dict[str, torch.Tensor]
# A layout converter returns (arch name, constructor kwargs, state dict in our key names),
# or None when the keys are not in its layout.
Converter = Callable[[StateDict], "tuple[str, dict[str, Any], StateDict] | None"]


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used (base of the two errors below)."""


class UnsafeCheckpointError(CheckpointError):
    """The file can only be read by unpickling arbitrary objects (which can run code)."""


class CheckpointReadError(CheckpointError):
    """The file is not a readable PyTorch checkpoint: another kind of file, or a corrupt or truncated one."""


# What the weights-only unpickler says when a VALID pickle asks for something it will not build;
# every other complaint of it (unknown opcode, bad stack ...) means the bytes are no valid pickle.
_REFUSAL_MARKERS = (
    "Unsupported global",
    "unsupported GLOBAL",
    "Can only create new object",
    "Trying to call reduce",
    "Can only build",
    "must be imported to load",
)


class _LayoutError(ValueError):
    """The keys look like a known layout but cannot be mapped (message without the file name)."""


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Read a checkpoint with ``torch.load(map_location="cpu", weights_only=True)``.

    Raises:
        FileNotFoundError: ``path`` does not exist. IsADirectoryError: ``path`` is a folder.
        UnsafeCheckpointError: the file holds objects beyond tensors and plain containers.
        CheckpointReadError: the file is not a PyTorch checkpoint, or a corrupt/truncated one.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointReadError(f"{path}: not a readable PyTorch checkpoint: the file is empty")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types for foreign or corrupt files
        text = str(err)
        if "Weights only load failed" in text and any(m in text for m in _REFUSAL_MARKERS):
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
            what = f" (it holds {found.group(1)})" if found else ""
            hint = (
                " Lightning checkpoints must store their hyper-parameters as plain containers "
                "(dict/list/str/number), not OmegaConf or other objects."
                if path.suffix == ".ckpt"
                else ""
            )
            raise UnsafeCheckpointError(
                f"{path}: refused: reading it needs arbitrary unpickling, which can run code{what}.{hint}"
            ) from err
        raise CheckpointReadError(
            f"{path}: not a readable PyTorch checkpoint: the file is corrupt, truncated or of another kind ({_load_failure(err)})"
        ) from err


def _load_failure(err: Exception) -> str:
    """The gist of a ``torch.load`` failure in a few words (torch's messages run to paragraphs)."""
    text = str(err)
    found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", text)
    if found:
        return f"invalid pickle data: {found.group(1)}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    if "PytorchStreamReader" in first:
        return first.split(". ")[0]
    if isinstance(err, EOFError):
        return "the data ends early"
    if isinstance(err, KeyError):  # the legacy reader's opcode table: the first bytes are no pickle
        return "neither a zip archive nor pickle data"
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load an SR generator (:class:`SRResNet` or :class:`RRDBNet`) in eval mode.

    Args:
        path: Our ``.ckpt`` / ``.pth`` file or a released generator state dict (see module doc).
        device: Device to move the network to.

    Returns:
        The network in eval mode (gradients left enabled, for fine-tuning). It maps
        ``(B, C, h, w)`` in [0, 1] to ``(B, C, s*h, s*w)``.

    Example (a tiny x2 SRResNet saved as a plain state dict, as the released files are):

    >>> import tempfile, torch
    >>> from ranksrgan.nets.srresnet import SRResNet
    >>> path = Path(tempfile.mkdtemp()) / "G.pth"
    >>> torch.save(SRResNet(num_features=8, num_blocks=1, scale=2).state_dict(), path)
    >>> generator = load_generator(path)
    >>> with torch.no_grad():
    ...     generator(torch.rand(1, 3, 8, 8)).shape
    torch.Size([1, 3, 16, 16])
    """
    obj = read_checkpoint(path)
    with _as_checkpoint_error():
        name, kwargs, state = _resolve(obj, path, "generator", _GENERATOR_LAYOUTS, _GENERATORS)
        model = _instantiate(name, kwargs, state, path)
    return model.to(device).eval()


def load_ranker(path: str | os.PathLike, device: str | torch.device = "cpu") -> Ranker:
    """Load a :class:`Ranker`, frozen (no gradients, BatchNorm pinned in eval mode).

    Args:
        path: Our ``.ckpt`` / ``.pth`` file or a released Ranker state dict (see module doc).
        device: Device to move the network to.

    Returns:
        The frozen Ranker: ``(B, 3, H, W)`` in [0, 1] -> ``(B,)`` scores, higher = worse.

    Example (a tiny VGG-8 Ranker saved as a plain state dict):

    >>> import tempfile, torch
    >>> from ranksrgan.nets.ranker import Ranker
    >>> path = Path(tempfile.mkdtemp()) / "R.pth"
    >>> torch.save(Ranker("vgg8", num_features=4).state_dict(), path)
    >>> ranker = load_ranker(path)
    >>> ranker(torch.rand(2, 3, 32, 32)).shape, ranker.training
    (torch.Size([2]), False)
    """
    obj = read_checkpoint(path)
    with _as_checkpoint_error():
        name, kwargs, state = _resolve(obj, path, "ranker", _RANKER_LAYOUTS, ("Ranker",))
        model = _instantiate(name, kwargs, state, path)
    assert isinstance(model, Ranker)
    return model.freeze().to(device)


@contextmanager
def _as_checkpoint_error() -> Iterator[None]:
    """Re-raise a plain ``ValueError`` (weights that fit no network) as :class:`CheckpointError`,
    same message, so callers can tell an unusable checkpoint from other bad values."""
    try:
        yield
    except CheckpointError:
        raise
    except ValueError as err:
        raise CheckpointError(str(err)) from err


# --------------------------------------------------------------------------- file -> state dict


def _resolve(
    obj: Any, path: str | os.PathLike, component: str, layouts: list[Converter], names: tuple[str, ...]
) -> tuple[str, dict[str, Any], StateDict]:
    """Find the arch spec and the (renamed) state dict of ``component`` in a loaded file."""
    state = _find_state_dict(obj, path)
    if component == "generator" and any(k.startswith("generator_ema.") for k in state):
        component = "generator_ema"  # an SR-module checkpoint with an EMA publishes the average
    state = _select(state, component)
    spec = obj.get("ranksrgan_arch") if isinstance(obj, dict) else None
    if spec is not None:
        if not isinstance(spec, dict) or spec.get("name") not in NETS:
            raise ValueError(f"{path}: malformed 'ranksrgan_arch' entry {spec!r}")
        if spec["name"] not in names:
            hint = {"Ranker": "; use load_ranker", "SRResNet": "; use load_generator", "RRDBNet": "; use load_generator"}
            raise ValueError(f"{path}: holds a {spec['name']}, not a {component}{hint.get(spec['name'], '')}")
        return spec["name"], dict(spec.get("kwargs") or {}), state
    for convert in layouts:
        try:
            found = convert(state)
        except _LayoutError as err:
            raise ValueError(f"{path}: {err}") from err
        if found is not None:
            return found
    raise ValueError(f"{path}: matches no known {component} layout; {_closest_mismatch(state, names)}")


def _find_state_dict(obj: Any, path: str | os.PathLike) -> StateDict:
    """The tensor dict inside a file: ``state_dict``, BasicSR ``params_ema``/``params``, or the file."""
    state = obj
    if isinstance(obj, dict):
        for key in ("state_dict", "params_ema", "params"):
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise ValueError(
            f"{path}: no state dict found (expected a dict of tensors, or one under 'state_dict', 'params_ema' or 'params')"
        )
    return state


def _select(state: StateDict, component: str) -> StateDict:
    """Keep the ``component.`` sub-dict (Lightning) when present; strip ``module.`` prefixes."""
    prefix = component + "."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _instantiate(name: str, kwargs: dict[str, Any], state: StateDict, path: str | os.PathLike) -> nn.Module:
    """Build ``name(**kwargs)`` and load ``state`` strictly; mismatches become a ValueError."""
    try:
        model = build_net({"name": name, "kwargs": kwargs})
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    own = model.state_dict()
    state = dict(state)
    for key in own:  # files from before PyTorch 0.4.1 have no BatchNorm step counter
        if key.endswith("num_batches_tracked") and key not in state:
            stem = key[: -len("num_batches_tracked")]
            if stem + "running_mean" in state:
                state[key] = torch.zeros((), dtype=torch.long)
    problems = _mismatch(own, state)
    if problems:
        raise ValueError(f"{path}: weights do not fit {name}({_kwargs_text(kwargs)}): {problems}")
    model.load_state_dict(state, strict=True)
    return model


def _mismatch(expected: StateDict, state: StateDict) -> str:
    """Human-readable missing / unexpected / wrong-shape key lists ('' when they match)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatch", shapes)):
        if items:
            shown = ", ".join(items[:_MAX_LISTED])
            more = f", ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
            parts.append(f"{label} ({len(items)}): {shown}{more}")
    return "; ".join(parts)


def _closest_mismatch(state: StateDict, names: tuple[str, ...]) -> str:
    """Compare the keys with the default-size native layout that shares most keys."""
    best = None
    for name in names:
        with torch.device("meta"):
            own = NETS[name]().state_dict()
        shared = len(own.keys() & state.keys())
        if best is None or shared > best[0]:
            best = (shared, name, own)
    _, name, own = best
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = [f"closest is {name}"]
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected)):
        if items:
            shown = ", ".join(items[:_MAX_LISTED])
            more = f", ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
            parts.append(f"{label} ({len(items)}): {shown}{more}")
    return "; ".join(parts)


def _kwargs_text(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


# --------------------------------------------------------------------------- layout helpers


def _indices(state: StateDict, pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.fullmatch(k))})


def _shape(state: StateDict, key: str) -> torch.Size:
    if key not in state:
        raise _LayoutError(f"layout recognised but key {key!r} is missing")
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
    raise _LayoutError(f"upsampling convs with {widths} output channels fit no scale (nf={nf})")


def _rrdb_scale(in_conv: int, out_channels: int) -> tuple[int, int]:
    """(scale, in_channels) of an RRDBNet from conv_first's input channels (in == out assumed)."""
    for scale, factor in ((4, 1), (2, 4), (1, 16)):
        if in_conv == out_channels * factor:
            return scale, out_channels
    raise _LayoutError(f"conv_first takes {in_conv} channels, which fits no scale for {out_channels} outputs")


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
        raise _LayoutError(f"residual blocks model.1.sub.N are not numbered 0..{nb - 1}: {blocks}")
    tail = _tail_indices(state)
    if len(tail) not in (3, 4):
        raise _LayoutError(f"expected 3 or 4 convs after the trunk (model.2 ...), found model.{tail}")
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
        raise _LayoutError(f"expected two upsampling convs, HRconv and conv_last after the trunk, found model.{tail}")
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


_GENERATOR_LAYOUTS: list[Converter] = [_srresnet_new, _srresnet_old, _rrdb_esrgan, _rrdb_basicsr, _rrdb_oldest]


# --------------------------------------------------------------------------- Ranker layouts


def _variant_for(num_convs: int) -> str:
    for variant, per_block in RANKER_VARIANTS.items():
        if num_convs == 2 + 4 * (per_block + 1):
            return variant
    raise _LayoutError(f"{num_convs} conv layers fit no Ranker variant (6, 10 or 14 expected)")


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
            raise _LayoutError(f"features.{n} is neither a conv nor a batch norm")
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
            raise _LayoutError(
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


_RANKER_LAYOUTS: list[Converter] = [_ranker_new, _ranker_features]
