"""The README's Python snippet runs as written, on an image whose sides are not multiples of 4."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
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
