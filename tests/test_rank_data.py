"""Rank datasets: SR (labels, resume, filters, split), interpolation and blur/noise distortion."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from ranksrgan.data.demo import demo_image
from ranksrgan.data.rank import bicubic_upscale, pair_item, sample_level_pair, split_by_image, sr_labelling
from ranksrgan.data.rank.distortion import DistortionRankDataModule, blur_kernel_size, distort
from ranksrgan.data.rank.interp import InterpRankDataModule, interpolate
from ranksrgan.data.rank.labels import (
    LABEL_FORMAT,
    LabelTable,
    PartWriter,
    part_path,
    read_labels,
    write_labels,
)
from ranksrgan.data.rank.patch_scores import combine_metrics, parse_metric_spec, sharpness
from ranksrgan.data.rank.sr import SRRankDataModule
from ranksrgan.data.rank.sr_labelling import build_sr_labels, select_locations
from ranksrgan.io import ImageReadError, to_tensor, write_image

CROPS = {  # name -> (image, top, left, h, w); sizes are multiples of 4
    "astro": ("astronaut", 40, 100, 128, 160),
    "coffee": ("coffee", 100, 150, 128, 128),
    "rocket": ("rocket", 150, 200, 132, 128),
    "chelsea": ("chelsea", 60, 120, 128, 144),
}


def _write(folder: Path, name: str, arr: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / f"{name}.png", to_tensor(arr))


@pytest.fixture(scope="module")
def hr_arrays() -> dict[str, np.ndarray]:
    out = {}
    for name, (img, top, left, h, w) in CROPS.items():
        out[name] = np.ascontiguousarray(demo_image(img)[top : top + h, left : left + w])
    return out


@pytest.fixture()
def sr_folders(tmp_path, hr_arrays) -> dict[str, Path]:
    """HR folder + a 'soft' folder (bicubic x4 SR written to PNG) with the same stems."""
    for name, arr in hr_arrays.items():
        _write(tmp_path / "HR", name, arr)
        _write(tmp_path / "soft", name, bicubic_upscale(arr, 4))
    return {"hr": tmp_path / "HR", "soft": tmp_path / "soft"}


def _sources(f):
    """Two levels, best first: the HR itself and a folder of bicubic SR."""
    return {"sharp": "hr", "soft": str(f["soft"])}


# ----------------------------------------------------------------------------- shared helpers


def test_pair_sampling_and_target_polarity():
    torch.manual_seed(0)
    seen = {}
    for _ in range(600):
        i, j = sample_level_pair(3)
        assert i != j
        seen[(i, j)] = seen.get((i, j), 0) + 1
    assert set(seen) == {(a, b) for a in range(3) for b in range(3) if a != b}
    assert min(seen.values()) > 60  # roughly uniform over the 6 ordered pairs
    x = torch.zeros(3, 4, 4)
    assert pair_item(x, x, 2, 0, 4.0, 0.1)["target"] == 1.0  # img1 worse -> +1
    assert pair_item(x, x, 0, 1, 0.1, 2.0)["target"] == -1.0
    with pytest.raises(ValueError, match="different levels"):
        pair_item(x, x, 1, 1, 0.0, 0.0)


def test_sharpness_orders_blur():
    x = to_tensor(demo_image("astronaut")[:64, :64])[None]
    blurred = distort(x, "blur", torch.tensor([2.0]), torch.tensor([0]))
    flat = torch.full_like(x, 0.5)
    s = sharpness(torch.cat([x, blurred, flat]))
    assert s[0] > s[1] > s[2] and s[2] == 0


def test_metric_spec_polarity_and_weights():
    cols = {"niqe": np.array([3.0, 5.0]), "ma": np.array([8.0, 6.0]), "rmse": np.array([10.0, 20.0])}
    np.testing.assert_allclose(combine_metrics(cols, "niqe"), [3.0, 5.0])
    np.testing.assert_allclose(combine_metrics(cols, {"ma": 1.0}), [2.0, 4.0])  # 10 - Ma: higher = worse
    np.testing.assert_allclose(combine_metrics(cols, {"niqe": 1.0, "rmse": 0.4}), [7.0, 13.0])
    np.testing.assert_allclose(combine_metrics(cols, {"niqe": 0.5, "ma": 0.5}), [2.5, 4.5])  # PI
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metric_spec({"lpips": 1.0})
    with pytest.raises(ValueError, match="not in the label file"):
        combine_metrics(cols, "pi")


# ----------------------------------------------------------------------------- label file


def _table(rows):
    meta = {
        "format": LABEL_FORMAT,
        "hr": "h",
        "sr": {"a": "hr", "b": "bicubic"},
        "methods": ["a", "b"],
        "metrics": ["niqe"],
        "patch_size": 64,
        "stride": 32,
        "crop_border": 4,
        "scale": 4,
    }
    return LabelTable(meta, ["image", "y", "x", "method", "sharpness", "rmse", "niqe"], rows)


def test_label_file_round_trip(tmp_path):
    rows = [
        ["img,1", 0, 32, "b", 1.0 / 3.0, 0.0, float("nan")],
        ["img,1", 0, 32, "a", 2.5e-17, 1e300, 4.25],
        ["x", 10, 0, "a", 1.0, 2.0, 3.0],
    ]
    path = tmp_path / "labels.csv"
    write_labels(path, _table(rows + [["x", 10, 0, "a", 9.0, 9.0, 9.0]]))  # a duplicate key: dropped
    back = read_labels(path)
    assert back.meta == _table(rows).meta
    assert len(back) == 3
    by_key = {tuple(r[:4]): r for r in back.rows}
    for r in rows:
        got = by_key[tuple(r[:4])]
        assert got[:4] == r[:4]
        for a, b in zip(got[4:], r[4:]):
            assert (math.isnan(a) and math.isnan(b)) or a == b  # exact (repr) round trip
    assert [r[3] for r in back.rows[:2]] == ["a", "b"]  # sorted by image, y, x, method order
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind
    (tmp_path / "bad.csv").write_text("image,y\n")
    with pytest.raises(ValueError, match="bad.csv"):
        read_labels(tmp_path / "bad.csv")


def test_part_writer_torn_line_and_settings(tmp_path):
    out = tmp_path / "l.csv"
    w = PartWriter(out, _table([]).meta)
    w.append([["a", 0, 0, "a", 1.0, 2.0, 3.0]])
    with open(part_path(out), "a") as fh:
        fh.write("a,0,0,b,1.0,2")  # a run stopped in the middle of a line
    w2 = PartWriter(out, _table([]).meta)
    assert w2.done == {("a", 0, 0, "a")}
    w2.append([["a", 0, 0, "b", 1.0, 2.0, 3.0], ["a", 0, 0, "a", 7.0, 7.0, 7.0]])  # second is a known key
    table = w2.finish()
    assert [r[3] for r in table.rows] == ["a", "b"] and table.rows[0][4] == 1.0
    assert not part_path(out).exists()
    other = dict(_table([]).meta, stride=99)
    PartWriter(tmp_path / "m.csv", _table([]).meta)
    with pytest.raises(ValueError, match="other settings.*stride"):
        PartWriter(tmp_path / "m.csv", other)


# ----------------------------------------------------------------------------- SR labels: build, resume


def test_build_resume_after_interruption_equals_uninterrupted(tmp_path, sr_folders, monkeypatch):
    kwargs = dict(metrics=[], patch_size=64, stride=48, crop_border=4, batch_size=5, progress=False)
    ref = build_sr_labels(sr_folders["hr"], _sources(sr_folders), tmp_path / "ref.csv", **kwargs)
    n_patches = len(ref)
    assert n_patches == sum(len(range(0, h - 63, 48)) * len(range(0, w - 63, 48)) * 2 for (_, _, _, h, w) in CROPS.values())

    calls = {"n": 0}
    real = sr_labelling.label_metrics

    def failing(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 4:
            raise RuntimeError("injected interruption")
        return real(*args, **kw)

    monkeypatch.setattr(sr_labelling, "label_metrics", failing)
    out = tmp_path / "labels.csv"
    with pytest.raises(RuntimeError, match="injected"):
        build_sr_labels(sr_folders["hr"], _sources(sr_folders), out, **kwargs)
    assert not out.exists() and part_path(out).exists()
    partial = PartWriter(out, ref.meta)
    per_image = {}
    for r in ref.rows:
        per_image[r[0]] = per_image.get(r[0], 0) + 1
    chunks = [min(5, n - i) for img, n in sorted(per_image.items()) for i in range(0, n, 5)]
    assert len(partial.rows) == sum(chunks[:4])  # the four finished chunks made it to disk
    done = {}
    for r in partial.rows:
        done[r[0]] = done.get(r[0], 0) + 1
    expected_batches = sum(math.ceil((n - done.get(img, 0)) / 5) for img, n in per_image.items())

    calls["n"] = -(10**9)  # no more failures; count the batches computed on resume
    table = build_sr_labels(sr_folders["hr"], _sources(sr_folders), out, **kwargs)
    assert calls["n"] + 10**9 == expected_batches  # only the missing patches were scored
    keys = table.keys()
    assert len(keys) == len(set(keys)) == n_patches
    assert table.rows == ref.rows and table.meta == ref.meta
    assert not part_path(out).exists()
    assert read_labels(out).rows == ref.rows
    # a finished file with the same settings is reused; other settings are refused
    assert build_sr_labels(sr_folders["hr"], _sources(sr_folders), out, **kwargs).rows == ref.rows
    with pytest.raises(ValueError, match="other settings"):
        build_sr_labels(sr_folders["hr"], _sources(sr_folders), out, **dict(kwargs, stride=40))


def test_misaligned_sr_folders_and_corrupt_files(tmp_path, sr_folders, hr_arrays):
    src = _sources(sr_folders)
    kw = dict(metrics=[], patch_size=64, stride=64, progress=False)
    (sr_folders["soft"] / "coffee.png").unlink()
    _write(sr_folders["soft"], "zebra", hr_arrays["astro"])
    with pytest.raises(ValueError, match=r"missing 1 \(coffee\).*extra 1 \(zebra.png\)"):
        build_sr_labels(sr_folders["hr"], src, tmp_path / "a.csv", **kw)
    (sr_folders["soft"] / "zebra.png").unlink()
    _write(sr_folders["soft"], "coffee", hr_arrays["coffee"][:100, :100])
    with pytest.raises(ImageReadError, match=r"soft/coffee.png: SR image is 100x100 but HR .*coffee.png is 128x128"):
        build_sr_labels(sr_folders["hr"], src, tmp_path / "b.csv", **kw)
    (sr_folders["soft"] / "coffee.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ImageReadError, match=r"soft/coffee.png: cannot decode"):
        build_sr_labels(sr_folders["hr"], src, tmp_path / "c.csv", **kw)
    with pytest.raises(ValueError, match="at least two methods"):
        build_sr_labels(sr_folders["hr"], {"only": "hr"}, tmp_path / "d.csv", **kw)


def test_niqe_labels_on_real_patches(tmp_path, hr_arrays):
    arr = np.ascontiguousarray(demo_image("astronaut")[:208, :208])
    _write(tmp_path / "HR", "astro", arr)
    table = build_sr_labels(
        tmp_path / "HR",
        {"hr": "hr", "bicubic": "bicubic"},
        tmp_path / "l.csv",
        metrics=["niqe"],
        patch_size=200,
        stride=200,
        progress=False,
    )
    niqe = dict(zip(table.column("method"), table.column("niqe")))
    rmse = dict(zip(table.column("method"), table.column("rmse")))
    assert len(table) == 2 and np.isfinite(list(niqe.values())).all()
    assert niqe["bicubic"] > niqe["hr"]  # the bicubic SR is less natural than the HR
    assert rmse["hr"] == 0.0 and rmse["bicubic"] > 1.0


# ----------------------------------------------------------------------------- SR labels: selection, split, data module


def _rows(values, methods=("a", "b", "c"), sharp=(10.0, 10.0, 10.0), image="i", y=0, x=0):
    return [[image, y, x, m, s, v, v] for m, v, s in zip(methods, values, sharp)]


def _sel_table(rows):
    meta = {
        "format": LABEL_FORMAT,
        "hr": "h",
        "sr": {},
        "methods": ["a", "b", "c"],
        "metrics": ["niqe"],
        "patch_size": 64,
        "stride": 32,
        "crop_border": 4,
        "scale": 4,
    }
    return LabelTable(meta, ["image", "y", "x", "method", "sharpness", "rmse", "niqe"], rows)


def test_select_locations_labels_and_filters():
    rows = (
        _rows([5.0, 3.0, 4.0], y=0)
        + _rows([3.0, 3.05, 6.0], y=1)  # gap 0.05 < 0.1: dropped
        + _rows([2.0, 4.0, 6.0], sharp=(0.5, 9.0, 9.0), y=2)  # best (a) too flat: dropped
        + _rows([1.0, 2.0, float("nan")], y=3)
    )  # NaN: dropped
    table = _sel_table(rows)
    mr = select_locations(table, "niqe", "rank", min_sharpness=1.0, min_gap=0.1)
    assert [loc.y for loc in mr] == [0]
    np.testing.assert_array_equal(mr[0].levels, [2, 0, 1])  # rank of NIQE, 0 = best
    np.testing.assert_allclose(mr[0].values, [5.0, 3.0, 4.0])
    mc = select_locations(table, "niqe", "method", min_sharpness=1.0, min_gap=0.1)
    np.testing.assert_array_equal(mc[0].levels, [0, 1, 2])  # method order, best first
    # in MC the best level is method a: location y=2 has a flat a -> dropped too
    assert [loc.y for loc in mc] == [0]
    many = _sel_table([r for y in range(10) for r in _rows([1.0, 2.0, 3.0], y=y)])
    a = select_locations(many, max_patches_per_image=4, seed=1)
    b = select_locations(many, max_patches_per_image=4, seed=1)
    assert len(a) == 4 and [loc.y for loc in a] == [loc.y for loc in b]
    with pytest.raises(ValueError, match="label_mode"):
        select_locations(many, label_mode="score")


def test_split_by_source_image_is_deterministic_and_disjoint():
    names = [f"img{i:03d}" for i in range(50)]
    tr, va = split_by_image(names + names, 0.1, seed=3)
    assert len(va) == 5 and not tr & va and tr | va == set(names)
    assert split_by_image(names, 0.1, seed=3) == (tr, va)
    assert split_by_image(names, 0.1, seed=4)[1] != va
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_image(names, 1.0, 0)


def test_sr_datamodule_batches(tmp_path, sr_folders, hr_arrays):
    labels = tmp_path / "labels.csv"
    for name in CROPS:  # a third, distinct level: the HR with strong noise
        hr = to_tensor(demo_image(CROPS[name][0]))[None]
        top, left, h, w = CROPS[name][1:]
        noisy = distort(hr[..., top : top + h, left : left + w], "noise", torch.tensor([40.0]), torch.tensor([0]))
        write_image(sr_folders["hr"].parent / "noisy" / f"{name}.png", noisy[0])
    sources = _sources(sr_folders) | {"noisy": str(sr_folders["hr"].parent / "noisy")}
    dm = SRRankDataModule(
        str(labels),
        hr=str(sr_folders["hr"]),
        sr=sources,
        metric="rmse",
        patch_size=64,
        stride=32,
        min_gap=0.0,
        val_fraction=0.25,
        seed=0,
        batch_size=4,
        num_workers=0,
        label_batch_size=8,
    )
    dm.prepare_data()
    dm.setup("fit")
    train_imgs = {loc.image for loc in dm.train_set.locations}
    val_imgs = {loc.image for loc in dm.val_set.locations}
    assert len(val_imgs) == 1 and len(train_imgs) == 3 and not train_imgs & val_imgs
    batch = next(iter(dm.train_dataloader()))
    assert batch["img1"].shape == batch["img2"].shape == (4, 3, 64, 64)
    assert batch["img1"].min() >= 0 and batch["img1"].max() <= 1
    assert torch.equal(batch["target"], torch.where(batch["level1"] > batch["level2"], 1.0, -1.0))
    # MR on RMSE: the worse (higher level) image has the higher RMSE
    assert torch.equal(batch["value1"] > batch["value2"], batch["level1"] > batch["level2"])
    val = next(iter(dm.val_dataloader()))
    assert val["images"].shape[1:] == (3, 3, 64, 64) and val["levels"].shape[1] == 3
    assert (val["levels"].sort(dim=1).values == torch.arange(3)).all()
    # the HR method ("sharp") has RMSE 0: always the best level
    assert (val["levels"][:, 0] == 0).all()
    # images are stacked in method order: sharp (= HR), soft (bicubic SR), noisy
    loc = dm.val_set.locations[0]
    hr_patch = to_tensor(np.ascontiguousarray(hr_arrays[loc.image][loc.y : loc.y + 64, loc.x : loc.x + 64]))
    assert torch.equal(val["images"][0, 0], hr_patch)
    assert not torch.equal(val["images"][0, 1], hr_patch) and not torch.equal(val["images"][0, 2], hr_patch)
    assert (val["images"][0, 2] - hr_patch).abs().mean() > (val["images"][0, 1] - hr_patch).abs().mean()
    # the same file again, model classification, from the label file alone
    dm2 = SRRankDataModule(
        str(labels),
        label_mode="method",
        metric="rmse",
        patch_size=64,
        min_gap=0.0,
        val_fraction=0.25,
        seed=0,
        batch_size=4,
        num_workers=0,
    )
    dm2.setup("fit")
    v2 = next(iter(dm2.val_dataloader()))
    assert (v2["levels"] == torch.arange(3)).all()
    with pytest.raises(ValueError, match="metric"):
        SRRankDataModule(str(labels), metric="niqe", patch_size=64, num_workers=0).setup("fit")
    # labelling settings that are given must agree with the file's header
    with pytest.raises(ValueError, match="built with stride=32, but the config says stride=99"):
        SRRankDataModule(str(labels), metric="rmse", patch_size=64, stride=99, num_workers=0).setup("fit")


# ----------------------------------------------------------------------------- interpolation


@pytest.fixture()
def hr_split(tmp_path, hr_arrays) -> tuple[str, str]:
    for name in ("astro", "rocket", "chelsea"):
        _write(tmp_path / "train", name, hr_arrays[name])
    _write(tmp_path / "val", "coffee", hr_arrays["coffee"])
    return str(tmp_path / "train"), str(tmp_path / "val")


def test_interp_datamodule(hr_split, tmp_path, hr_arrays):
    dm = InterpRankDataModule(
        [hr_split[0]],
        [hr_split[1]],
        sr="bicubic",
        patch_size=48,
        batch_size=6,
        num_workers=0,
        patches_per_epoch=12,
        val_windows_per_image=3,
    )
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["img1"].shape == (6, 3, 48, 48)
    assert torch.equal(batch["target"], torch.where(batch["level1"] > batch["level2"], 1.0, -1.0))
    lambdas = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    assert torch.allclose(batch["value1"], lambdas[batch["level1"]])
    val = next(iter(dm.val_dataloader()))
    assert val["images"].shape == (3, 5, 3, 48, 48)
    stack = val["images"][0]
    hr_patch, sr_patch = stack[0], stack[-1]  # lambda 0 = HR, lambda 1 = SR (8-bit values)
    assert torch.allclose(stack[2], interpolate(sr_patch, hr_patch, 0.5))
    assert torch.equal(torch.round(stack * 255) / 255, stack)
    assert (stack[0] - stack[-1]).abs().mean() > 0.005
    y, x = dm.val_set.items[0][1:]
    np.testing.assert_allclose(hr_patch.permute(1, 2, 0).numpy() * 255, hr_arrays["coffee"][y : y + 48, x : x + 48], atol=1e-3)
    # an SR folder works too; a wrong size is refused with the file named
    sr_dir = tmp_path / "srdir"
    for name, arr in hr_arrays.items():
        _write(sr_dir, name, bicubic_upscale(arr, 4))
    dm2 = InterpRankDataModule(
        [hr_split[0]], [hr_split[1]], sr=str(sr_dir), patch_size=48, num_workers=0, val_windows_per_image=3
    )
    dm2.setup()
    assert torch.equal(next(iter(dm2.val_dataloader()))["images"], next(iter(dm.val_dataloader()))["images"])
    _write(sr_dir, "coffee", hr_arrays["coffee"][:64])
    with pytest.raises(ImageReadError, match="srdir/coffee.png"):
        InterpRankDataModule([hr_split[0]], [hr_split[1]], sr=str(sr_dir), patch_size=48, num_workers=0).setup()
    with pytest.raises(ValueError, match="strictly increasing"):
        InterpRankDataModule([hr_split[0]], [hr_split[1]], lambdas=[0.0, 1.0, 0.5])


# ----------------------------------------------------------------------------- blur / noise


def _batches(dm, seed):
    pl.seed_everything(seed, workers=True)
    train = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    val = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    return train, val


@pytest.mark.parametrize("kind", ["blur", "noise"])
def test_distortion_datamodule_batches_and_reproducibility(hr_split, kind):
    dm = DistortionRankDataModule(
        kind,
        [hr_split[0]],
        [hr_split[1]],
        patch_size=48,
        batch_size=8,
        num_workers=0,
        patches_per_epoch=16,
        val_windows_per_image=4,
    )
    dm.setup()
    t1, v1 = _batches(dm, 7)
    t2, v2 = _batches(dm, 7)
    t3, _ = _batches(dm, 8)
    for k in t1:
        assert torch.equal(t1[k], t2[k]), k
    assert torch.equal(v1["images"], v2["images"])
    assert not torch.equal(t1["img1"], t3["img1"])
    assert t1["img1"].shape == (8, 3, 48, 48) and v1["images"].shape == (4, 3, 3, 48, 48)
    assert torch.equal(t1["target"], torch.where(t1["level1"] > t1["level2"], 1.0, -1.0))
    assert torch.equal(torch.round(t1["img1"] * 255) / 255, t1["img1"])  # stored-image 8-bit levels
    assert 0 <= t1["img1"].min() and t1["img1"].max() <= 1
    levels = torch.tensor(dm.levels)
    assert torch.allclose(t1["value1"], levels[t1["level1"]])
    images = v1["images"]
    clean = next(iter(dm.val_dataloader()))["hr"]
    err = (images - clean[:, None]).pow(2).mean(dim=(0, 2, 3, 4)).sqrt() * 255  # per level, 0-255
    assert err[0] < err[1] < err[2]  # more distortion at higher levels
    if kind == "noise":
        np.testing.assert_allclose(err[1:].numpy(), [15.0, 30.0], rtol=0.15)  # std (clipping lowers it a bit)


def test_blur_matches_the_gaussian_and_noise_seeds():
    x = torch.zeros(1, 1, 41, 41)
    x[..., 20, 20] = 1.0
    import kornia

    out = kornia.filters.gaussian_blur2d(x, (blur_kernel_size(2.0),) * 2, torch.tensor([[2.0, 2.0]]))
    g = torch.exp(-(torch.arange(-20, 21.0) ** 2) / 8.0)
    g = g / g[8:33].sum()  # kernel side 2*ceil(6)+1 = 13 -> taps -6..6
    assert blur_kernel_size(2.0) == 13 and blur_kernel_size(0.1) == 3
    assert torch.allclose(out[0, 0, 20, 20], g[20] * g[20], atol=1e-4)
    img = torch.rand(2, 3, 16, 16)
    a = distort(img, "noise", torch.tensor([15.0, 15.0]), torch.tensor([1, 2]))
    b = distort(img, "noise", torch.tensor([15.0, 15.0]), torch.tensor([1, 2]))
    c = distort(img, "noise", torch.tensor([15.0, 15.0]), torch.tensor([1, 3]))
    assert torch.equal(a, b) and torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    with pytest.raises(ValueError, match="kind"):
        distort(img, "jpeg", torch.tensor([1.0, 1.0]), torch.tensor([0, 0]))


def test_demo_folders_are_built(tmp_path):
    root = tmp_path / "demo"
    dm = DistortionRankDataModule(
        "blur",
        [str(root / "train/HR")],
        [str(root / "val/HR")],
        patch_size=64,
        num_workers=0,
        build_demo=True,
        demo_root=str(root),
    )
    dm.prepare_data()
    dm.setup()
    assert len(dm.train_set.images) == 4 and len(dm.val_set) > 0  # astronaut, hubble, retina, ihc


def test_min_sharpness_skips_flat_windows():
    from ranksrgan.data.rank import random_window, val_windows

    img = np.full((128, 128, 3), 128, np.uint8)
    img[64:, 64:] = demo_image("astronaut")[200:264, 200:264]  # only the bottom-right quarter has texture
    assert val_windows(img, 64, 10, seed=0, min_sharpness=2.0) == [(64, 64)]
    assert len(val_windows(img, 64, 10, seed=0)) == 4
    torch.manual_seed(0)
    wins = [random_window(img, 64, min_sharpness=2.0, tries=64) for _ in range(20)]
    flat = to_tensor(img)[None]
    for y, x in wins:
        assert float(sharpness(flat[..., y : y + 64, x : x + 64])) >= 2.0


def test_interp_from_a_generator_checkpoint(hr_split, tmp_path):
    from ranksrgan.checkpoints import load_generator
    from ranksrgan.data.hr_lr_pairs import make_lr
    from ranksrgan.export import save_state_dict
    from ranksrgan.nets import SRResNet

    torch.manual_seed(0)
    ckpt = save_state_dict(SRResNet(num_features=8, num_blocks=1), tmp_path / "g.pth")
    dm = InterpRankDataModule([hr_split[0]], [hr_split[1]], sr=str(ckpt), patch_size=48, num_workers=0, val_windows_per_image=2)
    dm.setup()
    hr, sr = dm.val_set.pairs[0]
    assert hr.shape == sr.shape and sr.dtype == np.uint8
    with torch.no_grad():
        expected = load_generator(ckpt)(to_tensor(make_lr(hr, 4))[None]).clamp(0, 1)[0]
    assert np.abs(sr.astype(np.float64) - expected.permute(1, 2, 0).numpy() * 255).max() <= 0.5 + 1e-3
    with pytest.raises(ValueError, match="generator checkpoint"):
        InterpRankDataModule([hr_split[0]], [hr_split[1]], sr=__file__, patch_size=48, num_workers=0).setup()


def test_hr_folder_settings_reach_every_rank_data_module(tmp_path):
    """The blur/noise, interpolation and albumentations data modules take the HR-folder settings
    as keywords and hand them all to HRRankDataModule."""
    from ranksrgan.data.rank.degradations import AlbumentationsRankDataModule

    settings = {
        "patch_size": 48,
        "batch_size": 3,
        "num_workers": 0,
        "patches_per_epoch": 17,
        "val_windows_per_image": 5,
        "min_sharpness": 2.5,
        "augment": False,
        "seed": 11,
        "build_demo": True,
        "demo_root": str(tmp_path / "demo"),
    }
    folders = (str(tmp_path / "train"), str(tmp_path / "val"))
    modules = [
        DistortionRankDataModule("blur", *folders, **settings),
        InterpRankDataModule(*folders, **settings),
        AlbumentationsRankDataModule(
            "ImageCompression", [{"quality_range": (90, 90)}, {"quality_range": (20, 20)}], *folders, **settings
        ),
    ]
    for dm in modules:
        assert {name: getattr(dm, name) for name in settings} == settings, type(dm).__name__
        assert (dm.train_hr, dm.val_hr) == ([folders[0]], [folders[1]])
    with pytest.raises(TypeError, match="patch_sise"):
        DistortionRankDataModule("noise", *folders, patch_sise=48)
