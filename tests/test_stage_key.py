"""Each part of a stage's identity changes its key on its own: the input fingerprints (a folder's
file names, sizes and modification times; a file's content), the keys of its dependencies.
(The config, world size and version: test_pipeline.py; an image rewritten in place: test_store.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ranksrgan import fingerprint, pipeline

CONF = str(Path(__file__).resolve().parents[1] / "conf")
NS = 1_700_000_000_000_000_000  # a fixed modification time (ns)


def _srresnet(tmp_path: Path) -> pipeline.Stage:
    """The one stage of ``gan=srresnet`` on folders ``train``/``val`` that starts from ``g.pth``."""
    overrides = [
        "gan=srresnet",
        "data=folders",
        f"data.train_hr=[{tmp_path / 'train'}]",
        f"data.val_hr=[{tmp_path / 'val'}]",
        f"gan.pretrained={tmp_path / 'g.pth'}",
        f"paths.root={tmp_path / 'runs'}",
    ]
    fingerprint._FILE_CACHE.clear()  # a new process: files are hashed again
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        (stage,) = pipeline.Planner(compose(config_name="config", overrides=overrides), overrides).plan()
    return stage


def _write(path: Path, data: bytes, ns: int = NS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(ns, ns))


def _rename(tmp_path: Path) -> None:
    (tmp_path / "train" / "a.png").rename(tmp_path / "train" / "c.png")


def _resize(tmp_path: Path) -> None:
    _write(tmp_path / "train" / "a.png", b"aaaaX")  # one byte more, same modification time


def _touch(tmp_path: Path) -> None:
    os.utime(tmp_path / "train" / "a.png", ns=(NS + 1, NS + 1))  # same bytes, 1 ns later


def _rewrite(tmp_path: Path) -> None:
    _write(tmp_path / "g.pth", b"weights-2")  # same size, same modification time, other content


@pytest.mark.parametrize("change", [_rename, _resize, _touch, _rewrite], ids=["name", "size", "mtime", "content"])
def test_each_part_of_an_input_fingerprint_changes_the_key(tmp_path, change):
    _write(tmp_path / "train" / "a.png", b"aaaa")
    _write(tmp_path / "train" / "b.png", b"bbbb")
    _write(tmp_path / "val" / "v.png", b"vvvv")
    _write(tmp_path / "g.pth", b"weights-1")
    before = _srresnet(tmp_path)
    assert _srresnet(tmp_path).key == before.key  # planning again changes nothing
    change(tmp_path)
    after = _srresnet(tmp_path)
    changed = [p for p in after.inputs if after.inputs[p] != before.inputs.get(p)]
    # only the changed input's fingerprint moves, and with it the key
    assert changed == [str(tmp_path / ("g.pth" if change is _rewrite else "train"))]
    assert after.payload()["config"] == before.payload()["config"] and after.key != before.key


def test_a_dependency_key_alone_changes_the_key():
    cfg = OmegaConf.create({"gan": {"max_steps": 1}, "seed": 0})
    dep = pipeline.Stage("generator", "srresnet", cfg)
    stage = pipeline.Stage("generator", "srgan", cfg, depends_on=[dep])
    key = stage.key
    dep.cfg = OmegaConf.create({"gan": {"max_steps": 2}, "seed": 0})
    assert stage.payload()["config"] == {"gan": {"max_steps": 1}, "seed": 0} and stage.key != key
    assert stage.payload()["deps"] == {"srresnet": dep.key}
