"""The README's Python snippet runs as written, on an image whose sides are not multiples of 4."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_readme_python_api_snippet_runs(tmp_path, monkeypatch, capsys):
    from ranksrgan.data.demo import demo_image
    from ranksrgan.export import save_state_dict
    from ranksrgan.io import to_tensor, write_image
    from ranksrgan.nets import Ranker, SRResNet

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    # the files it names, made here: an odd-sized natural image and tiny networks
    write_image(tmp_path / "baboon.png", to_tensor(np.ascontiguousarray(demo_image("chelsea")[:203, :257])))
    torch.manual_seed(0)
    save_state_dict(SRResNet(num_features=8, num_blocks=1, scale=4), tmp_path / "RankSRGAN_NIQE.pth")
    save_state_dict(Ranker("vgg8", num_features=4), tmp_path / "Ranker_NIQE.pth")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "README.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "tensor" in lines[0] and "tensor" in lines[1]


def test_readme_snippet_scores_as_ranksrgan_evaluate(tmp_path, monkeypatch, capsys):
    """The snippet's LR and SR rounding is the command's: the same NIQE, PSNR and SSIM for one image."""
    from ranksrgan.data.demo import demo_image
    from ranksrgan.evaluation import BenchmarkSet, evaluate
    from ranksrgan.export import save_state_dict
    from ranksrgan.io import to_tensor, write_image
    from ranksrgan.nets import Ranker, SRResNet

    text = (REPO / "README.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text[text.index("## Python API") :], re.S).group(1)
    (tmp_path / "HR").mkdir()
    write_image(tmp_path / "HR" / "baboon.png", to_tensor(np.ascontiguousarray(demo_image("coffee")[:203, :257])))
    (tmp_path / "baboon.png").write_bytes((tmp_path / "HR" / "baboon.png").read_bytes())
    torch.manual_seed(1)
    save_state_dict(SRResNet(num_features=8, num_blocks=1, scale=4, image_skip="bicubic"), tmp_path / "RankSRGAN_NIQE.pth")
    save_state_dict(Ranker("vgg8", num_features=4), tmp_path / "Ranker_NIQE.pth")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    capsys.readouterr()
    from ranksrgan.metrics import niqe, psnr_y, ssim_y

    sr, hr = scope["sr"], scope["hr"][None]
    mine = {"niqe": niqe(sr, crop_border=4), "psnr": psnr_y(sr, hr, crop_border=4), "ssim": ssim_y(sr, hr, crop_border=4)}
    ev = evaluate(
        [BenchmarkSet("one", tmp_path / "HR")],
        checkpoints=[("g", tmp_path / "RankSRGAN_NIQE.pth")],
        metrics=["niqe", "psnr", "ssim"],
        with_pi=False,
    )
    (row,) = [r for r in ev.records if r["method"] == "g"]
    assert all(np.isfinite(float(v)) for v in mine.values()), mine
    for name, value in mine.items():
        assert float(value) == pytest.approx(row[name], rel=1e-9, abs=1e-12), name
