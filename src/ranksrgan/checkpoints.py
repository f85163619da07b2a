"""Load generators and Rankers from our checkpoints and from the authors' released files.

Accepted files:

* our Lightning ``.ckpt`` files: ``state_dict`` keys ``generator.*`` (SR module; with
  ``generator_ema.*`` too, the weights' moving average, which :func:`load_generator` returns) or
  ``ranker.*`` (Ranker module) and a top-level ``"ranksrgan_arch": {"name": ..., "kwargs": {...}}``;
* our ``.pth`` files from :func:`ranksrgan.export.save_state_dict`
  (``{"ranksrgan_arch": ..., "state_dict": ...}``);
* the authors' released state dicts, recognised by their keys (with or without a ``module.``
  prefix; BasicSR ``params`` / ``params_ema`` wrappers too); :mod:`ranksrgan.checkpoint_layouts`
  lists the layouts and maps them to ours.

Loading never runs pickled code: files are read with ``torch.load(..., weights_only=True)`` and
anything that needs more is refused.

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ranksrgan.checkpoint_layouts import GENERATOR_LAYOUTS, RANKER_LAYOUTS, Converter, LayoutError, StateDict
from ranksrgan.nets import NETS, Ranker, build_net

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
        name, kwargs, state = _resolve(obj, path, "generator", GENERATOR_LAYOUTS, _GENERATORS)
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
        name, kwargs, state = _resolve(obj, path, "ranker", RANKER_LAYOUTS, ("Ranker",))
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
        except LayoutError as err:
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
