"""VGG-style discriminator of SRGAN / RankSRGAN (the Ranker's 10-conv body + an MLP head)."""

from __future__ import annotations

import torch
from torch import nn

from ranksrgan.nets.ranker import RANKER_VARIANTS, add_vgg_body, he_init, vgg_body_forward, vgg_body_specs

__all__ = ["VGGDiscriminator"]


def body_output_size(size: int) -> int:
    """Spatial size after the body's five 4x4/s2/p1 convs: ``floor((n + 2 - 4) / 2) + 1`` each."""
    for _ in range(5):
        size = (size + 2 - 4) // 2 + 1
    return size


class VGGDiscriminator(nn.Module):
    """Discriminator: the VGG-12 body of the Ranker (BN, LeakyReLU 0.2, conv biases as in the
    released Ranker), flattened, then ``linear1`` (512*s*s -> 100) -> LeakyReLU(0.2) ->
    ``linear2`` (100 -> 1).

    ``s`` follows from the conv arithmetic: 296 -> 9, 128 -> 4, 64 -> 2.

    Args:
        in_channels: Channels of the input image.
        num_features: Width of the first block (64).
        input_size: Height and width of the (square) input patches, >= 32.

    Shape:
        input ``(B, in_channels, input_size, input_size)`` in [0, 1]; output ``(B, 1)`` logits,
        higher = judged more "real".
    """

    def __init__(self, in_channels: int = 3, num_features: int = 64, input_size: int = 296) -> None:
        super().__init__()
        if input_size < 32:
            raise ValueError(f"VGGDiscriminator: input_size must be >= 32, got {input_size}")
        if in_channels < 1 or num_features < 1:
            raise ValueError(f"VGGDiscriminator: in_channels and num_features must be >= 1, got {in_channels}, {num_features}")
        self.config = {"in_channels": in_channels, "num_features": num_features, "input_size": input_size}
        self.in_channels = in_channels
        self.input_size = input_size
        specs = vgg_body_specs(in_channels, num_features, RANKER_VARIANTS["vgg12"])
        self.layers = add_vgg_body(self, specs, conv_bias=True)
        final = body_output_size(input_size)
        self.linear1 = nn.Linear(num_features * 8 * final * final, 100)
        self.linear2 = nn.Linear(100, 1)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1)`` for images ``(B, C, input_size, input_size)``."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if not torch.jit.is_tracing() and (x.dim() != 4 or tuple(x.shape[1:]) != expected):
            raise ValueError(f"VGGDiscriminator: expected input of shape (B, {expected}), got {tuple(x.shape)}")
        features = vgg_body_forward(self, self.layers, x).flatten(1)
        return self.linear2(torch.nn.functional.leaky_relu(self.linear1(features), 0.2))
