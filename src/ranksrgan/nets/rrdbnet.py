"""RRDBNet, the ESRGAN generator (Residual-in-Residual Dense Blocks).

Architecture facts (ESRGAN, as released in ``xinntao/ESRGAN`` ``RRDBNet_arch.py`` and BasicSR
``basicsr/archs/rrdbnet_arch.py``):

* Dense block: five 3x3 convs, each seeing the concatenation of the block input and all
  earlier outputs (growth ``gc`` channels each, the fifth back to nf); LeakyReLU(0.2) after
  the first four; output ``x + 0.2 * conv5(...)``.
* RRDB: three dense blocks in a row, output ``x + 0.2 * rdb3(rdb2(rdb1(x)))``.
* Net: ``conv_first`` (no activation), trunk of RRDBs, ``trunk_conv``, global skip from
  ``conv_first``; two stages of nearest x2 upsampling + conv3x3 + LeakyReLU(0.2); ``HRconv`` +
  LeakyReLU(0.2); ``conv_last``.
* x2 / x1 (BasicSR's extension): the input is pixel-unshuffled by 2 / 4 first, so the body
  always upsamples x4 and ``conv_first`` takes ``in_channels * 4`` / ``* 16`` channels.

Submodule names follow the ESRGAN release (``conv_first``, ``RRDB_trunk.{i}.RDB{1,2,3}.conv{1..5}``,
``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``, ``conv_last``). The BasicSR names
(``body.{i}.rdb{j}``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``) and the oldest
flattened ``model.N`` layout are mapped by :mod:`ranksrgan.checkpoints`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResidualDenseBlock", "RRDB", "RRDBNet"]


class ResidualDenseBlock(nn.Module):
    """Five-conv residual dense block with 0.2 residual scaling.

    Args:
        num_features: Channels nf of input and output.
        growth: Channels gc produced by each of the first four convs.

    Shape: ``(B, nf, H, W) -> (B, nf, H, W)``.
    """

    def __init__(self, num_features: int = 64, growth: int = 32) -> None:
        super().__init__()
        nf, gc = num_features, growth
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x + 0.2 * x5


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, 0.2 residual scaling.

    Args:
        num_features: Channels nf of input and output.
        growth: Growth channels gc of the dense blocks.

    Shape: ``(B, nf, H, W) -> (B, nf, H, W)``.
    """

    def __init__(self, num_features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.RDB1 = ResidualDenseBlock(num_features, growth)
        self.RDB2 = ResidualDenseBlock(num_features, growth)
        self.RDB3 = ResidualDenseBlock(num_features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.RDB3(self.RDB2(self.RDB1(x)))


class RRDBNet(nn.Module):
    """ESRGAN generator.

    Args:
        in_channels: Channels of the LR input.
        out_channels: Channels of the SR output.
        num_features: Feature channels nf.
        num_blocks: Number of RRDBs in the trunk (23 in ESRGAN).
        growth: Growth channels gc of the dense blocks.
        scale: 4 (ESRGAN), or 2 / 1 (input pixel-unshuffled first, as in BasicSR).

    Shape:
        input ``(B, in_channels, h, w)`` in [0, 1] (h, w divisible by ``4 // scale``);
        output ``(B, out_channels, scale*h, scale*w)``, not clamped.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 23,
        growth: int = 32,
        scale: int = 4,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet: scale must be 1, 2 or 4, got {scale!r}")
        if min(in_channels, out_channels, num_features, num_blocks, growth) < 1:
            raise ValueError("RRDBNet: in_channels, out_channels, num_features, num_blocks and growth must be >= 1")
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "num_features": num_features,
            "num_blocks": num_blocks,
            "growth": growth,
            "scale": scale,
        }
        self.scale = scale
        self.in_channels = in_channels
        self.unshuffle = 4 // scale
        nf = num_features
        self.conv_first = nn.Conv2d(in_channels * self.unshuffle**2, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[RRDB(nf, growth) for _ in range(num_blocks)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x`` ``(B, C_in, h, w)`` to ``(B, C_out, s*h, s*w)`` (not clamped)."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise ValueError(f"RRDBNet: expected input of shape (B, {self.in_channels}, h, w), got {tuple(x.shape)}")
        if self.unshuffle > 1:
            if not torch.jit.is_tracing() and (x.shape[-2] % self.unshuffle or x.shape[-1] % self.unshuffle):
                raise ValueError(
                    f"RRDBNet(scale={self.scale}): input height and width must be divisible by "
                    f"{self.unshuffle}, got {tuple(x.shape[-2:])}"
                )
            x = F.pixel_unshuffle(x, self.unshuffle)
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = F.leaky_relu(self.upconv1(F.interpolate(fea, scale_factor=2.0, mode="nearest")), 0.2)
        fea = F.leaky_relu(self.upconv2(F.interpolate(fea, scale_factor=2.0, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.HRconv(fea), 0.2))
