"""``ranksrgan-evaluate`` (Table 3): values against direct metric calls, outputs and error paths."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from ranksrgan.cli import evaluate as evaluate_cli
from ranksrgan.data.paired import make_lr
from ranksrgan.evaluation import MEAN_ROW, BenchmarkSet, evaluate
from ranksrgan.export import save_state_dict
from ranksrgan.io import decode_image, to_tensor, write_image
from ranksrgan.metrics.fidelity import psnr_y, ssim_y
from ranksrgan.metrics.niqe import niqe
from ranksrgan.nets import SRResNet
from ranksrgan.ops import imresize, quantize_uint8

PROG = "ranksrgan-evaluate"


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: intra-op threads only add barrier overhead on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _no_ma_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKSRGAN_MA_MODEL", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """HR set ``Tiny`` (203×206 -> mod-cropped 200×204, and 200×200), a x4 checkpoint, an SR folder."""
    from ranksrgan.data.demo import demo_image

    root = tmp_path_factory.mktemp("bench")
    hr_dir, sr_dir = root / "Tiny", root / "noisy"
    hr_dir.mkdir()
    sr_dir.mkdir()
    ast, cat = demo_image("astronaut"), demo_image("chelsea")
    hrs = {"ast": np.ascontiguousarray(ast[40:243, 100:306]), "cat": np.ascontiguousarray(cat[60:260, 120:320])}
    rng = np.random.default_rng(1)
    for name, img in hrs.items():
        write_image(hr_dir / f"{name}.png", to_tensor(img))
        crop = img[: img.shape[0] // 4 * 4, : img.shape[1] // 4 * 4]
        noisy = np.clip(crop.astype(int) + rng.integers(-20, 21, crop.shape), 0, 255).astype(np.uint8)
        write_image(sr_dir / f"{name}.jpg" if name == "cat" else sr_dir / f"{name}.png", to_tensor(noisy))
    torch.manual_seed(0)
    net = SRResNet(num_features=8, num_blocks=1, scale=4).eval()
    with torch.no_grad():  # stronger than the 0.1-scaled init, so the output has texture (finite NIQE)
        for p in net.parameters():
            p.mul_(3.0)
    ckpt = save_state_dict(net, root / "tinygan.pth")
    return {"root": root, "hr": hr_dir, "sr": sr_dir, "ckpt": ckpt, "net": net}


def _expected(bench, stem: str) -> dict[str, dict[str, float]]:
    """Direct metric calls on the same images (the protocol written out by hand)."""
    hr8 = decode_image(next(bench["hr"].glob(f"{stem}.*")))
    hr8 = hr8[: hr8.shape[0] // 4 * 4, : hr8.shape[1] // 4 * 4]
    hr = to_tensor(np.ascontiguousarray(hr8))[None]
    lr = to_tensor(make_lr(np.ascontiguousarray(hr8), 4))[None]
    with torch.no_grad():
        srs = {
            "Bicubic": quantize_uint8(imresize(lr.double(), 4.0).clamp(0, 1)).float(),
            "tinygan": quantize_uint8(bench["net"](lr).clamp(0, 1)),
            "noisy": to_tensor(decode_image(next(bench["sr"].glob(f"{stem}.*"))))[None],
        }
    return {
        method: {
            "niqe": float(niqe(sr, color="y", crop_border=4)[0]),
            "psnr": float(psnr_y(sr, hr, crop_border=4)[0]),
            "ssim": float(ssim_y(sr, hr, crop_border=4)[0]),
        }
        for method, sr in srs.items()
    }


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_evaluate_cli_outputs_match_direct_calls(bench, tmp_path, capsys):
    out = tmp_path / "res"
    rc = evaluate_cli.main(
        [
            "--hr",
            str(bench["hr"]),
            "--checkpoint",
            str(bench["ckpt"]),
            "--sr",
            str(bench["sr"]),
            "--scale",
            "4",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    expected = {stem: _expected(bench, stem) for stem in ("ast", "cat")}
    methods = ["Bicubic", "tinygan", "noisy"]

    rows = _rows(out / "per_image.csv")
    assert list(rows[0].keys()) == ["dataset", "method", "image", "niqe", "psnr", "ssim"]  # no Ma model: no PI
    assert [(r["method"], r["image"]) for r in rows] == [(m, i) for m in methods for i in ("ast", "cat", MEAN_ROW)]
    for r in rows:
        if r["image"] == MEAN_ROW:
            continue
        assert r["dataset"] == "Tiny"
        for metric, v in expected[r["image"]][r["method"]].items():
            assert float(r[metric]) == pytest.approx(v, rel=1e-9), (r["method"], r["image"], metric)

    means = {
        (m, metric): np.mean([expected[s][m][metric] for s in ("ast", "cat")])
        for m in methods
        for metric in ("niqe", "psnr", "ssim")
    }
    summary = _rows(out / "summary.csv")
    assert [(r["dataset"], r["metric"]) for r in summary] == [("Tiny", "niqe"), ("Tiny", "psnr"), ("Tiny", "ssim")]
    for r in summary:
        for m in methods:
            assert float(r[m]) == pytest.approx(means[(m, r["metric"])], rel=1e-9)

    md = (out / "table3.md").read_text()
    assert md.splitlines()[0] == "| Dataset | Metric | Bicubic | tinygan | noisy |"
    niqe_row = next(line for line in md.splitlines() if "NIQE" in line)
    assert niqe_row.startswith("| Tiny | NIQE ↓ |")
    for m in methods:
        assert f"{means[(m, 'niqe')]:.2f}" in niqe_row
    ssim_row = next(line for line in md.splitlines() if "SSIM" in line)
    assert f"**{max(means[(m, 'ssim')] for m in methods):.4f}**" in ssim_row  # best in bold
    assert "PI omitted" in md
    printed = capsys.readouterr().out
    assert "| Tiny | NIQE ↓ |" in printed and "PI omitted" in printed


def test_lr_folder_names_and_subfolders(bench, tmp_path):
    """--lr equals the generated LR; NAME=DIR names sets and methods; DIR/<set>/ is used for --sr."""
    lr_dir = tmp_path / "lr"
    lr_dir.mkdir()
    for p in bench["hr"].iterdir():
        hr8 = decode_image(p)
        hr8 = np.ascontiguousarray(hr8[: hr8.shape[0] // 4 * 4, : hr8.shape[1] // 4 * 4])
        write_image(lr_dir / p.name, to_tensor(make_lr(hr8, 4)))
    nested = tmp_path / "results"
    (nested / "Set").mkdir(parents=True)
    for p in bench["sr"].iterdir():
        (nested / "Set" / p.name).write_bytes(p.read_bytes())
    ev = evaluate([BenchmarkSet("Set", bench["hr"], lr_dir)], [("G", bench["ckpt"])], [("N", nested)], scale=4)
    assert ev.methods == ["Bicubic", "G", "N"] and ev.datasets == ["Set"]
    for stem in ("ast", "cat"):
        exp = _expected(bench, stem)
        for method, key in (("Bicubic", "Bicubic"), ("G", "tinygan"), ("N", "noisy")):
            rec = next(r for r in ev.records if r["method"] == method and r["image"] == stem)
            assert rec["psnr"] == pytest.approx(exp[key]["psnr"], rel=1e-9)
            assert rec["niqe"] == pytest.approx(exp[key]["niqe"], rel=1e-9)


def test_tiled_generator_gives_the_same_table(bench):
    """Large-image path: tiles with overlap >= receptive field (6 LR px here) change nothing."""
    sets = [BenchmarkSet("Tiny", bench["hr"])]
    whole = evaluate(sets, [("G", bench["ckpt"])], scale=4, tile=None)
    tiled = evaluate(sets, [("G", bench["ckpt"])], scale=4, tile=16, overlap=6)
    for a, b in zip(whole.records, tiled.records):
        assert a["image"] == b["image"] and a["method"] == b["method"]
        assert b["psnr"] == pytest.approx(a["psnr"], abs=1e-6)


def _error_line(capsys, warnings: int = 0) -> str:
    """The closing error line, after exactly ``warnings`` warning lines (progress bars dropped)."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "img/s" not in line and "%|" not in line]
    assert len(err) == warnings + 1 and err[-1].startswith(f"{PROG}: error: "), err
    assert all(line.startswith(f"{PROG}: warning: ") for line in err[:-1]), err
    return err[-1]


