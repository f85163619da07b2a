"""SRResNet generator as used by RankSRGAN (the mmsr-style "MSRResNet" with an LR conv).

Architecture facts (from the authors' public RankSRGAN code: ``codes/scripts/transfer.py``,
``codes/models/archs/arch_util.py`` and the older ``codes/models/modules/architecture.py``):

* ``conv_first`` (3x3, in -> nf) has NO activation after it.
* Each residual block is conv3x3 -> ReLU -> conv3x3, plus the identity; no batch norm,
  no residual scaling.
* ``LRconv`` (3x3, nf -> nf, no activation) closes the trunk, and the output of
  ``conv_first`` is added to it (global skip) before upsampling.
* Upsampling: x4 = two stages of conv3x3 (nf -> 4nf) + PixelShuffle(2) + ReLU; x2 = one such
  stage; x3 = one stage of conv3x3 (nf -> 9nf) + PixelShuffle(3) + ReLU.
* ``HRconv`` (3x3) + ReLU, then ``conv_last`` (3x3, nf -> out). Every activation is ReLU
  (not LeakyReLU), and there is no bilinear/bicubic image-level skip connection.

One optional departure, OFF by default so that the authors' released weights load and behave as
trained: ``image_skip="bicubic"`` (or ``"bilinear"``) adds the interpolated LR image to the output,
so the network only learns the residual (the high frequencies). It adds no weights. Without it the
network starts from a near-zero output (every conv is initialised at 0.1x Kaiming) and must learn
the whole colour mapping: a small network trained briefly learns luminance first and colour late,
and its colours swing for thousands of iterations. With the skip, colour and low frequencies are
right from the first iteration. Use it for short or small-scale training (the CPU demo). With
the skip, the convs outside the residual blocks (except ``conv_last``) start at plain Kaiming
scale instead of 0.1x (see ``__init__``).

The older release stores the same network as one flattened ``nn.Sequential`` (``model.N``
keys); :mod:`ranksrgan.checkpoints` maps those onto the names used here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IMAGE_SKIPS", "ResidualBlockNoBN", "SRResNet"]

#: values of ``SRResNet(image_skip=...)``: none (the authors' network) or the interpolation used
IMAGE_SKIPS = (None, "bicubic", "bilinear")


def _init_conv(conv: nn.Conv2d, scale: float) -> None:
    """Kaiming-normal (fan-in) weights multiplied by ``scale``; zero bias."""
    nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
    conv.weight.data.mul_(scale)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ResidualBlockNoBN(nn.Module):
    """Residual block without batch norm: ``x + conv2(relu(conv1(x)))``.

    Args:
        num_features: Channels C of input and output.

    Shape: ``(B, C, H, W) -> (B, C, H, W)``.
    """

    def __init__(self, num_features: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_features, num_features, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class SRResNet(nn.Module):
    """RankSRGAN / SRGAN generator (16 residual blocks, no BN, PixelShuffle upsampling).

    Submodule names follow the authors' released key layout (``conv_first``,
    ``recon_trunk.{i}.conv1/conv2``, ``LRconv``, ``upconv1``, ``upconv2``, ``HRconv``,
    ``conv_last``), so released state dicts load without renaming. At the defaults (x4) the
    network has 1,554,499 parameters.

    Args:
        in_channels: Channels of the LR input (3 for RGB).
        out_channels: Channels of the SR output.
        num_features: Feature channels nf in the trunk.
        num_blocks: Number of residual blocks (>= 1).
        scale: Upscaling factor, one of 2, 3, 4.
        image_skip: ``None`` (the authors' network), ``"bicubic"`` or ``"bilinear"``: add the LR
            image upsampled with that interpolation to the output (see the module docstring).

    Shape:
        input ``(B, in_channels, h, w)``, values nominally in [0, 1];
        output ``(B, out_channels, scale*h, scale*w)``, same nominal range, NOT clamped.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,
        num_blocks: int = 16,
        scale: int = 4,
        image_skip: str | None = None,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRResNet: scale must be 2, 3 or 4, got {scale!r}")
        if image_skip not in IMAGE_SKIPS:
            raise ValueError(f"SRResNet: image_skip must be one of {IMAGE_SKIPS}, got {image_skip!r}")
        if image_skip is not None and in_channels != out_channels:
            raise ValueError(f"SRResNet: image_skip needs in_channels == out_channels, got {in_channels}, {out_channels}")
        if num_blocks < 1 or num_features < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(
                "SRResNet: in_channels, out_channels, num_features and num_blocks must be >= 1, got "
                f"{in_channels}, {out_channels}, {num_features}, {num_blocks}"
            )
        self.config = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "num_features": num_features,
            "num_blocks": num_blocks,
            "scale": scale,
        }
        if image_skip is not None:  # only when set: the authors' network keeps its plain spec
            self.config["image_skip"] = image_skip
        self.scale = scale
        self.image_skip = image_skip
        self.in_channels = in_channels
        nf = num_features
        self.conv_first = nn.Conv2d(in_channels, nf, 3, 1, 1)
        self.recon_trunk = nn.Sequential(*[ResidualBlockNoBN(nf) for _ in range(num_blocks)])
        self.LRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        shuffle = 3 if scale == 3 else 2
        self.upconv1 = nn.Conv2d(nf, nf * shuffle * shuffle, 3, 1, 1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(nf, nf * 4, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(shuffle)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, out_channels, 3, 1, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _init_conv(module, 0.1)
        if image_skip is not None:
            # The residual branch must start small (conv_last keeps 0.1x) but its hidden ReLUs must
            # stay alive. At 0.1x everywhere the features before HRconv's ReLU are ~1e-4, below
            # Adam's first bias steps (lr ~1e-4): every HRconv unit died within a few iterations
            # and the output stayed bicubic + a constant. Plain Kaiming outside the residual
            # blocks keeps those activations at the input's scale.
            for conv in (self.conv_first, self.LRconv, self.upconv1, getattr(self, "upconv2", None), self.HRconv):
                if conv is not None:
                    _init_conv(conv, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Super-resolve ``x`` ``(B, C_in, h, w)`` to ``(B, C_out, s*h, s*w)`` (not clamped)."""
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != self.in_channels):
            raise ValueError(f"SRResNet: expected input of shape (B, {self.in_channels}, h, w), got {tuple(x.shape)}")
        fea = self.conv_first(x)
        out = self.LRconv(self.recon_trunk(fea)) + fea
        out = F.relu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = F.relu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(F.relu(self.HRconv(out)))
        if self.image_skip is not None:
            out = out + F.interpolate(x, scale_factor=self.scale, mode=self.image_skip, align_corners=False)
        return out
