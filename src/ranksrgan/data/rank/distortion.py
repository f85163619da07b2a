"""Rank dataset by artificial distortion of HR patches (paper §4.3): Gaussian blur or noise.

Levels (ascending, best first; level ``k`` is ``levels[k]``, the item ``value``):

* ``blur``: Gaussian sigma in pixels, default ``[0.1, 2, 4]`` (the paper's kernel "widths");
  kornia ``gaussian_blur2d`` with a per-sample sigma, kernel side ``2·ceil(3·σ_max)+1`` for the
  batch (a wider kernel does not change a smaller sigma's normalised Gaussian beyond its
  truncation), reflect padding.
* ``noise``: additive white Gaussian noise on the 0-255 scale, default ``[1, 15, 30]`` (the
  paper's "covariances"), the same std in R, G, B, drawn independently per pixel/channel.
  ``noise_level_is`` says what a level is: ``"std"`` (the standard deviation: 1, 15, 30) or
  ``"variance"`` (std = sqrt(level): 1, 3.87, 5.48); :func:`noise_std255`.

Outputs are clamped to [0, 1] and rounded to 8-bit levels, as stored distorted images would be
(the Ranker never sees values an image file could not hold).

The loaders yield CLEAN HR patches; the distortion is done batched in
:meth:`DistortionRankDataModule.on_after_batch_transfer`, i.e. on the GPU when training there.
Reproducibility: every item carries an integer ``seed`` (drawn from the training item's key,
:mod:`ranksrgan.data.sampling`, a pure function of the run's seed, the epoch and the index; a
fixed function of the index for validation). Noise for image slot ``j`` of an item comes from a
``torch.Generator`` on the batch's device seeded with ``seed·8 + j``: the same seeds give the
same images on the same device type (CPU and CUDA generators differ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ranksrgan.data.rank import check_levels
from ranksrgan.data.rank.hr_folder import HRRankDataModule
from ranksrgan.ops.color import quantize_uint8

__all__ = [
    "DEFAULT_LEVELS",
    "KINDS",
    "NOISE_LEVEL_MEANINGS",
    "noise_std255",
    "blur_kernel_size",
    "gaussian_blur",
    "gaussian_noise",
    "distort",
    "DistortionRankDataModule",
]

DEFAULT_LEVELS = {"blur": (0.1, 2.0, 4.0), "noise": (1.0, 15.0, 30.0)}
KINDS = tuple(DEFAULT_LEVELS)
#: what a noise level is (``noise_level_is``): its standard deviation or its variance, 0-255 scale
NOISE_LEVEL_MEANINGS = ("std", "variance")
_SEED_SLOTS = 8  # noise seed of slot j of an item = seed * 8 + j (j < 8)


def blur_kernel_size(sigma: float) -> int:
    """Odd kernel side covering ±3σ: ``2·ceil(3σ) + 1`` (at least 3)."""
    return max(2 * math.ceil(3.0 * float(sigma)) + 1, 3)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur ``B×C×H×W`` images in [0, 1] with per-sample Gaussian ``sigma`` (``B``, pixels); not rounded."""
    import kornia

    sigma = sigma.to(device=x.device, dtype=x.dtype).reshape(-1)
    k = blur_kernel_size(float(sigma.max()))
    if k // 2 >= min(x.shape[-2:]):
        raise ValueError(f"blur kernel {k}x{k} (sigma {float(sigma.max())}) is too large for {x.shape[-2]}x{x.shape[-1]} patches")
    return kornia.filters.gaussian_blur2d(x, (k, k), torch.stack([sigma, sigma], dim=1), border_type="reflect")


def noise_std255(levels: torch.Tensor, noise_level_is: str = "std") -> torch.Tensor:
    """The noise standard deviation (0-255) of noise ``levels``: the levels themselves
    (``"std"``) or their square roots (``"variance"``)."""
    if noise_level_is not in NOISE_LEVEL_MEANINGS:
        raise ValueError(f"noise_level_is must be one of {NOISE_LEVEL_MEANINGS}, got {noise_level_is!r}")
    return levels if noise_level_is == "std" else levels.sqrt()


