"""Bad inputs in batch commands: skipped with a warning, listed at the end, never a traceback.

Every command-line run here is in-process (``main([...])``); ``capfd`` captures file descriptor 2,
so a line a C library prints there (``libpng error: ...``) would show up as well.
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ranksrgan.checkpoints import CheckpointReadError, UnsafeCheckpointError, load_generator
from ranksrgan.cli import build_rankset
from ranksrgan.cli import evaluate as evaluate_cli
from ranksrgan.cli import score as score_cli
from ranksrgan.cli import upscale as upscale_cli
from ranksrgan.evaluation import MEAN_ROW, read_per_image_csv, write_per_image_csv
from ranksrgan.export import save_state_dict
from ranksrgan.io import read_image, write_image
from ranksrgan.nets import SRResNet

pytestmark = pytest.mark.usefixtures("isolated_command_env")


def _noise(h: int, w: int, seed: int) -> torch.Tensor:
    """Textured image (finite NIQE), smooth enough to be image-like."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4 + 1, w // 4 + 1, generator=g)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0]
    return (0.7 * x + 0.3 * torch.rand(3, h, w, generator=g)).clamp(0, 1)


def _truncated_png(path: Path, seed: int = 9) -> None:
    write_image(path, _noise(40, 40, seed))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _stderr(capfd, prog: str) -> list[str]:
    """stderr lines (progress bars dropped); asserts none is part of a traceback or a C library."""
    err = capfd.readouterr().err
    assert "Traceback" not in err and "libpng" not in err and "[ERROR" not in err and "[ WARN" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and "img/s" not in line and "%|" not in line]
    lines = [line for line in lines if not line.startswith(("scoring", "upscaling", "labelling", "tiles"))]
    assert all(line.startswith(f"{prog}: ") for line in lines), lines
    return lines


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture()
def mixed(tmp_path) -> Path:
    """``imgs/``: two 200×200 images and one 128×128 image (too small for NIQE)."""
    d = tmp_path / "imgs"
    d.mkdir()
    write_image(d / "a.png", _noise(200, 200, 1))
    write_image(d / "b.png", _noise(200, 200, 2))
    write_image(d / "small.png", _noise(128, 128, 3))
    return d


# ----------------------------------------------------------------------------- score


def test_score_skips_a_small_image_and_says_so(mixed, tmp_path, capfd):
    out = tmp_path / "s.csv"
    assert score_cli.main([str(mixed), "--csv", str(out), "--device", "cpu"]) == 1
    lines = _stderr(capfd, "ranksrgan-score")
    small = mixed / "small.png"
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"ranksrgan-score: warning: {small}: skipped: niqe: image 128×128")
    assert lines[1] == f"ranksrgan-score: error: 1 of 3 images skipped: {small}"
    rows = _rows(out)
    assert list(rows[0]) == ["image", "path", "niqe", "skipped"]
    by_image = {r["image"]: r for r in rows}
    assert by_image["a"]["skipped"] == "" and math.isfinite(float(by_image["a"]["niqe"]))
    assert by_image["small"]["niqe"] == "nan" and "at least 2 whole blocks" in by_image["small"]["skipped"]
    mean = by_image[MEAN_ROW]
    assert mean["skipped"] == "1 skipped"
    assert float(mean["niqe"]) == pytest.approx((float(by_image["a"]["niqe"]) + float(by_image["b"]["niqe"])) / 2)
    scores = read_per_image_csv(out, "niqe")
    assert set(scores) == {"a", "b", "small"} and math.isnan(scores["small"])


def test_score_strict_stops_at_the_first(mixed, capfd):
    assert score_cli.main([str(mixed), "--strict", "--device", "cpu"]) == 1
    lines = _stderr(capfd, "ranksrgan-score")
    assert len(lines) == 1 and lines[0].startswith(f"ranksrgan-score: error: {mixed / 'small.png'}: niqe: image 128×128")


def test_score_truncated_png_gives_one_clean_line(mixed, capfd):
    bad = mixed / "bad.png"
    _truncated_png(bad)
    assert score_cli.main([str(bad)]) == 1  # a single file: as --strict
    lines = _stderr(capfd, "ranksrgan-score")
    # Our wording, whatever the decoder adds after the colon (OpenCV words it differently by release).
    assert len(lines) == 1
    assert re.fullmatch(
        rf"ranksrgan-score: error: {re.escape(str(bad))}: cannot decode image \(corrupt, truncated or unsupported data(: [^()]+)?\)",
        lines[0],
    ), lines
    # in a folder: skipped, the others scored
    assert score_cli.main([str(mixed), "--device", "cpu"]) == 1
    lines = _stderr(capfd, "ranksrgan-score")
    assert lines[-1] == f"ranksrgan-score: error: 2 of 4 images skipped: {bad}, {mixed / 'small.png'}"


