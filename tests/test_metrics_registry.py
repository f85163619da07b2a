"""The metrics registry: one entry per metric, the PIRM / LIVE conventions, and the tools using them."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from ranksrgan.metrics.registry import CONVENTIONS, LIVE, METRICS, NO_REFERENCE, PIRM, compute, convention, metric


def test_presets():
    assert (PIRM.color, PIRM.crop_border(4), PIRM.crop_border(2)) == ("y", 4, 2)
    assert (LIVE.color, LIVE.crop_border(4)) == ("gray", 0)
    assert set(CONVENTIONS) == {"PIRM", "LIVE"} and convention("live") is LIVE
    with pytest.raises(ValueError, match="unknown convention"):
        convention("matlab")


def test_entries_resolve_and_classes_agree_on_polarity():
    for name, info in METRICS.items():
        assert callable(info.fn()), name
        if info.metric_class is not None:
            assert info.cls().higher_is_better == info.higher_is_better, name
    assert NO_REFERENCE == ("niqe", "ma", "pi")
    assert [m for m in METRICS if METRICS[m].needs_ma] == ["ma", "pi"]
    assert {m for m in METRICS if not METRICS[m].higher_is_better} >= {"niqe", "pi", "rmse", "deltae", "lpips", "dists"}


def test_kwargs_apply_the_convention():
    assert METRICS["niqe"].kwargs(LIVE, 4) == {"crop_border": 0, "color": "gray"}
    assert METRICS["pi"].kwargs(PIRM, 3) == {"crop_border": 3, "color": "y"}
    assert METRICS["psnr"].kwargs(LIVE, 4) == {"crop_border": 0}  # PSNR is always on Y


def test_orientation_higher_is_worse():
    assert METRICS["ma"].oriented(7.5) == 2.5  # 10 - Ma, as in PI
    assert METRICS["niqe"].oriented(3.0) == 3.0
    with pytest.raises(ValueError, match="cannot be oriented"):
        METRICS["psnr_rgb"].oriented(30.0)
    with pytest.raises(ValueError, match="unknown metric 'nope'; choose from niqe, ma"):
        metric("nope")


def _y255(x: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y (0-255) of an 8-bit RGB array H×W×3, computed here from the standard."""
    return (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0 + 16.0


def test_psnr_in_both_conventions_against_a_hand_computation():
    rng = np.random.default_rng(3)
    hr8 = rng.integers(0, 256, size=(20, 24, 3)).astype(np.float64)
    sr8 = np.clip(hr8 + rng.integers(-20, 21, size=hr8.shape), 0, 255)
    sr8[:4] = 255 - hr8[:4]  # a wrong top border: PIRM at x4 shaves it, LIVE sees it
    to_t = lambda a: torch.from_numpy(a / 255.0).permute(2, 0, 1)[None]  # noqa: E731

    def psnr(crop: int) -> float:
        a, b = _y255(sr8), _y255(hr8)
        if crop:
            a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
        return 10 * math.log10(255.0**2 / np.mean((a - b) ** 2))

    pirm = compute(["psnr"], to_t(sr8), to_t(hr8), PIRM, scale=4)["psnr"].item()
    live = compute(["psnr"], to_t(sr8), to_t(hr8), LIVE, scale=4)["psnr"].item()
    assert pirm == pytest.approx(psnr(4), abs=1e-9)
    assert live == pytest.approx(psnr(0), abs=1e-9)
    assert pirm > live + 3


def test_full_reference_metric_needs_hr():
    with pytest.raises(ValueError, match="needs reference images"):
        compute(["ssim"], torch.rand(1, 3, 16, 16))


def test_registry_imports_no_torch():
    code = "import sys, ranksrgan.metrics.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_gan_validation_uses_pirm():
    from ranksrgan.lit.sr_module import SRModule

    module = SRModule(generator={"name": "SRResNet", "kwargs": {"num_features": 8, "num_blocks": 1, "scale": 2}}, scale=2)
    assert module.val_metrics["niqe"].crop_border == 2 and module.val_metrics["niqe"].color == "y"
    assert module.val_metrics["psnr"].crop_border == 2 and module.val_metrics["ssim"].crop_border == 2


def test_score_convention_option(tmp_path):
    from ranksrgan.cli import score as score_cli
    from ranksrgan.io import write_image

    g = torch.Generator().manual_seed(0)
    (tmp_path / "sr").mkdir()
    (tmp_path / "hr").mkdir()
    hr = torch.rand(3, 32, 40, generator=g)
    write_image(tmp_path / "hr" / "a.png", hr)
    write_image(tmp_path / "sr" / "a.png", (hr + 0.05 * torch.randn(3, 32, 40, generator=g)).clamp(0, 1))

    def run(*extra: str) -> float:
        out = tmp_path / f"{len(extra)}{'_'.join(extra)}.csv"
        args = [str(tmp_path / "sr"), "--ref", str(tmp_path / "hr"), "--metric", "psnr", "--csv", str(out), "--device", "cpu"]
        assert score_cli.main(args + list(extra)) == 0
        with open(out, newline="") as fh:
            return float(next(csv.DictReader(fh))["psnr"])

    assert run("--convention", "pirm") == run("--crop-border", "4") != run()
    assert run("--convention", "LIVE") == run()  # nothing shaved
    assert run("--convention", "PIRM", "--scale", "2") == run("--crop-border", "2", "--scale", "2")


def test_label_build_crops_by_the_scale_by_default(tmp_path):
    from ranksrgan.data.rank.sr_labelling import build_sr_labels
    from ranksrgan.io import write_image

    (tmp_path / "hr").mkdir()
    write_image(tmp_path / "hr" / "a.png", torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1)))
    table = build_sr_labels(
        tmp_path / "hr",
        {"hr": "hr", "bic": "bicubic"},
        tmp_path / "l.csv",
        metrics=[],
        patch_size=32,
        stride=32,
        scale=2,
        progress=False,
    )
    assert table.meta["crop_border"] == 2
