"""NIQE: MATLAB parity on reference images, an independent plain-loop numpy transcription of the
LIVE code, batching/dtype/device invariance, edge cases and the torchmetrics class."""

from __future__ import annotations

import importlib
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from ranksrgan.metrics.niqe import DEFAULT_PARAMS, NIQE, niqe
from ranksrgan.ops import imresize, quantize_uint8, rgb_to_gray

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "niqe"

# (file, color, MATLAB value, relative tolerance). I19 has ~30% near-zero MSCN coefficients whose
# sign is decided by float rounding, so every reimplementation drifts there.
MATLAB_VALUES = [
    ("baboon.png", "y", 5.72957338, 1e-5),
    ("tid2013_I04.png", "gray", 3.65492152353770, 1e-5),
    ("tid2013_I03.png", "gray", 15.7536293917814, 1e-3),
    ("tid2013_I19.png", "gray", 8.63519663862637, 5e-2),
]


def _load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _noise_image(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """8-bit RGB noise with some large-scale structure (no flat areas), float64 in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = imresize(torch.rand(b, 3, h // 8, w // 8, generator=g, dtype=torch.float64), size=(h, w))
    x = 0.6 * coarse + 0.4 * torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    return quantize_uint8(x.clamp(0, 1))


# ------------------------------------------------------------------ independent numpy transcription

_GAM = np.arange(9801) * 0.001 + 0.2  # 0.2:0.001:10 (ulp-level differences are irrelevant here)
_R_GAM = np.array([math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in _GAM])


def _ref_aggd(vec: np.ndarray) -> tuple[float, float, float]:
    left = vec[vec < 0]
    right = vec[vec > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = math.sqrt(np.mean(left**2)) if left.size else math.nan
        right_std = math.sqrt(np.mean(right**2)) if right.size else math.nan
        gammahat = left_std / right_std
        rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    diffs = (_R_GAM - rhatnorm) ** 2
    pos = 0 if not np.isfinite(diffs).any() else int(np.nanargmin(diffs))
    alpha = _GAM[pos]
    f = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left_std * f, right_std * f


def _ref_block_feature(block: np.ndarray) -> list[float]:
    alpha, bl, br = _ref_aggd(block.ravel())
    feat = [alpha, (bl + br) / 2]
    for shift in [(0, 1), (1, 0), (1, 1), (1, -1)]:
        pair = block.ravel() * np.roll(block, shift, axis=(0, 1)).ravel()
        alpha, bl, br = _ref_aggd(pair)
        feat += [alpha, (br - bl) * math.gamma(2 / alpha) / math.gamma(1 / alpha), bl, br]
    return feat


def _ref_niqe_gray255(im: np.ndarray) -> float:
    """LIVE computequality on a 2-D 0..255 image, loop by loop (numpy + scipy + ops.imresize)."""
    data = np.load(DEFAULT_PARAMS)
    mu_p, cov_p, window = data["mu_pris_param"].ravel(), data["cov_pris_param"], data["gaussian_window"]
    h, w = (im.shape[0] // 96) * 96, (im.shape[1] // 96) * 96
    im = im[:h, :w]
    feats = []
    for scale in (1, 2):
        mu = ndimage.correlate(im, window, mode="nearest")
        sigma = np.sqrt(np.abs(ndimage.correlate(im * im, window, mode="nearest") - mu * mu))
        mscn = (im - mu) / (sigma + 1)
        bs = 96 // scale
        feats.append(
            [
                _ref_block_feature(mscn[r : r + bs, c : c + bs])
                for r in range(0, mscn.shape[0], bs)
                for c in range(0, mscn.shape[1], bs)
            ]
        )
        im = imresize(torch.from_numpy(im), 0.5).numpy()
    feat = np.concatenate([np.array(f) for f in feats], axis=1)
    mu_d = np.nanmean(feat, axis=0)
    rows = feat[np.isfinite(feat).all(axis=1)]
    cov_d = np.cov(rows, rowvar=False)
    d = mu_p - mu_d
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov_d) / 2) @ d))


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("name,color,expected,rtol", MATLAB_VALUES)
def test_matlab_reference_values(name, color, expected, rtol):
    path = REFERENCE / name
    if not path.is_file():
        pytest.skip(f"NIQE reference image {name} not found next to the repository (shared/reference/niqe)")
    value = float(niqe(_load_png(path), color=color))
    assert abs(value - expected) / expected <= rtol, f"{name}: {value} vs MATLAB {expected}"


def test_matches_plain_loop_transcription():
    x = _noise_image(1, 200, 300, seed=1)
    gray = torch.round(quantize_uint8(rgb_to_gray(x)) * 255)[0, 0].numpy()
    expected = _ref_niqe_gray255(gray)
    assert float(niqe(x, color="gray")) == pytest.approx(expected, rel=1e-9)


def test_gamma_lookup_equals_matlab_min():
    from ranksrgan.metrics._niqe_features import gamma_table, nearest_gamma_index

    gam, r_gam, _, _ = gamma_table(torch.device("cpu"))
    mids = (r_gam[1:] + r_gam[:-1]) / 2
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            r_gam[::97],
            mids[::89],
            torch.rand(500, generator=g, dtype=torch.float64),
            torch.tensor([0.0, -1.0, 0.01, 0.9, 5.0, float("nan"), float("inf"), -float("inf")], dtype=torch.float64),
        ]
    )
    idx = nearest_gamma_index(x, r_gam)
    for xi, i in zip(x.tolist(), idx.tolist()):
        diffs = (r_gam - xi) ** 2
        want = 0 if not torch.isfinite(diffs).any() else int(torch.argmin(torch.nan_to_num(diffs, nan=math.inf)))
        assert i == want, f"rhat={xi}: index {i}, MATLAB min gives {want}"
    assert gam[0] == pytest.approx(0.2) and gam[-1] == pytest.approx(10.0) and gam.numel() == 9801


def test_batched_equals_unbatched_and_shapes():
    x = _noise_image(3, 192, 288)
    batched = niqe(x)
    assert batched.shape == (3,) and batched.dtype == torch.float64
    for i in range(3):
        single = niqe(x[i])
        assert single.shape == ()
        assert float(single) == pytest.approx(float(batched[i]), rel=1e-12)


def test_float32_input_matches_float64():
    x = _noise_image(2, 192, 192, seed=2)
    assert torch.allclose(niqe(x.float()), niqe(x), rtol=1e-9, atol=0)


def test_color_conventions_and_gray_input():
    x = _noise_image(1, 192, 192, seed=3)
    gray = rgb_to_gray(x)
    assert torch.equal(niqe(gray), niqe(x, color="gray"))
    assert not torch.equal(niqe(x, color="y"), niqe(x, color="gray"))


def test_crop_border_equals_manual_crop():
    x = _noise_image(1, 200, 296, seed=4)
    assert torch.equal(niqe(x, crop_border=4), niqe(x[..., 4:-4, 4:-4]))


def test_constant_image_gives_nan_with_warning():
    x = torch.full((2, 3, 192, 192), 0.5, dtype=torch.float64)
    x[1] = _noise_image(1, 192, 192, seed=5)[0]
    with pytest.warns(RuntimeWarning, match=r"image\(s\) \[0\]"):
        out = niqe(x)
    assert math.isnan(out[0]) and math.isfinite(out[1])


@pytest.mark.parametrize(
    "x,kwargs,match",
    [
        (torch.rand(1, 3, 150, 190), {}, "at least 2 whole blocks"),
        (torch.rand(1, 3, 192, 192), {"crop_border": 4}, "at least 2 whole blocks"),
        (torch.rand(1, 3, 192, 192) * 255, {}, r"expects \[0, 1\]"),
        (torch.rand(1, 3, 192, 192) - 0.5, {}, r"expects \[0, 1\]"),
        (torch.full((1, 3, 192, 192), float("nan")), {}, "NaN or Inf"),
        (torch.cat([torch.rand(1, 3, 191, 192), torch.full((1, 3, 1, 192), float("inf"))], 2), {}, "NaN or Inf"),
        (torch.rand(1, 2, 192, 192), {}, "C = 1 or 3"),
        (torch.rand(192, 192), {}, "C = 1 or 3"),
        (torch.rand(1, 3, 192, 192), {"color": "rgb"}, "color"),
        (torch.rand(1, 3, 192, 192), {"block_size": 95}, "block_size"),
        (torch.rand(1, 3, 192, 192), {"crop_border": -1}, "crop_border"),
    ],
)
def test_bad_input_raises(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        niqe(x, **kwargs)


def test_integer_input_raises():
    with pytest.raises(TypeError, match="float"):
        niqe(torch.zeros(1, 3, 192, 192, dtype=torch.uint8))


def test_params_file_errors(tmp_path):
    x = _noise_image(1, 192, 192)
    with pytest.raises(FileNotFoundError, match="not found"):
        niqe(x, params=tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mu_pris_param=np.zeros((1, 36)))
    with pytest.raises(ValueError, match="lacks keys"):
        niqe(x, params=bad)
    assert torch.equal(niqe(x, params=DEFAULT_PARAMS), niqe(x))


def test_metric_class_two_updates_equals_mean():
    a, b = _noise_image(2, 192, 192, seed=6), _noise_image(1, 192, 288, seed=7)
    metric = NIQE()
    assert metric.higher_is_better is False and metric.full_state_update is False
    metric.update(a)
    metric.update(b)
    expected = torch.cat([niqe(a), niqe(b)]).mean()
    assert float(metric.compute()) == pytest.approx(float(expected), rel=1e-12)
    metric.reset()
    metric.update(a[:1])
    assert float(metric.compute()) == pytest.approx(float(niqe(a[:1])[0]), rel=1e-12)


def test_metric_class_rejects_bad_color():
    with pytest.raises(ValueError, match="color"):
        NIQE(color="rgb")


def test_no_warning_on_natural_input():
    x = _noise_image(1, 192, 192, seed=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        niqe(x)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cpu_and_cuda_agree():
    x = _noise_image(2, 192, 288, seed=9)
    cpu = niqe(x)
    gpu = niqe(x.cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-6, atol=0)
    ref = REFERENCE / "tid2013_I04.png"
    if ref.is_file():
        img = _load_png(ref).cuda()
        assert float(niqe(img, color="gray")) == pytest.approx(3.65492152353770, rel=1e-5)


# ------------------------------------------------------------------ implementation invariants


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_luminance_is_bitwise_the_rounded_color_conversion(dtype):
    from ranksrgan.metrics._niqe_features import luminance_255
    from ranksrgan.ops import rgb_to_y

    g = torch.Generator().manual_seed(11)
    grid = torch.randint(0, 256, (2, 3, 40, 50), generator=g).double() / 255  # 8-bit images
    smooth = torch.rand(2, 3, 40, 50, generator=g, dtype=torch.float64)  # any [0, 1] value
    for x in (grid.to(dtype), smooth.to(dtype)):
        xd = x.double()
        assert torch.equal(luminance_255(x, "y"), (quantize_uint8(rgb_to_y(xd)) * 255)[:, 0])
        assert torch.equal(luminance_255(x, "gray"), (quantize_uint8(rgb_to_gray(xd)) * 255)[:, 0])
        assert torch.equal(luminance_255(x[:, :1], "y"), (quantize_uint8(xd[:, :1]) * 255)[:, 0])


def test_work_buffers_and_strip_sizes_do_not_change_results(monkeypatch):
    features = importlib.import_module("ranksrgan.metrics._niqe_features")
    a, b = _noise_image(2, 192, 288, seed=12), _noise_image(1, 288, 192, seed=13)
    first_a, first_b = niqe(a), niqe(b)
    assert torch.equal(niqe(a), first_a)  # buffers reused at the same size
    features.release_work_buffers()
    # One block row per chunk, 8-row filter strips and nothing kept: same bits.
    monkeypatch.setattr(features, "_CHUNK_PIXELS", 1)
    monkeypatch.setattr(features, "_STRIP_ELEMENTS_PER_THREAD", 1)
    monkeypatch.setattr(features._WORK, "max_bytes", 0)
    assert torch.equal(niqe(b), first_b)
    assert torch.equal(niqe(a), first_a)
    assert features._WORK.kept_bytes() == 0


def test_niqe_after_a_call_under_inference_mode():
    """Scratch arrays first made under ``torch.inference_mode()`` (a Lightning validation) must not
    break a later call outside it (in-place writes to inference tensors are refused)."""
    from ranksrgan.metrics.niqe import release_work_buffers

    release_work_buffers()
    x = torch.rand(1, 3, 200, 232, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        inside = niqe(x)
    outside = niqe(x)
    assert torch.equal(inside, outside) and torch.isfinite(outside).all()
