"""Paired HR/LR data: alignment with MATLAB bicubic, augmentation consistency, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ranksrgan.data.demo import TEST_IMAGES, TRAIN_IMAGES, VAL_IMAGES
from ranksrgan.data.paired import PairedPatchDataset, PairedSRDataModule, augment_pair, load_pairs, make_lr
from ranksrgan.io import ImageReadError, read_image, write_image
from ranksrgan.ops import imresize, quantize_uint8


@pytest.fixture()
def small_hr(tmp_path, demo_rgb):
    folder = tmp_path / "HR"
    for i in range(3):
        img = np.roll(demo_rgb, 7 * i, axis=1)[:, :125]  # 96×125: not a multiple of 4 in width
        write_image(folder / f"im{i}.png", torch.from_numpy(img).permute(2, 0, 1).float() / 255)
    return folder


def test_demo_split_is_by_image(demo_root):
    train = {p.stem for p in (demo_root / "train" / "HR").iterdir()}
    val = {p.stem for p in (demo_root / "val" / "HR").iterdir()}
    test = {p.stem for p in (demo_root / "test" / "HR").iterdir()}
    assert train == set(TRAIN_IMAGES) and val == set(VAL_IMAGES) and test == set(TEST_IMAGES)
    assert not train & val and not test & (train | val)


def test_lr_is_matlab_bicubic_rounded(small_hr):
    pairs = load_pairs([str(small_hr)], None, scale=4)
    hr = read_image(small_hr / "im0.png")[:, :96, :124]
    assert pairs[0].hr.shape == (96, 124, 3)  # mod-cropped
    expected = quantize_uint8(imresize(hr.double(), 0.25))
    got = torch.from_numpy(pairs[0].lr).permute(2, 0, 1).double() / 255
    assert torch.equal(got, expected)


def test_patch_alignment_with_imresize(small_hr):
    pairs = load_pairs([str(small_hr)], None, scale=4)
    ds = PairedPatchDataset(pairs, scale=4, hr_patch_size=64, length=12, augment=True)
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["lr"].shape == (3, 16, 16) and item["hr"].shape == (3, 64, 64)
        lr_from_hr = imresize(item["hr"].double(), 0.25).clamp(0, 1)  # uint8 LR saturates like MATLAB
        inner = (slice(None), slice(3, -3), slice(3, -3))  # kernel support at x4 is 4 LR px wide
        assert (item["lr"].double()[inner] - lr_from_hr[inner]).abs().max() <= 1 / 255 + 1e-6


def test_augment_pair_same_geometry():
    lr = np.arange(4 * 4 * 3).reshape(4, 4, 3)
    hr = lr.repeat(2, axis=0).repeat(2, axis=1)  # each LR pixel is a 2×2 HR block
    for flags in [(True, False, False), (False, True, True), (True, True, True)]:
        a, b = augment_pair(hr, lr, *flags)
        assert np.array_equal(a[::2, ::2], b)


def test_given_lr_folder_checked(tmp_path, small_hr):
    lr_dir = tmp_path / "LR"
    write_image(lr_dir / "im0.png", torch.zeros(3, 24, 31))
    write_image(lr_dir / "im1.png", torch.zeros(3, 20, 31))  # wrong height
    with pytest.raises(ImageReadError, match=r"im1.png: LR is 20x31 but HR im1.png at x4 needs 24x31"):
        load_pairs([str(small_hr)], [str(lr_dir)], scale=4)
    (lr_dir / "im1.png").unlink()
    with pytest.raises(FileNotFoundError, match="im1.png: no LR image"):
        load_pairs([str(small_hr)], [str(lr_dir)], scale=4)


def test_too_small_for_patch_names_file(small_hr):
    with pytest.raises(ImageReadError, match=r"im0.png: image is 96x125, smaller than the required 296x296"):
        load_pairs([str(small_hr)], None, scale=4, min_hr_size=296)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        load_pairs([str(tmp_path / "empty")], None, scale=4)


def demo_datamodule(demo_root, **kwargs) -> PairedSRDataModule:
    """The demo images, HR patches 32, batches of 4, 8 patches per epoch, no workers."""
    return PairedSRDataModule(
        train_hr=[str(demo_root / "train" / "HR")],
        val_hr=[str(demo_root / "val" / "HR")],
        hr_patch_size=32,
        batch_size=4,
        num_workers=0,
        patches_per_epoch=8,
        **kwargs,
    )


def test_datamodule_on_demo(demo_root):
    dm = demo_datamodule(demo_root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (4, 3, 8, 8) and batch["hr"].shape == (4, 3, 32, 32)
    assert 0 <= float(batch["hr"].min()) and float(batch["hr"].max()) <= 1
    val = next(iter(dm.val_dataloader()))
    assert val["hr"].shape[-1] == 4 * val["lr"].shape[-1]
    assert val["hr"].shape[-2] % 4 == 0


def test_make_lr_16bit():
    hr = (np.random.default_rng(0).random((16, 16, 3)) * 65535).astype(np.uint16)
    lr = make_lr(hr, 4)
    assert lr.dtype == np.uint16 and lr.shape == (4, 4, 3)


# ---------------------------------------------------------------- patches cut on the device
def _tiny_pairs(dtype=np.uint8) -> list:
    """Three images of different sizes with distinct random content (x2)."""
    from ranksrgan.data.hr_lr_pairs import ImagePair

    rng = np.random.default_rng(0)
    top = np.iinfo(dtype).max
    pairs = []
    for i, (h, w) in enumerate([(12, 16), (16, 12), (20, 20)]):
        hr = rng.integers(0, top + 1, (h, w, 3), dtype=np.int64).astype(dtype)
        lr = rng.integers(0, top + 1, (h // 2, w // 2, 3), dtype=np.int64).astype(dtype)
        pairs.append(ImagePair(f"im{i}", hr, lr))
    return pairs


def _find_patch(pairs, lr_patch: np.ndarray, hr_patch: np.ndarray, scale: int) -> int:
    """The index of the one image whose LR and HR hold these patches at aligned positions under one
    of the 8 flip / transpose combinations (searched exhaustively); fails otherwise."""
    p = lr_patch.shape[0]
    found = []
    for index, pair in enumerate(pairs):
        for y in range(pair.lr.shape[0] - p + 1):
            for x in range(pair.lr.shape[1] - p + 1):
                lr = pair.lr[y : y + p, x : x + p]
                hr = pair.hr[scale * y : scale * (y + p), scale * x : scale * (x + p)]
                for flips in np.ndindex(2, 2, 2):
                    a, b = augment_pair(hr, lr, *map(bool, flips))
                    if np.array_equal(b, lr_patch) and np.array_equal(a, hr_patch):
                        found.append(index)
    assert len(set(found)) == 1, f"patch found in images {found}"
    return found[0]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_device_patches_are_aligned_augmented_crops_with_exact_values(dtype):
    from ranksrgan.data.paired import DevicePatchLoader

    pairs = _tiny_pairs(dtype)
    top = float(np.iinfo(dtype).max)
    loader = DevicePatchLoader(pairs, scale=2, hr_patch_size=8, batch_size=4, length=12, device="cpu", seed=3)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    visits = []
    for batch in batches:
        assert batch["lr"].shape == (4, 3, 4, 4) and batch["hr"].shape == (4, 3, 8, 8)
        assert batch["lr"].dtype == batch["hr"].dtype == torch.float32
        for lr, hr in zip(batch["lr"], batch["hr"]):
            # exact float32 values k / top, as to_tensor makes them from the file's samples
            lr_int, hr_int = (np.rint(t.permute(1, 2, 0).double().numpy() * top).astype(dtype) for t in (lr, hr))
            assert torch.equal(lr, torch.from_numpy(lr_int.astype(np.float32) / np.float32(top)).permute(2, 0, 1))
            visits.append(_find_patch(pairs, lr_int, hr_int, 2))
    # 12 patches per epoch over 3 images: each image 4 times, in a shuffled order
    assert sorted(visits) == [0] * 4 + [1] * 4 + [2] * 4


def test_device_patches_of_a_set_mixing_8_and_16_bit_images():
    from ranksrgan.data.paired import DevicePatchLoader

    pairs = _tiny_pairs(np.uint8)[:2] + _tiny_pairs(np.uint16)[2:]
    loader = DevicePatchLoader(pairs, 2, 8, batch_size=6, length=6, device="cpu", augment=False, seed=0)
    batch = next(iter(loader))
    for lr, hr in zip(batch["lr"], batch["hr"]):
        # exact k / 255 for patches of the 8-bit images, k / 65535 for the 16-bit one
        matches = []
        for index, pair in enumerate(pairs):
            top = float(np.iinfo(pair.hr.dtype).max)
            hr_int = np.rint(hr.permute(1, 2, 0).double().numpy() * top)
            if hr_int.max() > top or not np.allclose(hr_int / top, hr.permute(1, 2, 0).double().numpy(), rtol=0, atol=1e-7):
                continue
            lr_int = np.rint(lr.permute(1, 2, 0).double().numpy() * top).astype(pair.hr.dtype)
            try:
                matches.append(_find_patch([pair], lr_int, hr_int.astype(pair.hr.dtype), 2) + index)
            except AssertionError:
                pass
        assert len(matches) == 1, matches


def test_device_patches_flip_and_reproduce_by_seed():
    from ranksrgan.data.paired import DevicePatchLoader

    pairs = _tiny_pairs()

    def epoch(seed, augment=True):
        loader = DevicePatchLoader(pairs, 2, 8, batch_size=8, length=64, device="cpu", augment=augment, seed=seed)
        return torch.cat([b["hr"] for b in loader])

    assert torch.equal(epoch(1), epoch(1))
    assert not torch.equal(epoch(1), epoch(2))
    # with augmentation some patches are flipped or transposed, without none is
    flipped = []
    for augment in (True, False):
        loader = DevicePatchLoader(pairs, 2, 8, batch_size=8, length=64, device="cpu", augment=augment, seed=5)
        batch = next(iter(loader))
        flipped.append(
            sum(
                not any(
                    np.array_equal(hr, pair.hr[y : y + 8, x : x + 8])
                    for pair in pairs
                    for y in range(pair.hr.shape[0] - 7)
                    for x in range(pair.hr.shape[1] - 7)
                )
                for hr in np.rint(batch["hr"].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
            )
        )
    assert flipped[0] > 0 and flipped[1] == 0


def test_device_patches_short_epoch_and_bad_sizes():
    from ranksrgan.data.paired import DevicePatchLoader

    pairs = _tiny_pairs()
    short = DevicePatchLoader(pairs, 2, 8, batch_size=8, length=3, device="cpu")
    assert len(short) == 1 and next(iter(short))["hr"].shape[0] == 3  # shorter than one batch: kept
    assert len(DevicePatchLoader(pairs, 2, 8, batch_size=4, length=10, device="cpu")) == 2  # partial batch dropped
    with pytest.raises(ImageReadError, match="im0"):
        DevicePatchLoader(pairs, 2, 14, batch_size=2, length=4, device="cpu")
    with pytest.raises(ValueError, match="multiple of scale"):
        DevicePatchLoader(pairs, 2, 7, batch_size=2, length=4, device="cpu")


def test_datamodule_patches_on_device_follow_the_global_seed(demo_root):
    from ranksrgan.data.paired import DevicePatchLoader

    def first_batch(seed):
        dm = demo_datamodule(demo_root, patches_on_device=True)
        torch.manual_seed(seed)
        loader = dm.train_dataloader()
        assert isinstance(loader, DevicePatchLoader) and len(loader) == 2
        return next(iter(loader))

    a, b = first_batch(0), first_batch(0)
    assert a["lr"].shape == (4, 3, 8, 8) and a["hr"].shape == (4, 3, 32, 32)
    assert torch.equal(a["hr"], b["hr"]) and not torch.equal(a["hr"], first_batch(1)["hr"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_patches_on_cuda_equal_the_cpu_ones():
    from ranksrgan.data.paired import DevicePatchLoader

    pairs = _tiny_pairs()
    cpu = DevicePatchLoader(pairs, 2, 8, batch_size=4, length=16, device="cpu", seed=9)
    cuda = DevicePatchLoader(pairs, 2, 8, batch_size=4, length=16, device="cuda", seed=9)
    for a, b in zip(cpu, cuda):
        assert b["hr"].device.type == "cuda"
        assert torch.equal(a["lr"], b["lr"].cpu()) and torch.equal(a["hr"], b["hr"].cpu())
