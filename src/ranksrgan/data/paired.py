"""Paired HR/LR super-resolution data: aligned random patches for training, whole images for validation.

Decoded-image cache: every HR image is decoded ONCE in ``setup()`` and kept in memory as its
native uint8/uint16 array, and its LR is made once per image (MATLAB bicubic ``imresize`` of the
mod-cropped HR, rounded to the HR bit depth exactly as a saved LR PNG would be) or read from a
given LR folder. A training patch is then a slice + flip of those arrays: no PNG is decoded per
patch, which is what keeps the loader far above the ~300 patches/s that a fast GPU needs at batch 8.
DataLoader workers are forked after ``setup()`` and share the arrays copy-on-write. Memory is the
decoded size of the data set (DIV2K train: about 6.9 GB for HR + 0.4 GB for LR); for larger sets,
pre-cut sub-images into a folder and point ``train_hr`` at it.

Why not pre-cut sub-images by default: they need a separate preparation step and disk space, and
sampling from whole images gives every patch position, not a fixed grid.

On a GPU, ``patches_on_device=True`` uploads the decoded images to the GPU once and cuts every
training batch there (:class:`DevicePatchLoader`): no worker processes, no per-batch host-to-device
copy, no host synchronisation. It costs the decoded size of the set in GPU memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ranksrgan.data.base import ImageFolderDataModule
from ranksrgan.data.hr_lr_pairs import ImagePair, augment_pair, load_pairs, make_lr
from ranksrgan.data.sampling import EpochSampler, SampleKey, epoch_state, key_generator, load_epoch_state
from ranksrgan.io import check_min_size, levels, to_tensor
from ranksrgan.ops.filters import apply_flips, random_flips

# Re-exported: the Lightning-free pair helpers live in ranksrgan.data.hr_lr_pairs.
__all__ = [
    "DevicePatchLoader",
    "ImagePair",
    "PairedPatchDataset",
    "PairedSRDataModule",
    "WholeImageDataset",
    "augment_pair",
    "load_pairs",
    "make_lr",
]

log = logging.getLogger(__name__)


class PairedPatchDataset(Dataset):
    """Random aligned patches: item -> ``{"lr": 3×p×p, "hr": 3×(s·p)×(s·p)}`` floats in [0, 1].

    The LR patch is cut from the LR of the WHOLE image at ``(y, x)`` and the HR patch at
    ``(s·y, s·x)``, so away from the patch border LR equals ``imresize(HR patch)``.

    Args:
        pairs: decoded images (see :func:`load_pairs`).
        scale: SR factor s.
        hr_patch_size: HR patch side (a multiple of ``scale``), e.g. 296 for LR 74 at x4.
        length: patches per epoch (images are visited round-robin).
        augment: random horizontal/vertical flips and transpose, 50 % each.
    """

    def __init__(self, pairs: list[ImagePair], scale: int, hr_patch_size: int, length: int, augment: bool = True) -> None:
        if hr_patch_size % scale:
            raise ValueError(f"hr_patch_size {hr_patch_size} is not a multiple of scale {scale}")
        for p in pairs:
            check_min_size(p.name, p.hr.shape[0], p.hr.shape[1], hr_patch_size)
        self.pairs, self.scale, self.hr_patch, self.length, self.augment = pairs, scale, hr_patch_size, length, augment
        self.lr_patch = hr_patch_size // scale

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        """``key``: an index, or ``(index, item seed)`` (:mod:`ranksrgan.data.sampling`)."""
        index, gen = key_generator(key)
        pair = self.pairs[index % len(self.pairs)]
        lh, lw = pair.lr.shape[:2]
        y = int(torch.randint(0, lh - self.lr_patch + 1, (), generator=gen))
        x = int(torch.randint(0, lw - self.lr_patch + 1, (), generator=gen))
        s, p = self.scale, self.lr_patch
        lr = pair.lr[y : y + p, x : x + p]
        hr = pair.hr[s * y : s * (y + p), s * x : s * (x + p)]
        if self.augment:
            hr, lr = augment_pair(hr, lr, *random_flips(gen))
        return {"lr": to_tensor(np.ascontiguousarray(lr)), "hr": to_tensor(np.ascontiguousarray(hr))}


class DevicePatchLoader:
    """Training batches cut on the device from images uploaded to it once.

    The same batches as :class:`PairedPatchDataset` in a :class:`~ranksrgan.data.sampling.ResumableLoader`
    with the same seed, bit for bit (the same keys of :class:`~ranksrgan.data.sampling.EpochSampler`,
    the same windows, flips and transpose drawn from each key, the same float values: ``uint /
    levels`` in float32), but the images live on ``device`` and a batch is a few slicing kernels
    there. Only the random draws happen on the host, so the loop never waits for the device. Its
    position goes into Lightning's checkpoints as the ``ResumableLoader``'s does.

    Iterating yields ``{"lr": B×3×p×p, "hr": B×3×(s·p)×(s·p)}`` float32 in [0, 1] on ``device``.

    Args:
        pairs: decoded images (see :func:`load_pairs`).
        scale: SR factor s.
        hr_patch_size: HR patch side (a multiple of ``scale``).
        batch_size: patches per batch B.
        length: patches per epoch; ``length // batch_size`` batches (the last partial batch is
            dropped unless the epoch is shorter than one batch).
        device: where the images and batches live.
        augment: random horizontal/vertical flips and transpose, 50 % each.
        seed: seed of the sampling (DDP: give each process its own).
        trained: ``() -> batches of the current epoch trained``, for :meth:`state_dict` (None: 0).
    """

    def __init__(
        self,
        pairs: list[ImagePair],
        scale: int,
        hr_patch_size: int,
        batch_size: int,
        length: int,
        device: torch.device | str,
        augment: bool = True,
        seed: int = 0,
        trained: Callable[[], int] | None = None,
    ) -> None:
        if batch_size < 1 or length < 1:
            raise ValueError(f"batch_size and length must be >= 1, got {batch_size} and {length}")
        if not pairs:
            raise ValueError("DevicePatchLoader needs at least one image pair")
        # the patch geometry (scale, LR patch, patches per epoch, augment), checked against every image
        self.spec = PairedPatchDataset(pairs, scale, hr_patch_size, length, augment)
        self.batch_size, self.device = batch_size, torch.device(device)
        # uint8 stays uint8; uint16 is held as int32 (torch's uint16 has few device kernels)
        self.images = [(self._upload(p.lr), self._upload(p.hr)) for p in pairs]
        self.levels = [levels(p.hr.dtype) for p in pairs]  # per image: a folder may mix 8 and 16 bits
        self.one_depth = len(set(self.levels)) == 1
        self.sampler = EpochSampler(length, seed)
        self.trained = trained

    def _upload(self, img: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(img if img.dtype == np.uint8 else img.astype(np.int32))
        return x.permute(2, 0, 1).to(self.device)  # C×H×W view of the H×W×C image

    def __len__(self) -> int:
        n, b = self.spec.length, self.batch_size
        return max(n // b, 1)

    def state_dict(self) -> dict[str, int]:
        return epoch_state(self.sampler, self.trained() if self.trained is not None else 0)

    def load_state_dict(self, state: dict[str, int]) -> None:
        load_epoch_state(self.sampler, state, self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        b, s, p = self.batch_size, self.spec.scale, self.spec.lr_patch
        start = self.sampler.start
        keys = list(self.sampler)[: max(min(len(self) * b, self.spec.length) - start, 0)]
        for first in range(0, len(keys), b):
            lrs, hrs = [], []
            for key in keys[first : first + b]:
                index, gen = key_generator(key)
                index %= len(self.images)
                lr_img, hr_img = self.images[index]
                y = int(torch.randint(0, lr_img.shape[1] - p + 1, (), generator=gen))
                x = int(torch.randint(0, lr_img.shape[2] - p + 1, (), generator=gen))
                lr = lr_img[:, y : y + p, x : x + p]
                hr = hr_img[:, s * y : s * (y + p), s * x : s * (x + p)]
                if self.spec.augment:
                    flips = random_flips(gen)
                    lr, hr = apply_flips(lr, flips), apply_flips(hr, flips)
                if not self.one_depth:  # to float per patch, each with its own depth
                    lr, hr = lr.float() / self.levels[index], hr.float() / self.levels[index]
                lrs.append(lr)
                hrs.append(hr)
            if self.one_depth:  # one conversion for the whole batch
                yield {"lr": torch.stack(lrs).float() / self.levels[0], "hr": torch.stack(hrs).float() / self.levels[0]}
            else:
                yield {"lr": torch.stack(lrs), "hr": torch.stack(hrs)}


class WholeImageDataset(Dataset):
    """Validation: whole mod-cropped images -> ``{"lr", "hr", "name"}`` (batch size 1: sizes differ)."""

    def __init__(self, pairs: list[ImagePair]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        return {"lr": to_tensor(pair.lr), "hr": to_tensor(pair.hr), "name": pair.name}


class PairedSRDataModule(ImageFolderDataModule):
    """HR folders (+ optional pre-made LR folders) -> training patches, validation images and a
    held-out test split.

    The three splits have separate folders: training and validation (curves, and checkpoint
    selection with ``select: best``) read ``train_*`` and ``val_*`` only; the test split is read
    only by ``setup("test")`` (the final table of a run and :meth:`test_dataloader`).

    Args:
        train_hr: HR folders for training.
        val_hr: HR folders for validation (whole images).
        test_hr: HR folders of the held-out test split (whole images), or None.
        train_lr / val_lr / test_lr: matching LR folders, or None to make LR with MATLAB bicubic.
        scale: SR factor.
        hr_patch_size: training HR patch (LR patch = hr_patch_size / scale).
        batch_size: training batch size (validation uses 1).
        num_workers: DataLoader workers for training (validation uses at most 1).
        patches_per_epoch: training patches per epoch; steps are what count (``max_steps``).
        augment: flips and transposes.
        patches_on_device: cut training batches on the training device from images uploaded to it
            once (:class:`DevicePatchLoader`; ``num_workers`` then applies to validation only).
        val_max_images: keep only the first N validation images (None: all).
        build_demo: create the built-in demo images under ``demo_root`` in ``prepare_data``.
        demo_root: where the demo images live (used only with ``build_demo``).
    """

    def __init__(
        self,
        train_hr: Sequence[str],
        val_hr: Sequence[str],
        train_lr: Sequence[str] | None = None,
        val_lr: Sequence[str] | None = None,
        scale: int = 4,
        hr_patch_size: int = 296,
        batch_size: int = 8,
        num_workers: int = 2,
        patches_per_epoch: int = 8000,
        augment: bool = True,
        val_max_images: int | None = None,
        build_demo: bool = False,
        demo_root: str | None = None,
        patches_on_device: bool = False,
        test_hr: Sequence[str] | None = None,
        test_lr: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.train_hr, self.val_hr = list(train_hr), list(val_hr)
        self.train_lr = list(train_lr) if train_lr else None
        self.val_lr = list(val_lr) if val_lr else None
        self.test_hr = list(test_hr) if test_hr else []
        self.test_lr = list(test_lr) if test_lr else None
        self.scale, self.hr_patch_size, self.batch_size = scale, hr_patch_size, batch_size
        self.num_workers, self.patches_per_epoch, self.augment = num_workers, patches_per_epoch, augment
        self.val_max_images, self.build_demo, self.demo_root = val_max_images, build_demo, demo_root
        self.patches_on_device = patches_on_device
        self.train_set: PairedPatchDataset | None = None
        self.val_set: WholeImageDataset | None = None
        self.test_set: WholeImageDataset | None = None

    @property
    def val_batch_size(self) -> int:
        return 1  # whole images of different sizes

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            pairs = load_pairs(self.train_hr, self.train_lr, self.scale, min_hr_size=self.hr_patch_size)
            self.train_set = PairedPatchDataset(pairs, self.scale, self.hr_patch_size, self.patches_per_epoch, self.augment)
            log.info("training on %d images (decoded once, cached in memory)", len(pairs))
        if stage == "test":
            if not self.test_hr:
                raise ValueError("data.test_hr is empty: this data config has no held-out test split")
            if self.test_set is None:
                self.test_set = WholeImageDataset(load_pairs(self.test_hr, self.test_lr, self.scale))
            return
        if self.val_set is None:
            pairs = load_pairs(self.val_hr, self.val_lr, self.scale)
            self.val_set = WholeImageDataset(pairs[: self.val_max_images] if self.val_max_images else pairs)

    def test_dataloader(self) -> DataLoader:
        """The held-out test images, whole, one per batch."""
        if self.test_set is None:
            self.setup("test")
        return DataLoader(self.test_set, batch_size=1, shuffle=False, num_workers=min(self.num_workers, 1))

    def train_dataloader(self) -> DataLoader | DevicePatchLoader:
        """The workers' loader (:meth:`ImageFolderDataModule.train_dataloader`), or with
        ``patches_on_device`` a :class:`DevicePatchLoader` on the trainer's device, seeded from
        torch's seed and the process rank, with ``patches_per_epoch / world size`` patches."""
        if not self.patches_on_device:
            return super().train_dataloader()
        if self.train_set is None:
            self.setup("fit")
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        seed = self.sampling_seed() + 7919 * rank
        return DevicePatchLoader(
            self.train_set.pairs,
            self.scale,
            self.hr_patch_size,
            self.batch_size,
            max(self.patches_per_epoch // world, 1),
            device,
            self.augment,
            seed,
            self.batches_trained,
        )
