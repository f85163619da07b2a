"""Rank dataset from SR results: the same HR images super-resolved by several methods, served
from a label file (:mod:`ranksrgan.data.rank.sr_labelling` builds it and selects the locations).

:class:`SRRankDataModule` splits by SOURCE IMAGE (a seeded permutation of the image names; no
image on both sides), decodes the kept images once and serves pairs / level tuples in the batch
format of :mod:`ranksrgan.data.rank`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from ranksrgan.data.base import ImageFolderDataModule
from ranksrgan.data.rank import apply_flips, pair_item, random_flips, sample_level_pair, split_by_image
from ranksrgan.data.rank.labels import read_labels
from ranksrgan.data.rank.patch_scores import parse_metric_spec
from ranksrgan.data.rank.sr_labelling import (
    LABEL_MODES,
    LABEL_SETTINGS,
    Location,
    build_sr_labels,
    check_label_settings,
    check_sources,
    load_levels,
    select_locations,
)
from ranksrgan.data.sampling import SampleKey, key_generator
from ranksrgan.io import to_tensor

log = logging.getLogger(__name__)

__all__ = ["SRPairDataset", "SRTupleDataset", "SRRankDataModule"]


# ----------------------------------------------------------------------------- datasets


class SRPairDataset(Dataset):
    """Training pairs: item ``i`` -> location ``i`` with one random level pair (batch format of
    :mod:`ranksrgan.data.rank`; the same random flips/transpose on both patches).

    Args:
        images: ``{image name: [level arrays H×W×3]}`` (method order).
        locations: labelled locations (:func:`~ranksrgan.data.rank.sr_labelling.select_locations`).
        patch_size: patch side.
        augment: random flips and transpose.
    """

    def __init__(
        self, images: Mapping[str, list[np.ndarray]], locations: list[Location], patch_size: int, augment: bool = True
    ) -> None:
        if not locations:
            raise ValueError("no locations on this side of the split (check min_sharpness, min_gap, val_fraction)")
        self.images, self.locations, self.patch_size, self.augment = images, locations, patch_size, augment

    def __len__(self) -> int:
        return len(self.locations)

    def _patch(self, loc: Location, k: int) -> torch.Tensor:
        p = self.patch_size
        return to_tensor(np.ascontiguousarray(self.images[loc.image][k][loc.y : loc.y + p, loc.x : loc.x + p]))

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        """``key``: an index, or ``(index, item seed)`` (:mod:`ranksrgan.data.sampling`)."""
        index, gen = key_generator(key)
        loc = self.locations[index]
        k1, k2 = sample_level_pair(len(loc.levels), gen)
        img1, img2 = self._patch(loc, k1), self._patch(loc, k2)
        if self.augment:
            flips = random_flips(gen)
            img1, img2 = apply_flips(img1, flips), apply_flips(img2, flips)
        return pair_item(img1, img2, int(loc.levels[k1]), int(loc.levels[k2]), loc.values[k1], loc.values[k2])


class SRTupleDataset(SRPairDataset):
    """Validation: item ``i`` -> ``{"images": L×3×p×p (method order), "levels": L}`` of location ``i``."""

    def __init__(self, images: Mapping[str, list[np.ndarray]], locations: list[Location], patch_size: int) -> None:
        super().__init__(images, locations, patch_size, augment=False)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        loc = self.locations[index]
        stack = torch.stack([self._patch(loc, k) for k in range(len(loc.levels))])
        return {"images": stack, "levels": torch.from_numpy(loc.levels.copy())}


# ----------------------------------------------------------------------------- datamodule


class SRRankDataModule(ImageFolderDataModule):
    """Rank pairs from SR results of several methods (the paper's standard rank dataset).

    Two ways to use it: build the label file beforehand with ``ranksrgan-build-rankset`` and pass
    only ``labels`` (folders are read from the file), or pass ``hr`` and ``sr`` too and it is
    built (or resumed) in ``prepare_data``.

    Args:
        labels: label file (CSV, see :mod:`ranksrgan.data.rank.labels`).
        hr: HR folder to build from (None: use the existing label file as is).
        sr: ``{method: folder | "hr" | "bicubic"}``, best first (None with ``hr`` None).
        metric: label metric, a name (``niqe``, ``ma``, ``pi``, ``rmse``) or ``{name: weight}``.
        label_mode: ``"rank"`` (MR) or ``"method"`` (MC); see :func:`~ranksrgan.data.rank.sr_labelling.select_locations`.
        patch_size / stride / crop_border / scale / label_batch_size: labelling settings
            (None: 200 / the scale (``PIRM``) / 4 when building; when reading a label file, the
            file's). Given
            settings must agree with an existing file's header
            (:func:`~ranksrgan.data.rank.sr_labelling.build_sr_labels`); ``patch_size`` is also the training patch.
        min_sharpness / min_gap / max_patches_per_image: location filters.
        val_fraction: share of SOURCE IMAGES held out for validation.
        seed: split and subset seed.
        batch_size: pairs per training batch; validation batches hold ``batch_size`` locations.
        num_workers: DataLoader workers.
        augment: random flips / transpose of training pairs.
        build_demo / demo_root: create the built-in demo images in ``prepare_data``.
    """

    def __init__(
        self,
        labels: str,
        hr: str | None = None,
        sr: Mapping[str, str] | None = None,
        metric: str | Mapping[str, float] = "niqe",
        label_mode: str = "rank",
        patch_size: int = 296,
        stride: int | None = None,
        crop_border: int | None = None,
        scale: int | None = None,
        label_batch_size: int = 16,
        min_sharpness: float = 0.0,
        min_gap: float = 0.0,
        max_patches_per_image: int | None = 200,
        val_fraction: float = 0.1,
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 2,
        augment: bool = True,
        build_demo: bool = False,
        demo_root: str | None = None,
    ) -> None:
        super().__init__()
        if (hr is None) != (sr is None):
            raise ValueError("give both hr and sr (to build the label file) or neither (to use an existing one)")
        if label_mode not in LABEL_MODES:
            raise ValueError(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
        self.metric = dict(metric) if isinstance(metric, Mapping) else metric
        parse_metric_spec(self.metric)
        self.labels, self.hr = str(labels), hr
        self.sr = {str(k): str(v) for k, v in sr.items()} if sr is not None else None
        self.label_mode, self.patch_size, self.stride = label_mode, patch_size, stride
        self.crop_border, self.scale, self.label_batch_size = crop_border, scale, label_batch_size
        self.min_sharpness, self.min_gap, self.max_patches_per_image = min_sharpness, min_gap, max_patches_per_image
        self.val_fraction, self.seed, self.batch_size = val_fraction, seed, batch_size
        self.num_workers, self.augment = num_workers, augment
        self.build_demo, self.demo_root = build_demo, demo_root
        self.train_set: SRPairDataset | None = None
        self.val_set: SRTupleDataset | None = None

    @property
    def label_settings(self) -> dict[str, int]:
        """The :data:`LABEL_SETTINGS` given to this data module (None ones are the file's)."""
        return {name: getattr(self, name) for name in LABEL_SETTINGS if getattr(self, name) is not None}

    def prepare_data(self) -> None:
        super().prepare_data()
        if self.hr is not None:
            metrics = [m for m in parse_metric_spec(self.metric) if m != "rmse"]
            build_sr_labels(
                self.hr,
                self.sr,
                self.labels,
                metrics=metrics,
                patch_size=self.patch_size,
                stride=200 if self.stride is None else self.stride,
                crop_border=self.crop_border,
                scale=4 if self.scale is None else self.scale,
                batch_size=self.label_batch_size,
            )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        table = read_labels(self.labels)
        check_label_settings(self.labels, table.meta, **self.label_settings)
        locations = select_locations(
            table, self.metric, self.label_mode, self.min_sharpness, self.min_gap, self.max_patches_per_image, self.seed
        )
        if not locations:
            raise ValueError(
                f"{self.labels}: no location passes the filters (min_sharpness={self.min_sharpness}, min_gap={self.min_gap})"
            )
        train_names, val_names = split_by_image([loc.image for loc in locations], self.val_fraction, self.seed)
        sources = {m: table.meta["sr"][m] for m in table.meta["methods"]}  # method order (JSON sorts keys)
        hr_files, files = check_sources(table.meta["hr"], sources)
        by_stem = {p.stem: p for p in hr_files}
        images = {}
        for name in sorted(train_names | val_names):  # decoded once, shared by both datasets
            _, images[name] = load_levels(by_stem[name], sources, files, table.meta["scale"])
        self.train_set = SRPairDataset(
            images, [loc for loc in locations if loc.image in train_names], self.patch_size, self.augment
        )
        self.val_set = SRTupleDataset(images, [loc for loc in locations if loc.image in val_names], self.patch_size)
        log.info(
            "sr rank set: %d train / %d val locations from %d / %d images",
            len(self.train_set),
            len(self.val_set),
            len(train_names),
            len(val_names),
        )
