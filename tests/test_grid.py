"""The ``grid`` metric: amplitude of the pattern repeated at the SR scale's period."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ranksrgan.metrics.grid import grid_amplitude, grid_pattern
from ranksrgan.metrics.registry import LIVE, METRICS, PIRM, compute


def _y8(rgb8: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y of an 8-bit RGB array H×W×3, rounded to 8 bits (0-255), from the standard.

    The operations in the order NIQE's luminance uses: exact ties (146, 124, 97 gives Y = 125.5)
    fall on the side that order's rounding errors put them."""
    r, g, b = (rgb8[..., c] / 255.0 for c in range(3))
    return np.floor((65.481 * r + 128.553 * g + 24.966 * b + 16.0) / 255.0 * 255.0 + 0.5)


def _t(rgb8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb8 / 255.0).permute(2, 0, 1)[None]


def _reference_grid(rgb8: np.ndarray, s: int, crop: int) -> float:
    """The definition written out with numpy: 2-D 'valid' correlation with the centred
    period-s average, then the per-phase means of the residual, then max - min."""
    y = _y8(rgb8.astype(np.float64))
    if crop:
        y = y[crop:-crop, crop:-crop]
    k = np.ones(s) if s % 2 else np.r_[0.5, np.ones(s - 1), 0.5]
    k2 = np.outer(k, k) / s**2
    n = len(k)
    h, w = y.shape
    smooth = np.zeros((h - n + 1, w - n + 1))
    for a in range(n):
        for b in range(n):
            smooth += k2[a, b] * y[a : a + h - n + 1, b : b + w - n + 1]
    off = s // 2
    r = y[off : off + smooth.shape[0], off : off + smooth.shape[1]] - smooth
    rows, cols = np.mgrid[off : off + r.shape[0], off : off + r.shape[1]]
    means = [r[(rows % s == i) & (cols % s == j)].mean() for i in range(s) for j in range(s)]
    return max(means) - min(means)


