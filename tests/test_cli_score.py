"""``ranksrgan-score`` / ``python -m ranksrgan.metrics``: table and CSV against direct metric calls."""

from __future__ import annotations

import csv
import runpy
import sys

import numpy as np
import pytest
import torch

from ranksrgan.cli import score as score_cli
from ranksrgan.evaluation import MEAN_ROW, read_per_image_csv, score_images
from ranksrgan.io import decode_image, to_tensor, write_image
from ranksrgan.metrics.fidelity import psnr_y, ssim_y
from ranksrgan.metrics.niqe import niqe

PROG = "ranksrgan-score"


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: intra-op threads only add barrier overhead on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``sr/``: three 200×200 crops and one 200×232 crop of skimage images (PNG);
    ``hr/``: references with the same stems (the crops blurred/noised differently)."""
    from ranksrgan.data.demo import demo_image

    root = tmp_path_factory.mktemp("score")
    sr, hr = root / "sr", root / "hr"
    sr.mkdir()
    hr.mkdir()
    ast, cat = demo_image("astronaut"), demo_image("chelsea")
    crops = {"a1": ast[:200, :200], "a2": ast[200:400, 100:300], "c1": cat[:200, :200], "wide": cat[50:250, 150:382]}
    rng = np.random.default_rng(0)
    for name, img in crops.items():
        write_image(sr / f"{name}.png", to_tensor(np.ascontiguousarray(img)))
        noisy = np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        write_image(hr / f"{name}.png", to_tensor(noisy))
    return sr, hr


def _load(path) -> torch.Tensor:
    return to_tensor(decode_image(path))[None]


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cli_table_and_csv_equal_direct_calls(folders, tmp_path, capsys):
    sr, hr = folders
    out = tmp_path / "scores.csv"
    rc = score_cli.main(
        [
            str(sr),
            "--metric",
            "niqe",
            "--metric",
            "psnr",
            "--metric",
            "ssim",
            "--ref",
            str(hr),
            "--crop-border",
            "4",
            "--csv",
            str(out),
        ]
    )
    assert rc == 0
    rows = _read(out)
    assert list(rows[0].keys()) == ["image", "path", "niqe", "psnr", "ssim"]
    assert [r["image"] for r in rows] == ["a1", "a2", "c1", "wide", MEAN_ROW]
    expected = {}
    for r in rows[:-1]:
        x, ref = _load(sr / f"{r['image']}.png"), _load(hr / f"{r['image']}.png")
        expected[r["image"]] = {
            "niqe": float(niqe(x, color="y", crop_border=4)[0]),
            "psnr": float(psnr_y(x, ref, crop_border=4)[0]),
            "ssim": float(ssim_y(x, ref, crop_border=4)[0]),
        }
        assert r["path"] == str(sr / f"{r['image']}.png")
        for m, v in expected[r["image"]].items():
            assert float(r[m]) == pytest.approx(v, rel=1e-9, abs=1e-12), (r["image"], m)
    for m in ("niqe", "psnr", "ssim"):
        assert float(rows[-1][m]) == pytest.approx(np.mean([e[m] for e in expected.values()]), rel=1e-12)
    # printed table: one row per image and the mean, values to 4 decimals
    table = capsys.readouterr().out
    assert f"{expected['a2']['niqe']:.4f}" in table and f"{expected['wide']['psnr']:.4f}" in table
    mean_line = next(line for line in table.splitlines() if line.startswith("mean"))
    assert f"{np.mean([e['ssim'] for e in expected.values()]):.4f}" in mean_line
    # the CSV reads back through the shared per-image reader
    assert read_per_image_csv(out, "niqe") == pytest.approx({k: e["niqe"] for k, e in expected.items()}, rel=1e-9)


def test_batched_equals_one_at_a_time(folders):
    sr, _ = folders
    files = sorted(sr.iterdir())
    batched = score_images(files, ["niqe"], crop_border=4, batch_size=8)
    single = score_images(files, ["niqe"], crop_border=4, batch_size=1)
    assert [r["image"] for r in batched] == [f.stem for f in files]  # input order kept
    for b, s in zip(batched, single):
        assert b["niqe"] == pytest.approx(s["niqe"], rel=1e-10, abs=0)


def test_batches_group_equal_sizes(folders, monkeypatch):
    """Three 200×200 images go through niqe together, the 200×232 one alone."""
    ev = sys.modules["ranksrgan.metrics.niqe"]  # the module (ranksrgan.metrics.niqe is the function)
    seen = []
    real = ev.niqe

    def spy(x, **kw):
        seen.append(tuple(x.shape))
        return real(x, **kw)

    monkeypatch.setattr(ev, "niqe", spy)
    sr, _ = folders
    score_images(sorted(sr.iterdir()), ["niqe"], batch_size=8)
    assert sorted(seen) == [(1, 3, 200, 232), (3, 3, 200, 200)]


def test_gray_color_option(folders, tmp_path):
    sr, _ = folders
    out = tmp_path / "g.csv"
    assert score_cli.main([str(sr / "a1.png"), "--color", "gray", "--csv", str(out)]) == 0
    assert float(_read(out)[0]["niqe"]) == pytest.approx(float(niqe(_load(sr / "a1.png"), color="gray")[0]), rel=1e-9)


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "scoring" not in line]  # drop the bar
    assert len(err) == 1 and err[0].startswith(f"{PROG}: error: "), err
    return err[0]


def test_error_paths(folders, tmp_path, capsys, monkeypatch):
    sr, hr = folders
    assert score_cli.main([str(sr), "--metric", "brisque"]) == 2
    assert "unknown metric 'brisque'" in _error_line(capsys)
    assert score_cli.main([str(sr), "--metric", "lpips"]) == 2  # a full-reference metric
    assert "--ref" in _error_line(capsys)
    assert score_cli.main([str(sr), "--metric", "psnr"]) == 2
    assert "--ref" in _error_line(capsys)
    monkeypatch.setenv("RANKSRGAN_MA_MODEL", str(tmp_path / "absent.mat"))
    assert score_cli.main([str(sr), "--metric", "pi"]) == 2
    assert "Ma model" in _error_line(capsys)
    assert score_cli.main([str(tmp_path / "nothing_here")]) == 2
    assert "nothing_here" in _error_line(capsys)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    assert score_cli.main([str(bad)]) == 1
    assert "broken.png" in _error_line(capsys)
    small = tmp_path / "small"
    small.mkdir()
    write_image(small / "tiny.png", torch.rand(3, 64, 64))
    assert score_cli.main([str(small / "tiny.png")]) == 1
    line = _error_line(capsys)
    assert "tiny.png" in line and "block" in line
    other = tmp_path / "ref"
    other.mkdir()
    write_image(other / "a1.png", torch.rand(3, 200, 196))
    assert score_cli.main([str(sr / "a1.png"), "--metric", "psnr", "--ref", str(other)]) == 1
    assert "a1.png" in _error_line(capsys)
    assert score_cli.main([str(sr / "a1.png"), "--metric", "psnr", "--ref", str(small)]) == 2
    assert "no reference image" in _error_line(capsys)


def test_failing_image_in_a_batch_is_named(tmp_path, capsys):
    """A metric failing inside a batch of equal-size images still names the file (per-image retry)."""
    d = tmp_path / "flat"
    d.mkdir()
    write_image(d / "ok.png", torch.rand(3, 100, 100))
    write_image(d / "ok2.png", torch.rand(3, 100, 100))
    rc = score_cli.main([str(d), "--crop-border", "4", "--strict"])  # 92×92 after the crop: no whole 96-px block
    assert rc == 1
    line = _error_line(capsys)
    assert "ok.png" in line and "block" in line
    # without --strict: each file skipped with its own warning, then one closing error
    assert score_cli.main([str(d), "--crop-border", "4"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "scoring" not in line]
    assert len(err) == 3 and all("block" in line for line in err[:2]), err
    assert err[2] == f"{PROG}: error: 2 of 2 images skipped: {d / 'ok.png'}, {d / 'ok2.png'}"


def test_python_dash_m_metrics(folders, monkeypatch, capsys):
    sr, _ = folders
    monkeypatch.setattr(sys, "argv", ["python -m ranksrgan.metrics", str(sr / "a1.png")])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("ranksrgan.metrics", run_name="__main__")
    assert exc.value.code == 0
    assert "a1" in capsys.readouterr().out


def test_ma_and_pi_with_a_model_file(tmp_path):
    """The Ma/PI path with a small synthetic forest file (the real model is not redistributable)."""
    from ranksrgan.metrics.ma import load_ma_model, ma, pi

    out = {"linear": np.array([1.0, 0.5, 0.25, 0.125])}
    for i in range(3):  # one tree per forest: root split on feature 1, two leaves
        out[f"rf{i}_lDau"] = np.array([[2], [0], [0]], dtype=np.int32)
        out[f"rf{i}_rDau"] = np.array([[3], [0], [0]], dtype=np.int32)
        out[f"rf{i}_mbest"] = np.array([[1], [0], [0]], dtype=np.int32)
        out[f"rf{i}_upper"] = np.array([[0.5], [0.0], [0.0]])
        out[f"rf{i}_avnode"] = np.array([[0.0], [3.0 + i], [7.0 - i]])
        out[f"rf{i}_ndtree"] = np.array([3])
        out[f"rf{i}_ntree"] = np.array([1])
    model_path = tmp_path / "ma_model.npz"
    np.savez(model_path, **out)
    img = tmp_path / "x.png"
    write_image(img, torch.rand(3, 104, 200, generator=torch.Generator().manual_seed(0)))
    csv_path = tmp_path / "s.csv"
    assert (
        score_cli.main(
            [
                str(img),
                "--metric",
                "ma",
                "--metric",
                "pi",
                "--crop-border",
                "4",
                "--ma-model",
                str(model_path),
                "--csv",
                str(csv_path),
            ]
        )
        == 0
    )
    row = _read(csv_path)[0]
    x, model = _load(img), load_ma_model(model_path)
    assert float(row["ma"]) == pytest.approx(float(ma(x, model, color="y", crop_border=4)[0]), rel=1e-12)
    assert float(row["pi"]) == pytest.approx(float(pi(x, model, color="y", crop_border=4)[0]), rel=1e-12)


def test_constant_image_scores_nan_with_a_named_warning(tmp_path, capsys):
    flat = tmp_path / "flat.png"
    write_image(flat, torch.full((3, 200, 200), 0.5))
    out = tmp_path / "f.csv"
    assert score_cli.main([str(flat), "--csv", str(out)]) == 0
    assert np.isnan(float(_read(out)[0]["niqe"]))
    err = capsys.readouterr().err
    assert f"{PROG}: warning: {flat}: niqe is NaN" in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_scores_match_cpu(folders):
    sr, hr = folders
    files = sorted(sr.iterdir())
    cpu = score_images(files, ["niqe", "psnr"], ref_dir=hr, crop_border=4, device="cpu")
    gpu = score_images(files, ["niqe", "psnr"], ref_dir=hr, crop_border=4, device="cuda")
    for a, b in zip(cpu, gpu):
        assert b["niqe"] == pytest.approx(a["niqe"], rel=1e-6)
        assert b["psnr"] == pytest.approx(a["psnr"], rel=1e-9)


def test_several_folders_get_a_folder_column_and_a_mean_each(folders, tmp_path, capsys):
    """``ranksrgan-score sr/ hr/``: the same stems in both folders, one mean per folder."""
    sr, hr = folders
    out = tmp_path / "two.csv"
    assert score_cli.main([str(sr), str(hr), "--metric", "niqe", "--crop-border", "4", "--csv", str(out)]) == 0
    stems = ["a1", "a2", "c1", "wide"]
    direct = {d: [float(niqe(_load(d / f"{s}.png"), color="y", crop_border=4)[0]) for s in stems] for d in (sr, hr)}
    rows = _read(out)
    assert list(rows[0].keys()) == ["folder", "image", "path", "niqe"]
    assert [(r["folder"], r["image"]) for r in rows] == [(str(d), s) for d in (sr, hr) for s in [*stems, MEAN_ROW]]
    for d in (sr, hr):
        got = [float(r["niqe"]) for r in rows if r["folder"] == str(d) and r["image"] != MEAN_ROW]
        assert got == pytest.approx(direct[d], rel=1e-9)
        mean_row = next(r for r in rows if r["folder"] == str(d) and r["image"] == MEAN_ROW)
        assert float(mean_row["niqe"]) == pytest.approx(sum(direct[d]) / 4, rel=1e-12)
    assert read_per_image_csv(out, "niqe")[f"{hr}/c1"] == pytest.approx(direct[hr][2], rel=1e-9)
    # the table: a folder column and one mean line per folder
    table = capsys.readouterr().out
    means = [line.split() for line in table.splitlines() if " mean " in line]
    assert [(m[0], m[2]) for m in means] == [(str(d), f"{sum(direct[d]) / 4:.4f}") for d in (sr, hr)]


def test_scoring_imports_neither_torchmetrics_nor_torchvision(folders):
    """Start-up: NIQE and grid of a file need torch, not torchmetrics / torchvision / Lightning
    (seconds of imports)."""
    import subprocess

    sr, _ = folders
    code = (
        "import sys\n"
        "from ranksrgan.cli.score import main\n"
        f"assert main([{str(sr / 'a1.png')!r}, '--metric', 'niqe', '--metric', 'grid', '--device', 'cpu']) == 0\n"
        "heavy = ('torchmetrics', 'torchvision', 'pytorch_lightning', 'lightning', 'hydra', 'piq', 'skimage')\n"
        "print('loaded:', [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "loaded: []"
