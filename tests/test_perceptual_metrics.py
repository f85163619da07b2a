"""piq inside our conventions: SSIM on Y keeps its values; LPIPS / DISTS as metrics, CLI columns and
loss terms, with stand-in weights files (never the network) and one-line errors without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ranksrgan.data.demo import demo_image
from ranksrgan.io import to_tensor, write_image
from ranksrgan.metrics import perceptual
from ranksrgan.metrics.fidelity import ssim_y
from ranksrgan.metrics.perceptual import WeightsNotFoundError, dists, lpips, perceptual_metric_loss


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    hr = to_tensor(demo_image("astronaut")[100:196, 150:278].copy()).unsqueeze(0)
    g = torch.Generator().manual_seed(0)
    noisy = (hr + 0.05 * torch.randn(hr.shape, generator=g)).clamp(0, 1)
    blur = torch.nn.functional.avg_pool2d(hr, 3, 1, 1)
    return torch.cat([noisy, blur]), torch.cat([hr, hr])


def test_ssim_keeps_the_values_of_the_hand_written_implementation(pair):
    # figures of our earlier SSIM (Gaussian 11x11, float64, 0-255 Y), before piq did the arithmetic
    x, y = pair
    assert torch.allclose(
        ssim_y(x, y, crop_border=4), torch.tensor([0.8206578155163857, 0.9435012674180046], dtype=torch.float64), atol=1e-12
    )
    assert torch.allclose(ssim_y(x, y), torch.tensor([0.8220132048620652, 0.9428370393151566], dtype=torch.float64), atol=1e-12)
    assert float(ssim_y(y[:1], y[:1])[0]) == pytest.approx(1.0, abs=1e-12)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """Stand-in weights files with the real files' layouts (random VGG16 features, flat metric weights)."""
    d = tmp_path_factory.mktemp("weights")
    features = perceptual._vgg16_features(None)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, d / "vgg16-397923af.pth")
    torch.save(perceptual._standin_weights("lpips"), d / "lpips_weights.pt")
    torch.save(perceptual._standin_weights("dists"), d / "dists_weights.pt")
    return d


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    """An empty torch hub cache, no weights variables, no network, no models cached across tests."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for var in ("RANKSRGAN_LPIPS_WEIGHTS", "RANKSRGAN_DISTS_WEIGHTS", "RANKSRGAN_VGG16_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)

    def offline(url, dest):
        raise OSError("network is unreachable")

    monkeypatch.setattr(perceptual, "_download", offline)
    perceptual._cached.cache_clear()
    yield
    perceptual._cached.cache_clear()


@pytest.fixture
def with_weights(monkeypatch, weights_dir):
    monkeypatch.setenv("RANKSRGAN_LPIPS_WEIGHTS", str(weights_dir / "lpips_weights.pt"))
    monkeypatch.setenv("RANKSRGAN_DISTS_WEIGHTS", str(weights_dir / "dists_weights.pt"))
    monkeypatch.setenv("RANKSRGAN_VGG16_WEIGHTS", str(weights_dir / "vgg16-397923af.pth"))
    return weights_dir


def test_missing_weights_give_one_line_naming_file_folder_and_variable(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        lpips(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    msg = str(err.value)
    assert "\n" not in msg
    assert "lpips_weights.pt" in msg and "RANKSRGAN_LPIPS_WEIGHTS" in msg
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in msg
    assert isinstance(err.value, FileNotFoundError)


def test_a_variable_naming_no_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("RANKSRGAN_DISTS_WEIGHTS", str(tmp_path / "nowhere.pt"))
    with pytest.raises(WeightsNotFoundError, match=r"RANKSRGAN_DISTS_WEIGHTS=.*nowhere\.pt is not a file.*dists_weights\.pt"):
        dists(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


def test_files_in_the_hub_cache_are_used(monkeypatch, weights_dir, tmp_path):
    cache = tmp_path / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    for name in ("lpips_weights.pt", "vgg16-397923af.pth"):
        (cache / name).symlink_to(weights_dir / name)
    x = torch.rand(1, 3, 32, 32)
    assert float(lpips(x, x)[0]) == 0.0


def test_lpips_and_dists_follow_our_conventions(with_weights, pair):
    import piq  # noqa: F401 - the metric modules are piq's

    x, y = pair
    for fn, kind in ((lpips, "lpips"), (dists, "dists")):
        v = fn(x, y, crop_border=4)
        assert v.dtype == torch.float64 and v.shape == (2,)
        assert (v > 0).all()
        assert float(fn(y[:1], y[:1])[0]) == pytest.approx(0.0, abs=1e-5)
        # one image at a time gives the batch's values
        assert torch.allclose(torch.cat([fn(x[i : i + 1], y[i : i + 1], crop_border=4) for i in range(2)]), v, atol=1e-6)
        # rounded to 8 bits and cropped, then piq's module on RGB
        net = perceptual.learned_metric(kind)
        q = lambda t: (t * 255).round()[..., 4:-4, 4:-4] / 255  # noqa: E731
        assert torch.allclose(net(q(x).float(), q(y).float()).double(), v, atol=1e-6)
    with pytest.raises(ValueError, match="16×16"):
        lpips(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 20), crop_border=4)


@pytest.mark.parametrize("kind", ["lpips", "dists"])
def test_loss_terms_are_frozen_and_pass_gradients_to_sr(kind):
    loss = perceptual_metric_loss(kind, pretrained=False)  # placeholder weights: no file needed
    assert all(not p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.metric.training
    hr = torch.rand(2, 3, 32, 32)
    sr = (hr + 0.1 * torch.randn_like(hr)).clamp(0, 1).requires_grad_()
    value = loss(sr, hr)
    assert value.dim() == 0 and float(value) > 0
    value.backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="one of"):
        perceptual_metric_loss("vgg")


def _hr_folder(tmp_path) -> Path:
    hr = tmp_path / "HR"
    hr.mkdir()
    for name in ("astronaut", "coffee"):
        img = demo_image(name)[:64, :64]
        write_image(hr / f"{name}.png", to_tensor(np.ascontiguousarray(img)))
    return hr


def test_evaluate_metric_lpips_gives_one_line_without_the_file(tmp_path, capsys):
    from ranksrgan.cli.evaluate import main

    code = main(["--hr", str(_hr_folder(tmp_path)), "--metric", "lpips", "--out", str(tmp_path / "ev"), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("ranksrgan-evaluate: error: LPIPS weights file lpips_weights.pt")
    assert "RANKSRGAN_LPIPS_WEIGHTS" in err[0] and "checkpoints" in err[0]
    assert not (tmp_path / "ev").exists()


def test_evaluate_and_score_with_the_weights(with_weights, tmp_path, capsys):
    from ranksrgan.cli.evaluate import main as evaluate_main
    from ranksrgan.cli.score import main as score_main
    from ranksrgan.evaluation import read_per_image_csv

    hr = _hr_folder(tmp_path)
    out = tmp_path / "ev"
    code = evaluate_main(
        ["--hr", str(hr), "--metric", "lpips", "--metric", "dists", "--metric", "psnr", "--out", str(out), "--device", "cpu"]
    )
    assert code == 0, capsys.readouterr().err
    table = (out / "table3.md").read_text()
    assert "LPIPS ↓" in table and "DISTS ↓" in table and "PSNR ↑" in table
    assert "LPIPS/DISTS on RGB" in table
    code = score_main(
        [str(hr), "--ref", str(hr), "--metric", "lpips", "--metric", "dists", "--csv", str(tmp_path / "s.csv"), "--device", "cpu"]
    )
    assert code == 0, capsys.readouterr().err
    lp, ds = read_per_image_csv(tmp_path / "s.csv", "lpips"), read_per_image_csv(tmp_path / "s.csv", "dists")
    assert sorted(lp) == ["astronaut", "coffee"]  # images against themselves: distance 0
    assert all(v == 0.0 for v in lp.values()) and all(v == pytest.approx(0.0, abs=1e-5) for v in ds.values())