def test_score_ref_is_mod_cropped_to_the_scale(tmp_path, capfd):
    """An HR folder that is not a multiple of --scale matches SR outputs of its LR."""
    from ranksrgan.metrics.fidelity import psnr_y

    hr_dir, sr_dir = tmp_path / "hr", tmp_path / "sr"
    hr = _noise(203, 206, 4)
    sr = (hr[:, :200, :204] + 0.05 * _noise(200, 204, 5)).clamp(0, 1)
    write_image(hr_dir / "x.png", hr)
    write_image(sr_dir / "x.png", sr)
    out = tmp_path / "p.csv"
    argv = [str(sr_dir / "x.png"), "--metric", "psnr", "--ref", str(hr_dir), "--csv", str(out)]
    assert score_cli.main(argv) == 0
    q = lambda t: torch.floor(t * 255 + 0.5) / 255  # noqa: E731 - what the PNG holds
    want = float(psnr_y(q(sr)[None], q(hr)[None, :, :200, :204])[0])
    assert float(_rows(out)[0]["psnr"]) == pytest.approx(want, rel=1e-6)
    capfd.readouterr()
    assert score_cli.main(argv + ["--scale", "1"]) == 1
    lines = _stderr(capfd, "ranksrgan-score")
    assert len(lines) == 1 and "image is 200x204 but its reference" in lines[0] and "203x206" in lines[0]


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_skips_a_small_image_and_a_bad_pair(mixed, tmp_path, capfd):
    sr = tmp_path / "srdir"
    sr.mkdir()
    write_image(sr / "a.png", _noise(200, 200, 11))
    write_image(sr / "b.png", _noise(196, 200, 12))  # wrong size: skipped for this method only
    write_image(sr / "small.png", _noise(128, 128, 13))
    out = tmp_path / "ev"
    rc = evaluate_cli.main(["--hr", f"Set={mixed}", "--sr", str(sr), "--out", str(out), "--device", "cpu", "--tile", "0"])
    assert rc == 1
    lines = _stderr(capfd, "ranksrgan-evaluate")
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"ranksrgan-evaluate: warning: Set/b (srdir): skipped: {sr / 'b.png'}: SR image is 196x200")
    assert lines[1].startswith("ranksrgan-evaluate: warning: Set/small: skipped: niqe: image 128×128")
    assert lines[2] == "ranksrgan-evaluate: error: 2 of 3 images skipped: Set/small, Set/b (srdir)"
    rows = _rows(out / "per_image.csv")
    assert list(rows[0])[-1] == "skipped"
    got = {(r["method"], r["image"]): r for r in rows}
    assert got[("Bicubic", "a")]["skipped"] == "" and math.isfinite(float(got[("Bicubic", "a")]["psnr"]))
    assert got[("Bicubic", "small")]["psnr"] == "nan" and "block" in got[("Bicubic", "small")]["skipped"]
    assert "196x200" in got[("srdir", "b")]["skipped"] and got[("srdir", "b")]["niqe"] == "nan"
    assert got[("Bicubic", MEAN_ROW)]["skipped"] == "1 skipped" and got[("srdir", MEAN_ROW)]["skipped"] == "2 skipped"
    assert float(got[("srdir", MEAN_ROW)]["psnr"]) == pytest.approx(float(got[("srdir", "a")]["psnr"]))
    assert "skipped as unusable" in (out / "table3.md").read_text()
    # --strict: the first problem (image order a, b, small) stops the run
    assert evaluate_cli.main(["--hr", f"Set={mixed}", "--sr", str(sr), "--out", str(out), "--strict", "--tile", "0"]) == 1
    lines = _stderr(capfd, "ranksrgan-evaluate")
    assert len(lines) == 1 and lines[0].startswith(f"ranksrgan-evaluate: error: {sr / 'b.png'}: SR image is 196x200")


