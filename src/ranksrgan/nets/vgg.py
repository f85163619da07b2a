"""Frozen VGG19 feature extractor for the perceptual loss (torchvision weights)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["VGGFeatureExtractor", "vgg19_layer_names"]

_VGG19_CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_layer_names(use_bn: bool = False) -> list[str]:
    """Names of torchvision's ``vgg19(_bn).features`` children in order.

    ``conv{b}_{i}``, (``bn{b}_{i}``,) ``relu{b}_{i}`` for each conv, then ``pool{b}`` per block.
    """
    names = []
    for block, count in enumerate(_VGG19_CONVS_PER_BLOCK, start=1):
        for i in range(1, count + 1):
            names.append(f"conv{block}_{i}")
            if use_bn:
                names.append(f"bn{block}_{i}")
            names.append(f"relu{block}_{i}")
        names.append(f"pool{block}")
    return names


class VGGFeatureExtractor(nn.Module):
    """VGG19 features up to a named layer; frozen and always in eval mode.

    The default (``conv5_4``, before its ReLU) is the "VGG54" feature of SRGAN / RankSRGAN.

    Args:
        layer: Last layer kept: ``"convX_Y"`` or ``"reluX_Y"`` (X in 1..5; Y in 1..2 for
            blocks 1-2, 1..4 for blocks 3-5).
        use_bn: Use torchvision's ``vgg19_bn`` instead of ``vgg19``.
        pretrained: Load torchvision's ImageNet weights (``IMAGENET1K_V1``; downloaded into the
            torch hub cache on first use). False gives random weights (tests).
        use_input_norm: Normalise the [0, 1] RGB input with the ImageNet mean/std.
        before_relu: For a ``convX_Y`` layer: True stops before its ReLU (after its BN when
            ``use_bn``), False includes the ReLU. A ``reluX_Y`` layer always includes the ReLU.

    Shape: input ``(B, 3, H, W)`` RGB in [0, 1]; output ``(B, C_layer, H / 2^k, W / 2^k)`` where k
    is the number of pooling layers before ``layer``.
    """

    def __init__(
        self,
        layer: str = "conv5_4",
        use_bn: bool = False,
        pretrained: bool = True,
        use_input_norm: bool = True,
        before_relu: bool = True,
    ) -> None:
        super().__init__()
        names = vgg19_layer_names(use_bn)
        if not (layer.startswith("conv") or layer.startswith("relu")) or layer not in names:
            valid = [n for n in names if n.startswith(("conv", "relu"))]
            raise ValueError(f"VGGFeatureExtractor: unknown layer {layer!r}; expected one of {valid}")
        block_index = layer[4:]
        if layer.startswith("relu") or not before_relu:
            last = names.index(f"relu{block_index}")
        else:
            last = names.index(f"bn{block_index}") if use_bn else names.index(layer)
        self.config = {
            "layer": layer,
            "use_bn": use_bn,
            "use_input_norm": use_input_norm,
            "before_relu": before_relu,
        }
        features = _vgg19_features(use_bn)
        if pretrained:
            state = _imagenet_state_dict(use_bn)
            features.load_state_dict({k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")})
        self.features = nn.Sequential(*list(features.children())[: last + 1])
        self.use_input_norm = use_input_norm
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        """Ignore ``mode``: the extractor always stays in eval mode."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of ``x`` ``(B, 3, H, W)`` in [0, 1]."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 3):
            raise ValueError(f"VGGFeatureExtractor: expected input of shape (B, 3, H, W), got {tuple(x.shape)}")
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        return self.features(x)


def _vgg19_features(use_bn: bool) -> nn.Sequential:
    """VGG19(-BN) ``features`` with torchvision's exact child order (so its weights load by index)."""
    layers: list[nn.Module] = []
    channels = 3
    for block, count in enumerate(_VGG19_CONVS_PER_BLOCK):
        width = min(64 * 2**block, 512)
        for _ in range(count):
            layers.append(nn.Conv2d(channels, width, 3, padding=1))
            if use_bn:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def _imagenet_state_dict(use_bn: bool) -> dict[str, torch.Tensor]:
    """torchvision's IMAGENET1K_V1 VGG19(-BN) state dict (downloaded into the torch hub cache)."""
    from torchvision import models

    weights = models.VGG19_BN_Weights.IMAGENET1K_V1 if use_bn else models.VGG19_Weights.IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=False)
    except Exception as err:  # download / network / cache errors come in many types
        raise RuntimeError(
            f"VGGFeatureExtractor: the torchvision ImageNet weights {weights} could not be downloaded or "
            f"loaded ({type(err).__name__}: {err}). Pass pretrained=False, or pre-populate the torch hub "
            f"cache ({torch.hub.get_dir()}/checkpoints) with {weights.url.rsplit('/', 1)[-1]}."
        ) from err
