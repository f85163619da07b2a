"""Colour measures (RGB PSNR, chroma ratio, CIEDE2000), Ranker scores in ``evaluate`` and the
methods-as-rows comparison table, against values computed here by hand."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from ranksrgan.data.paired import make_lr
from ranksrgan.evaluation import (
    METRICS,
    BenchmarkSet,
    evaluate,
    format_comparison,
    format_markdown,
    metric_spec,
    ranker_score,
    score_batch,
    write_evaluation,
)
from ranksrgan.export import save_state_dict
from ranksrgan.io import decode_image, to_tensor, write_image
from ranksrgan.metrics.fidelity import chroma_ratio, ciede2000, psnr_rgb, psnr_y
from ranksrgan.nets import Ranker
from ranksrgan.ops import imresize, quantize_uint8

pytestmark = pytest.mark.usefixtures("isolated_command_env")


def _grey(img: np.ndarray) -> np.ndarray:
    """R = G = B = the rounded mean of the three channels (no chroma at all)."""
    g = np.round(img.astype(np.float64).mean(axis=2)).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


# ----------------------------------------------------------------------------- metric functions


def test_psnr_rgb_by_hand():
    hr = torch.zeros(1, 3, 4, 4)
    hr[0, :, 1, 2] = torch.tensor([10, 20, 30]) / 255
    sr = hr.clone()
    sr[0, 2, 0, 0] = 6 / 255  # one blue value off by 6 levels: MSE = (6/255)^2 / 48
    expected = 10 * math.log10(48 * 255**2 / 36)
    assert float(psnr_rgb(sr, hr)[0]) == pytest.approx(expected, abs=1e-9)
    assert math.isinf(float(psnr_rgb(hr, hr)[0]))
    # border crop: the changed pixel is at the corner and is shaved away
    assert math.isinf(float(psnr_rgb(sr, hr, crop_border=1)[0]))


def test_psnr_rgb_sees_what_psnr_y_misses(demo_rgb):
    hr = to_tensor(demo_rgb)[None]
    grey = to_tensor(_grey(demo_rgb))[None]
    # the grey image keeps most of the luma but none of the colour
    assert float(psnr_rgb(grey, hr)[0]) < float(psnr_y(grey, hr)[0]) - 3.0


def test_chroma_ratio_grey_is_zero_hr_is_one(demo_rgb):
    hr = to_tensor(demo_rgb)[None]
    grey = to_tensor(_grey(demo_rgb))[None]
    assert float(chroma_ratio(hr, hr)[0]) == 1.0
    assert float(chroma_ratio(grey, hr, crop_border=4)[0]) == 0.0
    # no chroma in the reference: undefined
    assert math.isnan(float(chroma_ratio(hr, grey)[0]))


def test_chroma_ratio_matches_formula(demo_rgb):
    rng = np.random.default_rng(3)
    hr8 = demo_rgb
    sr8 = np.clip(demo_rgb.astype(int) + rng.integers(-30, 31, demo_rgb.shape), 0, 255).astype(np.uint8)

    # MATLAB rgb2ycbcr chroma, by hand, on the 8-bit values with 2 px shaved
    def chroma_std(img):
        x = img[2:-2, 2:-2].astype(np.float64) / 255
        cb = 128 - 37.797 * x[..., 0] - 74.203 * x[..., 1] + 112.0 * x[..., 2]
        cr = 128 + 112.0 * x[..., 0] - 93.786 * x[..., 1] - 18.214 * x[..., 2]
        return cb.std() + cr.std()

    expected = chroma_std(sr8) / chroma_std(hr8)
    got = float(chroma_ratio(to_tensor(sr8)[None], to_tensor(hr8)[None], crop_border=2)[0])
    assert got == pytest.approx(expected, rel=1e-10)
    # halving the colour around grey halves the ratio (unrounded, so exact)
    hr = to_tensor(hr8)[None].double()
    y = hr.mean(dim=1, keepdim=True)
    half = y + 0.5 * (hr - y)
    assert float(chroma_ratio(half, hr, quantize=False)[0]) == pytest.approx(0.5, rel=1e-12)


def test_ciede2000_zero_for_equal_and_matches_skimage(demo_rgb):
    from skimage.color import deltaE_ciede2000, rgb2lab

    hr = to_tensor(demo_rgb)[None]
    grey = to_tensor(_grey(demo_rgb))[None]
    assert float(ciede2000(hr, hr)[0]) == 0.0
    a = _grey(demo_rgb)[3:-3, 3:-3].astype(np.float64) / 255
    b = demo_rgb[3:-3, 3:-3].astype(np.float64) / 255
    expected = deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).mean()
    assert float(ciede2000(grey, hr, crop_border=3)[0]) == pytest.approx(expected, rel=1e-9)


def test_metric_table_and_score_batch(demo_rgb):
    assert METRICS["psnr_rgb"].higher_is_better and METRICS["psnr_rgb"].full_reference
    assert METRICS["chroma"].ideal == 1.0 and METRICS["chroma"].arrow == "→1"
    assert not METRICS["deltae"].higher_is_better
    assert METRICS["chroma"].best([0.2, 1.3, 0.8, math.nan]) == 0.8
    spec = metric_spec("rank/blur")
    assert spec.label == "Rank-blur" and not spec.higher_is_better and spec.arrow == "↓"
    with pytest.raises(KeyError):
        metric_spec("nope")
    hr = to_tensor(demo_rgb)[None]
    grey = to_tensor(_grey(demo_rgb))[None]
    out = score_batch(torch.cat([hr, grey]), ["psnr_rgb", "chroma"], torch.cat([hr, hr]), crop_border=4)
    assert math.isinf(out["psnr_rgb"][0]) and out["chroma"][0] == 1.0
    assert out["chroma"][1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="needs reference"):
        score_batch(hr, ["chroma"])


# ----------------------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def colour_bench(tmp_path_factory):
    """Set ``Tiny``: two HR crops (200×204 after the x4 mod-crop, 200×200); SR folder ``grey``
    (the HR made grey); a tiny VGG-8 Ranker saved as a checkpoint."""
    from ranksrgan.data.demo import demo_image

    root = tmp_path_factory.mktemp("colour")
    hr_dir, grey_dir = root / "Tiny", root / "grey"
    hr_dir.mkdir()
    grey_dir.mkdir()
    hrs = {
        "ast": np.ascontiguousarray(demo_image("astronaut")[40:243, 100:306]),
        "cat": np.ascontiguousarray(demo_image("chelsea")[60:260, 120:320]),
    }
    for name, img in hrs.items():
        write_image(hr_dir / f"{name}.png", to_tensor(img))
        crop = np.ascontiguousarray(img[: img.shape[0] // 4 * 4, : img.shape[1] // 4 * 4])
        write_image(grey_dir / f"{name}.png", to_tensor(_grey(crop)))
    torch.manual_seed(0)
    ranker = Ranker("vgg8", num_features=4).eval()
    ckpt = save_state_dict(ranker, root / "tiny_ranker.pth")
    return {"hr": hr_dir, "grey": grey_dir, "ranker": ranker, "ranker_ckpt": ckpt}


def _hr8(bench, stem):
    img = decode_image(bench["hr"] / f"{stem}.png")
    return np.ascontiguousarray(img[: img.shape[0] // 4 * 4, : img.shape[1] // 4 * 4])


def test_evaluate_colour_metrics_and_ranker_scores(colour_bench, tmp_path):
    bench = colour_bench
    ev = evaluate(
        [BenchmarkSet("Tiny", bench["hr"])],
        sr_dirs=[("grey", bench["grey"])],
        metrics=["niqe", "psnr", "ssim", "psnr_rgb", "chroma"],
        rankers=[("tiny", bench["ranker_ckpt"])],
        ranker_crop=None,
        include_hr=True,
        with_pi=False,
    )
    assert ev.methods == ["Bicubic", "grey", "HR"]
    assert ev.metrics == ["niqe", "psnr", "ssim", "psnr_rgb", "chroma", "rank/tiny"]
    net = bench["ranker"]
    for stem in ("ast", "cat"):
        hr8 = _hr8(bench, stem)
        hr = to_tensor(hr8)[None]
        bicubic = quantize_uint8(imresize(to_tensor(make_lr(hr8, 4))[None].double(), 4.0).clamp(0, 1)).float()
        outputs = {"Bicubic": bicubic, "grey": to_tensor(_grey(hr8))[None], "HR": hr}
        recs = {r["method"]: r for r in ev.records if r["image"] == stem}
        for method, sr in outputs.items():
            with torch.no_grad():
                expected_rank = float(net(sr[..., 4:-4, 4:-4])[0])
            assert recs[method]["rank/tiny"] == pytest.approx(expected_rank, rel=1e-5, abs=1e-6)
            assert recs[method]["psnr_rgb"] == pytest.approx(float(psnr_rgb(sr, hr, crop_border=4)[0]), rel=1e-12)
        assert recs["HR"]["chroma"] == 1.0 and math.isinf(recs["HR"]["psnr_rgb"])
        assert recs["grey"]["chroma"] == pytest.approx(0.0, abs=1e-12)
        assert 0.5 < recs["Bicubic"]["chroma"] < 1.0  # bicubic blurs colour a little
    assert ev.mean("Tiny", "grey", "chroma") == pytest.approx(0.0, abs=1e-12)
    assert any("Rank-<name>" in n for n in ev.notes)

    # methods as rows, metrics as columns
    text = format_comparison(ev)
    lines = text.splitlines()
    assert lines[0] == "Tiny (mean over 2 images)"
    assert lines[1].split() == "method NIQE ↓ PSNR ↑ SSIM ↑ PSNR-RGB ↑ Chroma →1 Rank-tiny ↓".split()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:6]}
    assert list(rows) == ["Bicubic", "grey", "HR"]
    assert rows["grey"][4] == "0.000"
    assert rows["HR"][3] == "inf" and rows["HR"][4] == "1.000"  # reference row, never marked best
    # chroma is best at 1: bicubic (a little desaturated) beats grey (0)
    assert rows["Bicubic"][4].endswith("*") and not rows["grey"][4].endswith("*")
    assert "best marked *" in text
    # the markdown table and the CSV files take the new columns
    md = format_markdown(ev)
    assert "| Rank-tiny ↓ |" in md and "| Chroma →1 |" in md
    paths = write_evaluation(ev, tmp_path / "out")
    with open(paths["per_image"], newline="") as fh:
        header = next(csv.reader(fh))
    assert header == ["dataset", "method", "image", "niqe", "psnr", "ssim", "psnr_rgb", "chroma", "rank/tiny"]


def test_ranker_centre_crop(colour_bench):
    bench = colour_bench
    hr8 = _hr8(bench, "ast")  # 200×204
    hr = to_tensor(hr8)[None]
    net = bench["ranker"]
    # 4 px shaved -> 192×196; centre 64×64 starts at (64, 66) of the shaved image
    with torch.no_grad():
        expected = float(net(hr[..., 4 + 64 : 4 + 128, 4 + 66 : 4 + 130])[0])
    assert float(ranker_score(net, hr, crop_border=4, crop=64)[0]) == pytest.approx(expected, rel=1e-6)
    ev = evaluate(
        [BenchmarkSet("Tiny", bench["hr"])],
        metrics=["psnr_rgb"],
        rankers=[("tiny", bench["ranker_ckpt"])],
        ranker_crop=64,
        with_pi=False,
        max_images=1,
    )
    assert {r["image"] for r in ev.records} == {"ast"}  # the first image in file-name order
    rec = next(r for r in ev.records if r["image"] == "ast" and r["method"] == "Bicubic")
    assert ev.metrics == ["psnr_rgb", "rank/tiny"]
    assert set(rec) == {"dataset", "method", "image", "psnr_rgb", "rank/tiny"}
    assert any("centre 64x64" in n for n in ev.notes)


def test_evaluate_argument_errors(colour_bench):
    sets = [BenchmarkSet("Tiny", colour_bench["hr"])]
    with pytest.raises(ValueError, match="unknown metric 'colourfulness'"):
        evaluate(sets, metrics=["colourfulness"], with_pi=False)
    with pytest.raises(ValueError, match="Ranker name 'a' is used twice"):
        evaluate(sets, rankers=[("a", colour_bench["ranker_ckpt"])] * 2, with_pi=False)
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        evaluate(sets, rankers=[("a", colour_bench["hr"] / "none.pth")], with_pi=False)
    with pytest.raises(ValueError, match="'HR' is used twice"):
        evaluate(sets, sr_dirs=[("HR", colour_bench["grey"])], include_hr=True, with_pi=False)
    # a requested PI without a Ma model is dropped with a note (with_pi=None), as in Table 3
    ev = evaluate(sets, metrics=["pi", "psnr_rgb"], with_pi=None)
    assert ev.metrics == ["psnr_rgb"] and any("PI omitted" in n for n in ev.notes)