def gaussian_noise(x: torch.Tensor, std255: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Add N(0, (std/255)²) noise to ``B×C×H×W``; sample ``b`` uses a generator seeded with ``seeds[b]``."""
    std = std255.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1) / 255.0
    noise = torch.empty_like(x)
    gen = torch.Generator(device=x.device)
    for b, seed in enumerate(seeds.reshape(-1).tolist()):
        gen.manual_seed(int(seed))
        noise[b] = torch.randn(x.shape[1:], generator=gen, device=x.device, dtype=x.dtype)
    return x + std * noise


def distort(x: torch.Tensor, kind: str, values: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Distort ``B×3×H×W`` in [0, 1] at per-sample level ``values`` (sigma or 0-255 std); the
    result is clamped and rounded to 8-bit levels. ``seeds`` (``B`` int) drive the noise."""
    if kind == "blur":
        out = gaussian_blur(x, values)
    elif kind == "noise":
        out = gaussian_noise(x, values, seeds)
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return quantize_uint8(out)


class DistortionRankDataModule(HRRankDataModule):
    """Blur or noise rank pairs made on the fly from HR patches (RankSRGAN's Ranker-b / Ranker-n).

    The loaders yield clean HR patches; :meth:`on_after_batch_transfer` turns a training batch
    into ``{"img1", "img2", "target", "level1", "level2", "value1", "value2"}`` and a validation
    batch into ``{"images": B×L×3×p×p, "levels": B×L}`` (see :mod:`ranksrgan.data.rank`).

    Args:
        kind: ``"blur"`` or ``"noise"``.
        train_hr / val_hr: HR folders (split by folder, or ``train_hr`` split by image: ``val_fraction``).
        levels: ascending sigma (blur, px) or noise level (0-255) list; None: the paper's.
        noise_level_is: ``"std"`` or ``"variance"``: what a noise level is (:func:`noise_std255`);
            noise only.
        **settings: the other HR-folder settings (patch_size, batch_size, ...): see
            :class:`~ranksrgan.data.rank.hr_folder.HRRankDataModule`.
    """

    def __init__(
        self,
        kind: str,
        train_hr: Sequence[str],
        val_hr: Sequence[str],
        levels: Sequence[float] | None = None,
        noise_level_is: str = "std",
        **settings: Any,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if noise_level_is not in NOISE_LEVEL_MEANINGS:
            raise ValueError(f"noise_level_is must be one of {NOISE_LEVEL_MEANINGS}, got {noise_level_is!r}")
        if kind != "noise" and noise_level_is != "std":
            raise ValueError(f"noise_level_is applies to noise levels only, not to {kind}")
        super().__init__(train_hr, val_hr, **settings)
        self.noise_level_is = noise_level_is
        self.kind = self.label = kind
        self.levels = check_levels(DEFAULT_LEVELS[kind] if levels is None else levels, f"{kind} levels")
        if len(self.levels) > _SEED_SLOTS:
            raise ValueError(f"at most {_SEED_SLOTS} {kind} levels are supported, got {len(self.levels)}")
        if self.levels[0] < 0:
            raise ValueError(f"{kind} levels must be >= 0, got {self.levels}")
        if kind == "blur" and blur_kernel_size(self.levels[-1]) // 2 >= self.patch_size:
            raise ValueError(f"blur sigma {self.levels[-1]} needs patches larger than {self.patch_size}")

    # ------------------------------------------------------------------ batched distortion

    def strength(self, levels: torch.Tensor) -> torch.Tensor:
        """What :func:`distort` takes for ``levels``: blur sigma, or the noise std (0-255)."""
        return noise_std255(levels, self.noise_level_is) if self.kind == "noise" else levels

    def make_pairs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"hr", "level1", "level2", "seed"}`` -> the training pair batch (on ``hr``'s device)."""
        hr, seed = batch["hr"], batch["seed"]
        l1, l2 = batch["level1"].to(hr.device), batch["level2"].to(hr.device)
        table = torch.tensor(self.levels, device=hr.device, dtype=hr.dtype)
        v1, v2 = table[l1], table[l2]
        img1 = distort(hr, self.kind, self.strength(v1), seed * _SEED_SLOTS)
        img2 = distort(hr, self.kind, self.strength(v2), seed * _SEED_SLOTS + 1)
        target = torch.where(l1 > l2, 1.0, -1.0).to(hr.dtype)
        return {"img1": img1, "img2": img2, "target": target, "level1": l1, "level2": l2, "value1": v1, "value2": v2}

    def make_tuples(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"hr", "seed"}`` -> ``{"images": B×L×3×p×p, "levels": B×L}`` (every level of each window)."""
        hr, seed = batch["hr"], batch["seed"]
        b, num = hr.shape[0], len(self.levels)
        values = torch.tensor(self.levels, device=hr.device, dtype=hr.dtype).repeat(b)
        seeds = (seed.reshape(-1, 1) * _SEED_SLOTS + torch.arange(num, device=seed.device)).reshape(-1)
        x = hr.unsqueeze(1).expand(b, num, *hr.shape[1:]).reshape(b * num, *hr.shape[1:])
        images = distort(x, self.kind, self.strength(values), seeds).reshape(b, num, *hr.shape[1:])
        return {"images": images, "levels": torch.arange(num, device=hr.device).repeat(b, 1)}

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Distort the clean patches of a batch (runs on the training device)."""
        if isinstance(batch, dict) and "hr" in batch:
            return self.make_pairs(batch) if "level1" in batch else self.make_tuples(batch)
        return batch
