"""Eq. 10 upper bounds (``ranksrgan-upper-bound``) on hand-made CSVs with hand-computed values."""

from __future__ import annotations

import pytest

from ranksrgan.cli import upper_bound as ub_cli
from ranksrgan.evaluation import MEAN_ROW, read_per_image_csv, upper_bounds, write_per_image_csv

PROG = "ranksrgan-upper-bound"

# image: (SRGAN, ESRGAN) NIQE; lower is better
SCORES = {"img1": (3.0, 2.0), "img2": (2.0, 2.5), "img3": (4.0, 4.0), "img4": (2.5, 2.0)}
# means: SRGAN 11.5 / 4 = 2.875, ESRGAN 10.5 / 4 = 2.625 -> model classification picks ESRGAN
# UB_MC = 2.625; UB_MR = (2.0 + 2.0 + 4.0 + 2.0) / 4 = 2.5; SRGAN strictly better on img2 only (25 %),
# tie on img3 (25 %)


def _score_csv(path, column: int, order=None):
    """A per-image CSV as ranksrgan-score writes it (image,path,niqe + mean row), rows in ``order``."""
    names = order or list(SCORES)
    recs = [{"image": n, "path": f"x/{n}.png", "niqe": SCORES[n][column]} for n in names]
    write_per_image_csv(path, recs, ["image", "path"], ["niqe"])
    return path


def test_hand_computed_values():
    a = {k: v[0] for k, v in SCORES.items()}
    b = {k: v[1] for k, v in SCORES.items()}
    ub = upper_bounds(a, b, ("SRGAN", "ESRGAN"))
    assert ub.n == 4
    assert ub.mean1 == pytest.approx(2.875) and ub.mean2 == pytest.approx(2.625)
    assert ub.mc_method == "ESRGAN" and ub.ub_mc == pytest.approx(2.625)
    assert ub.ub_mr == pytest.approx(2.5)
    assert ub.frac1_better == pytest.approx(0.25) and ub.frac_tie == pytest.approx(0.25)
    # swapping the roles: UB_MC still takes the better-mean method, UB_MR is symmetric
    ub2 = upper_bounds(b, a, ("ESRGAN", "SRGAN"))
    assert ub2.mc_method == "ESRGAN" and ub2.ub_mc == pytest.approx(2.625) and ub2.ub_mr == pytest.approx(2.5)
    assert ub2.frac1_better == pytest.approx(0.5)


def test_tie_of_means_picks_method_two():
    ub = upper_bounds({"x": 1.0, "y": 3.0}, {"x": 3.0, "y": 1.0}, ("A", "B"))
    assert ub.mc_method == "B" and ub.ub_mc == pytest.approx(2.0) and ub.ub_mr == pytest.approx(1.0)


def test_cli_on_score_csvs(tmp_path, capsys):
    a = _score_csv(tmp_path / "srgan.csv", 0)
    b = _score_csv(tmp_path / "esrgan.csv", 1, order=["img4", "img2", "img3", "img1"])  # matched by name
    assert ub_cli.main([str(a), str(b), "--names", "SRGAN", "ESRGAN"]) == 0
    out = capsys.readouterr().out
    assert "4 images" in out
    lines = {line.split()[0] + (line.split()[1] if line.startswith("mean") else ""): line for line in out.splitlines() if line}
    assert "2.8750" in lines["meanSRGAN"] and "2.6250" in lines["meanESRGAN"]
    assert "2.6250" in lines["UB_MC"] and "ESRGAN" in lines["UB_MC"]
    assert "2.5000" in lines["UB_MR"]
    assert "SRGAN better than ESRGAN on 25.0% of images (ties 25.0%)" in out


def test_cli_on_evaluate_csv_selects_methods(tmp_path, capsys):
    recs = [
        {"dataset": "PIRM", "method": m, "image": n, "niqe": SCORES[n][i], "psnr": 20.0}
        for i, m in enumerate(("SRGAN", "ESRGAN"))
        for n in SCORES
    ]
    recs += [{"dataset": "PIRM", "method": "Bicubic", "image": n, "niqe": 7.0, "psnr": 20.0} for n in SCORES]
    path = tmp_path / "per_image.csv"
    write_per_image_csv(path, recs, ["dataset", "method", "image"], ["niqe", "psnr"], group_by=["dataset", "method"])
    assert read_per_image_csv(path, "niqe", method="ESRGAN") == {f"PIRM/{k}": v[1] for k, v in SCORES.items()}
    assert ub_cli.main([str(path), str(path), "--names", "SRGAN", "ESRGAN"]) == 0
    out = capsys.readouterr().out
    assert "2.5000" in out and "2.6250" in out
    # without --names a multi-method file is ambiguous
    copy = tmp_path / "other.csv"
    copy.write_bytes(path.read_bytes())
    assert ub_cli.main([str(path), str(copy)]) == 1
    assert "several methods" in _error_line(capsys)
    assert ub_cli.main([str(path), str(path)]) == 2
    assert "same method" in _error_line(capsys)


def test_mean_rows_are_skipped(tmp_path):
    path = _score_csv(tmp_path / "s.csv", 0)
    assert MEAN_ROW in path.read_text()
    assert set(read_per_image_csv(path, "niqe")) == set(SCORES)


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"{PROG}: error: "), err
    return err[0]


def test_error_paths(tmp_path, capsys):
    a = _score_csv(tmp_path / "a.csv", 0)
    b = _score_csv(tmp_path / "b.csv", 1, order=["img1", "img2", "img3"])
    assert ub_cli.main([str(a), str(b)]) == 1
    assert "img4" in _error_line(capsys)
    assert ub_cli.main([str(a), str(a), "--metric", "psnr"]) == 2
    assert "lower-is-better" in _error_line(capsys)
    assert ub_cli.main([str(a), str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in _error_line(capsys)
    c = _score_csv(tmp_path / "c.csv", 1)
    assert ub_cli.main([str(a), str(c), "--metric", "pi"]) == 1
    assert "'pi'" in _error_line(capsys)
    assert ub_cli.main([str(a), str(c), "--metric", "foo"]) == 2
    assert "unknown metric" in _error_line(capsys)
    nan = tmp_path / "nan.csv"
    write_per_image_csv(
        nan, [{"image": n, "path": "", "niqe": float("nan") if n == "img2" else 1.0} for n in SCORES], ["image", "path"], ["niqe"]
    )
    assert ub_cli.main([str(a), str(nan)]) == 1
    assert "img2" in _error_line(capsys)