def _pattern(h: int, w: int, motif: np.ndarray) -> np.ndarray:
    """``motif`` (p×q) tiled from the top-left over h×w."""
    p, q = motif.shape
    return np.tile(motif, (h // p + 1, w // q + 1))[:h, :w]


def test_flat_image_scores_exactly_zero():
    for level in (0, 37, 128, 255):
        x = torch.full((2, 3, 40, 52), level / 255)
        assert grid_amplitude(x, scale=4, crop_border=4).tolist() == [0.0, 0.0]
        assert grid_amplitude(x, scale=3).tolist() == [0.0, 0.0]


def test_synthetic_period4_grid_gives_its_amplitude():
    """Flat grey 128 plus a period-4 motif with RGB levels in [-6, +6]: peak to peak of the
    8-bit Y of the motif, computed by hand."""
    motif = np.array([[6, -2, 0, 1], [-6, 3, 0, 0], [2, 0, -1, 5], [0, 4, -3, -6]])
    rgb8 = np.repeat((128 + _pattern(64, 72, motif))[..., None], 3, axis=2).astype(np.float64)
    y_motif = np.floor(16 + 219 * (128 + motif) / 255 + 0.5)  # Y of a grey level v: 16 + 219 v / 255
    expected = y_motif.max() - y_motif.min()
    assert expected == 10.0  # Y(134) = round(131.08), Y(122) = round(120.78)
    assert grid_amplitude(_t(rgb8), scale=4).item() == expected
    # the motif less its mean, at the phases of the cropped image (a 4 px crop keeps them)
    pattern = grid_pattern(_t(rgb8), scale=4, crop_border=4)[0].numpy()
    np.testing.assert_allclose(pattern, y_motif - y_motif.mean(), atol=1e-12)
    # shifted by one pixel: the same motif, cyclically shifted; the same amplitude
    assert grid_amplitude(_t(rgb8[1:, 1:]), scale=4).item() == expected
    # a one-channel input is the luminance itself: the motif's own peak to peak
    gray = torch.from_numpy((128 + _pattern(64, 72, motif)) / 255.0)[None, None]
    assert grid_amplitude(gray, scale=4).item() == 12.0


def test_natural_image_value_and_an_added_grid():
    from ranksrgan.data.demo import demo_image

    rgb8 = demo_image("astronaut").astype(np.float64)  # 512×512
    value = grid_amplitude(_t(rgb8), scale=4, crop_border=4).item()
    assert value == pytest.approx(_reference_grid(rgb8, 4, 4), abs=1e-9)
    assert value == pytest.approx(0.243999, abs=1e-6)
    # + a period-4 pattern of 10 RGB levels peak to peak (2×2 blocks of +5 / -5)
    checker = np.where(np.add.outer(np.arange(4) // 2, np.arange(4) // 2) % 2 == 0, 5.0, -5.0)
    with_grid = np.clip(rgb8 + _pattern(512, 512, checker)[..., None], 0, 255)
    gridded = grid_amplitude(_t(with_grid), scale=4, crop_border=4).item()
    assert gridded == pytest.approx(_reference_grid(with_grid, 4, 4), abs=1e-9)
    assert gridded > 30 * value and 7.5 < gridded < 219 / 255 * 10 + 1  # ~10 RGB levels = 8.6 levels of Y


def test_scale2_and_scale4_phases():
    h, w = 48, 66  # at x2 the residual spans columns 1..64: each period-2 phase holds whole stripes
    base = np.full((h, w, 3), 120.0)
    # period 4 along x, +4 +4 -4 -4: each period-2 phase averages +4 and -4 -> invisible at x2
    stripe = base + _pattern(h, w, np.array([[4.0, 4.0, -4.0, -4.0]]))[..., None]
    # period-2 checkerboard: also a period-4 pattern -> the same amplitude at x2 and x4
    checker = base + _pattern(h, w, np.array([[4.0, -4.0], [-4.0, 4.0]]))[..., None]
    y_hi, y_lo = np.floor(16 + 219 * 124 / 255 + 0.5), np.floor(16 + 219 * 116 / 255 + 0.5)
    a = y_hi - y_lo
    assert a == 6.0  # round(122.49) - round(115.62)
    assert grid_amplitude(_t(stripe), scale=4).item() == a
    assert grid_amplitude(_t(stripe), scale=2).item() == 0.0
    # 62 residual columns: the x2 residual of the stripe is ±a/4, and each phase (31 columns) keeps
    # one unpaired value, +a/4 in one, -a/4 in the other: (a/4 + a/4) / 31
    assert grid_amplitude(_t(stripe[:, :64]), scale=2).item() == pytest.approx(a / 62, abs=1e-12)
    assert grid_amplitude(_t(checker), scale=4).item() == a
    assert grid_amplitude(_t(checker), scale=2).item() == a
    for s in (2, 3, 4):
        assert grid_amplitude(_t(stripe), scale=s, crop_border=s).item() == pytest.approx(
            _reference_grid(stripe, s, s), abs=1e-12
        )


def test_a_linear_ramp_leaves_no_residual():
    ramp = np.repeat(np.add.outer(np.arange(40), 2 * np.arange(44))[..., None], 3, axis=2).astype(np.float64)
    x = torch.from_numpy(ramp[..., 0] / 255.0)[None, None]  # luminance = the ramp, exactly linear
    assert grid_amplitude(x, scale=4).item() == 0.0
    assert grid_amplitude(x, scale=3).item() == 0.0


def test_registry_entry_and_conventions():
    info = METRICS["grid"]
    assert not info.higher_is_better and not info.full_reference and info.needs_scale
    assert info.kwargs(PIRM, 2) == {"crop_border": 2, "color": "y", "scale": 2}
    assert info.kwargs(LIVE, 4) == {"crop_border": 0, "color": "gray", "scale": 4}
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    got = compute(["grid"], x, conv=PIRM, scale=2)["grid"]
    assert torch.equal(got, grid_amplitude(x, scale=2, crop_border=2))
    assert torch.equal(compute(["grid"], x, conv=LIVE, scale=4)["grid"], grid_amplitude(x, scale=4, color="gray"))
    # the torchmetrics mean, as the GAN validation would build it
    meter = info.make(PIRM, 2)
    meter.update(x[:1])
    meter.update(x[1:])
    assert meter.compute().item() == pytest.approx(got.mean().item(), rel=1e-15)


def test_bad_inputs_one_line():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="scale .* must be an int >= 2"):
        grid_amplitude(x, scale=1)
    with pytest.raises(ValueError, match="too small for scale 4 with crop_border=4"):
        grid_amplitude(x[..., :15], scale=4, crop_border=4)  # 16×16 is the least
    assert grid_amplitude(x, scale=4, crop_border=4).shape == (1,)
    with pytest.raises(ValueError, match="color must be one of"):
        grid_amplitude(x, color="lab")


def test_score_and_evaluate_give_a_grid_column(tmp_path):
    from ranksrgan.cli import score as score_cli
    from ranksrgan.evaluation import BenchmarkSet, evaluate, format_comparison
    from ranksrgan.io import write_image

    rng = np.random.default_rng(0)
    hr8 = rng.integers(60, 200, size=(48, 64, 3)).astype(np.float64)
    sr8 = np.clip(hr8 + _pattern(48, 64, np.array([[6.0, -6.0], [-6.0, 6.0]]))[..., None], 0, 255)
    for d, img in (("hr", hr8), ("sr", sr8)):
        (tmp_path / d).mkdir()
        write_image(tmp_path / d / "a.png", torch.from_numpy(img / 255.0).permute(2, 0, 1))
    out = tmp_path / "s.csv"
    args = [
        str(tmp_path / "sr"),
        "--metric",
        "grid",
        "--scale",
        "2",
        "--convention",
        "PIRM",
        "--csv",
        str(out),
        "--device",
        "cpu",
    ]
    assert score_cli.main(args) == 0
    with open(out, newline="") as fh:
        row = next(csv.DictReader(fh))
    assert float(row["grid"]) == pytest.approx(_reference_grid(sr8, 2, 2), abs=1e-12)
    assert score_cli.main([str(tmp_path / "sr"), "--metric", "grid", "--scale", "1"]) == 2

    ev = evaluate(
        [BenchmarkSet("t", tmp_path / "hr")], sr_dirs=[("noisy", tmp_path / "sr")], scale=2, metrics=["grid"], include_hr=True
    )
    assert ev.metrics == ["grid"]
    assert ev.mean("t", "noisy", "grid") == pytest.approx(_reference_grid(sr8, 2, 2), abs=1e-12)
    assert ev.mean("t", "HR", "grid") == pytest.approx(_reference_grid(hr8, 2, 2), abs=1e-12)
    assert "Grid ↓" in format_comparison(ev)
