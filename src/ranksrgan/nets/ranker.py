"""Ranker: the Siamese VGG-style scorer of RankSRGAN, and the 10-conv VGG body it shares
with the discriminator.

VGG-12 (the only variant in the authors' code; 10 convs + 2 linear layers), input 296x296:

| block | conv a (3x3, s1, p1) | conv b (4x4, s2, p1) |
|---|---|---|
| 0 | ``conv0_0`` 3 -> 64, no BN | ``conv0_1`` 64 -> 64, ``bn0_1`` |
| 1 | ``conv1_0`` 64 -> 128, ``bn1_0`` | ``conv1_1`` 128 -> 128, ``bn1_1`` |
| 2 | ``conv2_0`` 128 -> 256, ``bn2_0`` | ``conv2_1`` 256 -> 256, ``bn2_1`` |
| 3 | ``conv3_0`` 256 -> 512, ``bn3_0`` | ``conv3_1`` 512 -> 512, ``bn3_1`` |
| 4 | ``conv4_0`` 512 -> 512, ``bn4_0`` | ``conv4_1`` 512 -> 512, ``bn4_1`` |

LeakyReLU(0.2) after every conv (after its BN); each 4x4/s2 conv halves the size with floor
(296 -> 148 -> 74 -> 37 -> 18 -> 9). Head: global average pool -> ``classifier.0``
Linear(512, 100) -> LeakyReLU(0.2) -> ``classifier.2`` Linear(100, 1). Input RGB in [0, 1],
no mean/std normalisation.

The paper's VGG-8 and VGG-16 (Table 2; no code released) are built here in the same family:
blocks 1-4 hold 0 (VGG-8), 1 (VGG-12) or 2 (VGG-16) 3x3 convs before their 4x4/s2 conv, and
the channel change happens in the first conv of a block. Block 0 is the same in all three.
With conv biases (the released Rankers have them) the counts are 7,069,961 / 13,734,281 /
19,194,377 parameters, against 7,069K / 13,734K / 19,194K in Table 2 (VGG-8 is 0.01% above;
the paper appears to truncate to whole K). Within a block, the
convs are numbered ``conv{i}_{j}`` in order (so in VGG-16 the 4x4/s2 conv is ``conv{i}_2``, in
VGG-8 it is ``conv{i}_0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RANKER_VARIANTS", "Ranker", "vgg_body_specs", "add_vgg_body", "vgg_body_forward"]

#: variant name -> number of 3x3 convs before the 4x4/s2 conv in blocks 1..4
RANKER_VARIANTS: dict[str, int] = {"vgg8": 0, "vgg12": 1, "vgg16": 2}

_BLOCK_WIDTH = (1, 2, 4, 8, 8)  # channels of block i = num_features * _BLOCK_WIDTH[i]

# (tag "i_j", in channels, out channels, kernel, stride, has batch norm)
LayerSpec = tuple[str, int, int, int, int, bool]


def vgg_body_specs(in_channels: int, num_features: int, convs_per_block: int) -> list[LayerSpec]:
    """Layer list of the VGG-style body (5 blocks, each ending in a 4x4/s2 conv).

    Args:
        in_channels: Channels of the input image.
        num_features: Width of block 0; blocks 1-4 use 2x, 4x, 8x, 8x.
        convs_per_block: 3x3 convs before the 4x4/s2 conv in blocks 1-4 (block 0 always has one,
            without BN).
    """
    specs: list[LayerSpec] = [
        ("0_0", in_channels, num_features, 3, 1, False),
        ("0_1", num_features, num_features, 4, 2, True),
    ]
    channels = num_features
    for block in range(1, 5):
        width = num_features * _BLOCK_WIDTH[block]
        for j in range(convs_per_block):
            specs.append((f"{block}_{j}", channels, width, 3, 1, True))
            channels = width
        specs.append((f"{block}_{convs_per_block}", channels, width, 4, 2, True))
        channels = width
    return specs


def add_vgg_body(module: nn.Module, specs: list[LayerSpec], conv_bias: bool) -> list[tuple[str, bool]]:
    """Register ``conv{tag}`` (and ``bn{tag}``) on ``module``; return ``[(tag, has_bn), ...]``.

    A conv without BN always has a bias; ``conv_bias`` decides it for convs followed by BN.
    """
    layers = []
    for tag, cin, cout, kernel, stride, has_bn in specs:
        conv = nn.Conv2d(cin, cout, kernel, stride, 1, bias=conv_bias or not has_bn)
        module.add_module(f"conv{tag}", conv)
        if has_bn:
            module.add_module(f"bn{tag}", nn.BatchNorm2d(cout))
        layers.append((tag, has_bn))
    return layers


def vgg_body_forward(module: nn.Module, layers: list[tuple[str, bool]], x: torch.Tensor) -> torch.Tensor:
    """Run conv -> (BN) -> LeakyReLU(0.2) over ``layers`` registered by :func:`add_vgg_body`."""
    for tag, has_bn in layers:
        x = getattr(module, f"conv{tag}")(x)
        if has_bn:
            x = getattr(module, f"bn{tag}")(x)
        x = F.leaky_relu(x, 0.2)
    return x


def he_init(module: nn.Module) -> None:
    """He (Kaiming-normal, fan-in, LeakyReLU 0.2) init of convs/linears; BN weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class Ranker(nn.Module):
    """Perceptual-quality Ranker (one branch of the Siamese pair; both branches share weights).

    Polarity: a HIGHER score means a WORSE image (the Ranker is trained so that the image with
    the higher NIQE / worse perceptual metric gets the higher score; the rank-content loss then
    minimises ``sigmoid(score)``). Scores are unbounded reals; only their order is meaningful.

    Args:
        variant: ``"vgg8"``, ``"vgg12"`` (the released Ranker) or ``"vgg16"``.
        in_channels: Channels of the input image.
        num_features: Width of the first block (64 in the paper).
        conv_bias: Whether the convs followed by BN have a bias (True in the released files;
            the loader sets it from the file's keys).

    Shape:
        input ``(B, in_channels, H, W)``, RGB in [0, 1], H, W >= 32 (any size: global average
        pooling); output ``(B,)`` scores.

    Call :meth:`freeze` to use a trained Ranker inside a loss: it disables gradients and keeps
    BatchNorm in eval mode even when a parent module calls ``.train()``.
    """

    def __init__(
        self,
        variant: str = "vgg12",
        in_channels: int = 3,
        num_features: int = 64,
        conv_bias: bool = True,
    ) -> None:
        super().__init__()
        if variant not in RANKER_VARIANTS:
            raise ValueError(f"Ranker: variant must be one of {sorted(RANKER_VARIANTS)}, got {variant!r}")
        if in_channels < 1 or num_features < 1:
            raise ValueError(f"Ranker: in_channels and num_features must be >= 1, got {in_channels}, {num_features}")
        self.config = {
            "variant": variant,
            "in_channels": in_channels,
            "num_features": num_features,
            "conv_bias": conv_bias,
        }
        self.in_channels = in_channels
        specs = vgg_body_specs(in_channels, num_features, RANKER_VARIANTS[variant])
        self.layers = add_vgg_body(self, specs, conv_bias)
        width = num_features * _BLOCK_WIDTH[-1]
        self.classifier = nn.Sequential(nn.Linear(width, 100), nn.LeakyReLU(0.2), nn.Linear(100, 1))
        self.frozen = False
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score images ``(B, C, H, W)`` in [0, 1] -> ``(B,)``; higher = worse."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.in_channels or min(x.shape[-2:]) < 32):
            raise ValueError(
                f"Ranker: expected input of shape (B, {self.in_channels}, H, W) with H, W >= 32, got {tuple(x.shape)}"
            )
        features = vgg_body_forward(self, self.layers, x)
        return self.classifier(features.mean(dim=(2, 3)))[:, 0]

    def freeze(self) -> Ranker:
        """Disable gradients and pin eval mode (BatchNorm running stats stay fixed); returns self."""
        self.requires_grad_(False)
        self.frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> Ranker:
        """Like ``nn.Module.train``, but a frozen Ranker always stays in eval mode."""
        return super().train(mode and not self.frozen)
