"""Save and export trained nets: plain state dicts, TorchScript and ONNX (all written atomically).

A state dict saved here is ``{"ranksrgan_arch": {"name": ..., "kwargs": ...}, "state_dict": ...}``
and loads back with :func:`ranksrgan.checkpoints.load_generator` / ``load_ranker``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ranksrgan.io import atomic_path
from ranksrgan.nets import net_spec

__all__ = ["export_onnx", "export_torchscript", "save_state_dict"]


def save_state_dict(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save ``model``'s weights (on CPU) with its architecture spec; returns the path.

    Args:
        model: A net from :data:`ranksrgan.nets.NETS` (SRResNet, RRDBNet, Ranker, VGGDiscriminator).
        path: Output file (``.pth``) (folders are created).
    """
    payload = {
        "ranksrgan_arch": net_spec(model),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _enter_eval(model: nn.Module) -> Callable[[], None]:
    """Put ``model`` in eval mode; return a function that restores its previous mode."""
    was_training = model.training
    model.eval()
    return lambda: model.train(was_training)


def export_torchscript(model: nn.Module, path: str | os.PathLike, example: torch.Tensor) -> Path:
    """Trace ``model`` (in eval mode) on ``example`` and save the TorchScript module.

    The traced module accepts other batch sizes and image sizes of the same rank (all nets here
    are fully convolutional apart from the discriminator's fixed input size). Load it with
    ``torch.jit.load(path)``.

    Args:
        model: The net to export.
        path: Output file (``.pt``) (folders are created).
        example: An input batch, e.g. ``torch.rand(1, 3, 64, 64)``.
    """
    restore = _enter_eval(model)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated.*")
            traced = torch.jit.trace(model, example, check_trace=False)  # checked below, much faster
            expected, got = model(example), traced(example)
            if not torch.allclose(expected, got, rtol=1e-4, atol=1e-5):
                raise RuntimeError(f"export_torchscript: the traced {type(model).__name__} does not reproduce the eager output")
            with atomic_path(path) as tmp:
                torch.jit.save(traced, str(tmp))
    finally:
        restore()
    return Path(path)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example: torch.Tensor,
    dynamic_hw: bool = True,
    opset: int = 17,
) -> Path:
    """Export ``model`` (in eval mode) to ONNX with input ``"input"`` and output ``"output"``.

    Uses PyTorch's TorchScript-based exporter (``dynamo=False``), which needs only the ``onnx``
    package. The batch axis is always dynamic.

    Args:
        model: The net to export.
        path: Output file (``.onnx``) (folders are created).
        example: An input batch, e.g. ``torch.rand(1, 3, 64, 64)``.
        dynamic_hw: Also make height and width dynamic (not for the discriminator, whose
            linear head fixes the input size).
        opset: ONNX opset version.
    """
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
    out_axes = {0: "batch"}
    restore = _enter_eval(model)
    try:
        with torch.no_grad():
            out_rank = model(example).dim()
        if dynamic_hw and out_rank == 4:
            out_axes = {0: "batch", 2: "out_height", 3: "out_width"}
        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message=".*will be removed.*")
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": axes, "output": out_axes},
                opset_version=opset,
            )
    finally:
        restore()
    return Path(path)
