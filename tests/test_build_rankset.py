"""CLIs: ``ranksrgan-build-rankset`` (label file) and ``ranksrgan-rank100`` (score per method)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ranksrgan.cli import build_rankset, rank100
from ranksrgan.data.demo import demo_image
from ranksrgan.data.rank import bicubic_upscale
from ranksrgan.data.rank.distortion import distort
from ranksrgan.data.rank.labels import part_path, read_labels
from ranksrgan.export import save_state_dict
from ranksrgan.io import to_tensor, write_image
from ranksrgan.lit.ranker_module import RankerModule


def _write(folder: Path, name: str, x: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_image(folder / f"{name}.png", x)


@pytest.fixture()
def folders(tmp_path) -> dict[str, Path]:
    """HR (two 208×208 crops), a bicubic-SR folder and a blurred folder with the same stems."""
    for name, img in (("astro", "astronaut"), ("coffee", "coffee")):
        arr = np.ascontiguousarray(demo_image(img)[:208, 100:308])
        hr = to_tensor(arr)
        _write(tmp_path / "HR", name, hr)
        _write(tmp_path / "bic", name, to_tensor(bicubic_upscale(arr, 4)))
        _write(tmp_path / "blur", name, distort(hr[None], "blur", torch.tensor([3.0]), torch.tensor([0]))[0])
    return {k: tmp_path / k for k in ("HR", "bic", "blur")}


def test_build_rankset_cli(tmp_path, folders, capsys):
    out = tmp_path / "labels.csv"
    argv = [
        "--hr",
        str(folders["HR"]),
        "--sr",
        "hr=hr",
        "--sr",
        f"bic={folders['bic']}",
        "--out",
        str(out),
        "--patch",
        "200",
        "--stride",
        "200",
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert build_rankset.main(argv) == 0
    text = capsys.readouterr().out
    assert "4 rows, 2 images, 2 locations" in text and "niqe" in text
    table = read_labels(out)
    assert table.meta["methods"] == ["hr", "bic"] and table.meta["metrics"] == ["niqe"]
    niqe = table.column("niqe")
    assert np.isfinite(niqe).all()
    rmse = dict(zip(zip(table.column("image"), table.column("method")), table.column("rmse")))
    assert rmse[("astro", "hr")] == 0 and rmse[("astro", "bic")] > 1
    assert not part_path(out).exists()
    # the same command again: the finished file is reused
    assert build_rankset.main(argv) == 0


def test_build_rankset_cli_errors_name_the_files(tmp_path, folders, capsys):
    def run(second_sr: Path, out: str, *extra: str) -> int:
        argv = ["--hr", str(folders["HR"]), "--sr", "a=hr", "--sr", f"b={second_sr}", "--out", str(tmp_path / out)]
        return build_rankset.main([*argv, *extra, "--no-progress"])

    (folders["blur"] / "coffee.png").unlink()
    code = run(folders["blur"], "x.csv", "--patch", "200")
    err = capsys.readouterr().err
    assert code != 0 and "missing 1 (coffee)" in err and str(folders["blur"]) in err
    code = run(folders["bic"], "y.csv", "--metric", "lpips")
    assert code == 2 and "lpips" in capsys.readouterr().err


def test_build_rankset_imports_no_lightning(tmp_path, folders):
    """Start-up: labelling needs torch and the metrics, not Lightning / torchmetrics / Hydra (the
    data modules that serve the labels are a separate module)."""
    code = (
        "import sys\n"
        "from ranksrgan.cli.build_rankset import main\n"
        f"argv = ['--hr', {str(folders['HR'])!r}, '--sr', 'hr=hr', '--sr', 'bic=bicubic', '--out', {str(tmp_path / 'l.csv')!r}]\n"
        "assert main(argv + ['--patch', '200', '--stride', '200', '--no-progress', '--device', 'cpu']) == 0\n"
        "heavy = ('pytorch_lightning', 'lightning', 'torchmetrics', 'hydra', 'omegaconf')\n"
        "print('loaded:', [m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "loaded: []"


@pytest.mark.slow  # a fresh interpreter importing torch and Lightning
def test_build_rankset_module_entry_point(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ranksrgan.cli.build_rankset", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--stride" in result.stdout


def test_rank100_cli_scores_each_method(tmp_path, folders, capsys):
    torch.manual_seed(0)
    ranker = RankerModule(variant="vgg8", num_features=8).ranker
    ckpt = save_state_dict(ranker, tmp_path / "ranker.pth")
    out_csv = tmp_path / "scores.csv"
    code = rank100.main(
        [
            "--ranker",
            str(ckpt),
            f"bic={folders['bic']}",
            f"blur={folders['blur']}",
            f"hr={folders['HR']}",
            "--center-crop",
            "96",
            "--csv",
            str(out_csv),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "std of the method means" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"bic", "blur", "hr"}
    # the printed means are the means of the per-image scores, in the frozen Ranker's polarity
    ranker.eval()
    with torch.no_grad():
        x = torch.stack([to_tensor(np.asarray(demo_image("astronaut")[:208, 100:308]))[:, 56:152, 56:152]])
        expected = float(ranker(x)[0])
    got = next(float(r["score"]) for r in rows if r["method"] == "hr" and r["image"] == "astro")
    assert abs(got - expected) < 1e-4
    means = {m: np.mean([float(r["score"]) for r in rows if r["method"] == m]) for m in ("bic", "blur", "hr")}
    for v in means.values():
        assert f"{v:10.4f}" in text
    # mismatched folders and a too-large crop are one-line errors
    (folders["blur"] / "coffee.png").unlink()
    assert rank100.main(["--ranker", str(ckpt), f"bic={folders['bic']}", f"blur={folders['blur']}"]) != 0
    assert "coffee" in capsys.readouterr().err
    assert rank100.main(["--ranker", str(ckpt), f"bic={folders['bic']}", f"hr={folders['HR']}", "--center-crop", "999"]) != 0
    assert "smaller than --center-crop 999" in capsys.readouterr().err