def test_evaluate_unreadable_hr_is_skipped_for_every_method(mixed, tmp_path, capfd):
    _truncated_png(mixed / "c.png")
    (mixed / "small.png").unlink()
    out = tmp_path / "ev"
    assert evaluate_cli.main(["--hr", str(mixed), "--out", str(out), "--device", "cpu"]) == 1
    lines = _stderr(capfd, "ranksrgan-evaluate")
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"ranksrgan-evaluate: warning: imgs/c: skipped: {mixed / 'c.png'}: cannot decode image")
    assert lines[1] == "ranksrgan-evaluate: error: 1 of 3 images skipped: imgs/c"


# ----------------------------------------------------------------------------- upscale


@pytest.fixture()
def gen(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_state_dict(SRResNet(num_features=8, num_blocks=1, scale=2).eval(), tmp_path / "g.pth")


def test_upscale_skips_a_bad_input_and_writes_the_rest(tmp_path, gen, capfd):
    src = tmp_path / "in"
    write_image(src / "a.png", _noise(20, 20, 1))
    _truncated_png(src / "b.png")
    write_image(src / "c.png", _noise(20, 24, 2))
    out = tmp_path / "new" / "out"
    assert upscale_cli.main([str(src), "-o", str(out), "--checkpoint", str(gen), "--device", "cpu"]) == 1
    lines = _stderr(capfd, "ranksrgan-upscale")
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"ranksrgan-upscale: warning: {src / 'b.png'}: skipped: cannot decode image")
    assert lines[1] == f"ranksrgan-upscale: error: 1 of 3 inputs failed: {src / 'b.png'}"
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]  # complete files only, no temporaries
    assert read_image(out / "c.png").shape == (3, 40, 48)
    # --strict: stops at b, says what is already there
    out2 = tmp_path / "out2"
    assert upscale_cli.main([str(src), "-o", str(out2), "--checkpoint", str(gen), "--strict"]) == 1
    lines = _stderr(capfd, "ranksrgan-upscale")
    assert len(lines) == 1 and lines[0].startswith(f"ranksrgan-upscale: error: {src / 'b.png'}: cannot decode image")
    assert lines[0].endswith(f"(stopped at this input; 1 of 3 output(s) already written to {out2})")
    assert [p.name for p in out2.iterdir()] == ["a.png"]


def test_upscale_removes_the_folder_it_made_when_nothing_was_written(tmp_path, gen, capfd):
    src = tmp_path / "in"
    src.mkdir()
    _truncated_png(src / "x.png")
    (src / "y.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "made" / "here"
    assert upscale_cli.main([str(src), "-o", str(out), "--checkpoint", str(gen)]) == 1
    lines = _stderr(capfd, "ranksrgan-upscale")
    assert lines[-1] == f"ranksrgan-upscale: error: 2 of 2 inputs failed: {src / 'x.png'}, {src / 'y.png'}"
    assert not (tmp_path / "made").exists()
    # an existing folder is kept
    kept = tmp_path / "kept"
    kept.mkdir()
    assert upscale_cli.main([str(src / "x.png"), "-o", str(kept), "--checkpoint", str(gen)]) == 1
    lines = _stderr(capfd, "ranksrgan-upscale")
    assert len(lines) == 1 and lines[0].endswith("(stopped at this input; nothing written)")
    assert kept.is_dir()


# ----------------------------------------------------------------------------- checkpoints


def test_bad_checkpoints_have_distinct_one_line_errors(tmp_path, capfd):
    img = tmp_path / "a.png"
    write_image(img, _noise(16, 16, 1))
    rand = tmp_path / "random.pth"
    rand.write_bytes(np.random.default_rng(0).bytes(2000))
    text = tmp_path / "notes.ckpt"
    text.write_text("model weights are on the shared drive\n")
    for path in (rand, text):
        with pytest.raises(CheckpointReadError):
            load_generator(path)
        assert upscale_cli.main([str(img), "-o", str(tmp_path / "o"), "--checkpoint", str(path)]) == 2
        (line,) = _stderr(capfd, "ranksrgan-upscale")
        assert line.startswith(
            f"ranksrgan-upscale: error: {path}: not a readable PyTorch checkpoint: the file is corrupt, truncated or of another kind ("
        ), line
        assert "unpickling" not in line and "refused" not in line
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Path("x")}, evil)
    with pytest.raises(UnsafeCheckpointError):
        load_generator(evil)
    assert upscale_cli.main([str(img), "-o", str(tmp_path / "o"), "--checkpoint", str(evil)]) == 2
    (line,) = _stderr(capfd, "ranksrgan-upscale")
    assert line.startswith(
        f"ranksrgan-upscale: error: {evil}: refused: reading it needs arbitrary unpickling, which can run code"
    )
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- Ma model, folders