def test_error_paths(bench, tmp_path, capsys):
    hr = ["--hr", str(bench["hr"]), "--out", str(tmp_path / "o")]
    assert evaluate_cli.main(hr + ["--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "none.pth" in _error_line(capsys)
    bad_sr = tmp_path / "bad_sr"
    bad_sr.mkdir()
    write_image(bad_sr / "ast.png", torch.rand(3, 200, 200))  # HR is 200×204 after mod-crop
    write_image(bad_sr / "cat.png", torch.rand(3, 200, 200))
    assert evaluate_cli.main(hr + ["--sr", str(bad_sr), "--strict"]) == 1
    line = _error_line(capsys)
    assert "ast.png" in line and "200x204" in line
    # without --strict the mismatched pair is skipped for that method only (see test_bad_inputs.py)
    assert evaluate_cli.main(hr + ["--sr", str(bad_sr)]) == 1
    assert _error_line(capsys, warnings=1) == f"{PROG}: error: 1 of 2 images skipped: Tiny/ast (bad_sr)"
    (bad_sr / "ast.png").unlink()
    assert evaluate_cli.main(hr + ["--sr", str(bad_sr), "--strict"]) == 2
    assert "'ast'" in _error_line(capsys)
    torch.manual_seed(0)
    x2 = save_state_dict(SRResNet(num_features=8, num_blocks=1, scale=2), tmp_path / "x2.pth")
    assert evaluate_cli.main(hr + ["--checkpoint", str(x2)]) == 1
    assert "x2" in _error_line(capsys)
    assert evaluate_cli.main(hr + ["--sr", f"Bicubic={bench['sr']}"]) == 2
    assert "Bicubic" in _error_line(capsys)
    assert evaluate_cli.main(hr + ["--lr", str(tmp_path), "--lr", str(tmp_path)]) == 2
    assert "--lr" in _error_line(capsys)
    assert evaluate_cli.main(hr + ["--ma-model", str(tmp_path / "no_model.mat")]) == 2
    assert "Ma" in _error_line(capsys)


def test_pi_row_with_a_model_file(bench, tmp_path):
    """With a Ma model file the PI row is present and equals a direct pi() call."""
    from ranksrgan.metrics.ma import load_ma_model, pi

    arrays = {"linear": np.array([1.0, 0.5, 0.25, 0.125])}
    for i in range(3):  # synthetic forests (the real model is not redistributable)
        arrays[f"rf{i}_lDau"] = np.array([[2], [0], [0]], dtype=np.int32)
        arrays[f"rf{i}_rDau"] = np.array([[3], [0], [0]], dtype=np.int32)
        arrays[f"rf{i}_mbest"] = np.array([[1], [0], [0]], dtype=np.int32)
        arrays[f"rf{i}_upper"] = np.array([[0.5], [0.0], [0.0]])
        arrays[f"rf{i}_avnode"] = np.array([[0.0], [3.0 + i], [7.0 - i]])
        arrays[f"rf{i}_ndtree"] = np.array([3])
        arrays[f"rf{i}_ntree"] = np.array([1])
    model_path = tmp_path / "ma.npz"
    np.savez(model_path, **arrays)
    one = tmp_path / "One"
    one.mkdir()
    (one / "cat.png").write_bytes((bench["hr"] / "cat.png").read_bytes())
    ev = evaluate([BenchmarkSet("One", one)], scale=4, ma_model=model_path, with_pi=True)
    assert ev.metrics == ["niqe", "pi", "psnr", "ssim"]
    hr8 = decode_image(one / "cat.png")
    lr = to_tensor(make_lr(hr8, 4))[None]
    sr = quantize_uint8(imresize(lr.double(), 4.0).clamp(0, 1)).float()
    assert ev.records[0]["pi"] == pytest.approx(float(pi(sr, load_ma_model(model_path), color="y", crop_border=4)[0]), rel=1e-9)