def test_missing_ma_model_names_each_way_to_give_it(tmp_path, mixed, capfd):
    from ranksrgan.metrics.ma import load_ma_model

    with pytest.raises(FileNotFoundError) as info:
        load_ma_model(tmp_path / "none.mat")
    assert "load_ma_model(path)" in str(info.value) and "--ma-model" not in str(info.value)
    assert score_cli.main([str(mixed / "a.png"), "--metric", "pi", "--ma-model", str(tmp_path / "none.mat")]) == 2
    (line,) = _stderr(capfd, "ranksrgan-score")
    assert line.startswith("ranksrgan-score: error: metric pi requires the Ma model: Ma (NRQM) model not found")
    assert line.endswith("or pass --ma-model FILE.") and "model=" not in line and "load_ma_model(path)" not in line
    assert evaluate_cli.main(["--hr", str(mixed), "--out", str(tmp_path / "e"), "--ma-model", str(tmp_path / "x.mat")]) == 2
    (line,) = _stderr(capfd, "ranksrgan-evaluate")
    assert line.endswith("or pass --ma-model FILE.")


def test_read_image_on_a_folder_says_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match=r"is a folder, not an image file"):
        read_image(tmp_path)


def test_per_image_csv_reads_old_and_new_files(tmp_path):
    recs = [{"image": "a", "path": "a.png", "niqe": 3.0}, {"image": "b", "path": "b.png", "niqe": 5.0}]
    old = tmp_path / "old.csv"
    write_per_image_csv(old, recs, ["image", "path"], ["niqe"])
    assert _rows(old)[0].keys() == {"image", "path", "niqe"}  # nothing skipped: the earlier format
    assert read_per_image_csv(old, "niqe") == {"a": 3.0, "b": 5.0}
    new = tmp_path / "new.csv"
    write_per_image_csv(
        new, recs + [{"image": "c", "path": "c.png", "niqe": math.nan, "skipped": "too small"}], ["image", "path"], ["niqe"]
    )
    rows = _rows(new)
    assert [r["skipped"] for r in rows] == ["", "", "too small", "1 skipped"]
    assert float(rows[-1]["niqe"]) == 4.0
    got = read_per_image_csv(new, "niqe")
    assert got["a"] == 3.0 and math.isnan(got["c"])


# ----------------------------------------------------------------------------- build-rankset


def test_build_rankset_skips_an_unreadable_hr(tmp_path, capfd):
    hr = tmp_path / "HR"
    for i in range(2):
        write_image(hr / f"im{i}.png", _noise(208, 208, i))
    _truncated_png(hr / "im2.png")
    out = tmp_path / "labels.csv"
    argv = ["--hr", str(hr), "--sr", "a=hr", "--sr", "b=bicubic", "--out", str(out), "--patch", "200", "--stride", "200"]
    assert build_rankset.main([*argv, "--no-progress", "--device", "cpu"]) == 1
    lines = _stderr(capfd, "ranksrgan-build-rankset")
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"ranksrgan-build-rankset: warning: {hr / 'im2.png'}: skipped: cannot decode image")
    assert lines[1] == f"ranksrgan-build-rankset: error: 1 of 3 images skipped: {hr / 'im2.png'}"
    from ranksrgan.data.rank.labels import read_labels

    assert set(read_labels(out).column("image")) == {"im0", "im1"}
    strict = argv[:6] + ["--out", str(tmp_path / "strict.csv"), "--patch", "200", "--strict", "--no-progress"]
    assert build_rankset.main(strict) == 1
    lines = _stderr(capfd, "ranksrgan-build-rankset")
    assert len(lines) == 1 and lines[0].startswith(f"ranksrgan-build-rankset: error: {hr / 'im2.png'}: cannot decode image")


# ----------------------------------------------------------------------------- a real process


@pytest.mark.slow  # a fresh interpreter importing torch
def test_truncated_png_in_a_subprocess_prints_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    _truncated_png(bad)
    res = subprocess.run([sys.executable, "-m", "ranksrgan.cli.score", str(bad)], capture_output=True, text=True)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert lines[0].startswith(f"ranksrgan-score: error: {bad}: cannot decode image"), res.stderr
