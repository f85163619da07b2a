"""Every config option composes and resolves; the entry point answers --help and --cfg job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ["data", "trainer", "logger", "ranker", "gan", "experiment", "hparams_search"]
EXTRA = {"data=folders": ["data.train_hr=[a]", "data.val_hr=[b]"], "ranker=sr": ["ranker.datamodule.labels=labels.csv"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.parametrize("override", [f"{g}={o}" for g in GROUPS for o in options(g)])
def test_every_option_composes_and_resolves(override):
    cfg = compose_with([override, *EXTRA.get(override, [])])
    OmegaConf.resolve(cfg)  # every interpolation resolves
    assert not OmegaConf.missing_keys(cfg), OmegaConf.missing_keys(cfg)


def test_groups_have_options():
    for group in ("data", "trainer", "logger", "ranker", "gan", "experiment"):
        assert options(group), group


@pytest.mark.parametrize("recipe", options("gan"))
def test_gan_recipes_build_the_module(recipe):
    """Every recipe's module config has exactly the SRModule arguments (no dead keys)."""
    import inspect

    from ranksrgan.lit.sr_module import SRModule

    cfg = compose_with([f"gan={recipe}"])
    allowed = set(inspect.signature(SRModule).parameters) | {"_target_", "_convert_"}
    assert set(cfg.gan.module) <= allowed, set(cfg.gan.module) - allowed
    assert cfg.gan.module.generator.kwargs.scale == cfg.data.scale
    if cfg.gan.module.gan.weight > 0:
        assert cfg.gan.module.discriminator.kwargs.input_size == cfg.data.hr_patch_size


def test_table8_and_rbri_recipes():
    rbri = compose_with(["gan=rankrbri"]).gan
    assert [r.name for r in rbri.rankers] == ["blur", "interp"] and rbri.rankers[0].weight == rbri.rankers[1].weight
    m1, m2 = compose_with(["gan=ranksrgan_m1"]).gan, compose_with(["gan=ranksrgan_m2"]).gan
    assert (m1.module.pixel.criterion, m1.module.pixel.weight, m2.module.pixel.weight) == ("mse", 1.0, 5.0)
    paper = compose_with(["gan=ranksrgan"]).gan
    assert (paper.module.perceptual.weight, paper.module.gan.weight, paper.rankers[0].weight) == (1.0, 0.005, 0.03)


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=CONF.parent, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_cli_help_and_cfg_job():
    assert "ranker" in _run("--help")
    out = _run("--cfg", "job", "gan=rankrbri", "ranker=blur")
    cfg = OmegaConf.create(out)
    assert cfg.gan.name == "rankrbri" and cfg.ranker.name == "blur"


def test_experiments_set_top_level_keys():
    """``_self_`` comes first in config.yaml, so an experiment's ``compare`` and ``stages`` win."""
    fig22 = compose_with(["experiment=fig22"])
    assert list(fig22.compare) == ["srgan", "rankrn", "rankrb", "rankri"]
    assert "valid_0801-0850" in fig22.data.val_hr[0] and "valid_0851-0900" in fig22.data.test_hr[0]
    assert fig22.rank_data.val_fraction == 0.1 and list(fig22.seeds) == [1, 2, 3]
    short = compose_with(["experiment=fig22_short"])
    assert short.stages.srresnet.max_steps > short.stages.generators.max_steps
    assert compose_with(["experiment=demo"]).stages.srresnet.max_steps == 1500


def _python(code: str, **env: str) -> str:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    environ.update(env)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environ)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_commands_set_omp_wait_policy_before_torch_is_imported():
    # `import ranksrgan` is lazy: console scripts import it (and ranksrgan.cli) before torch
    code = (
        "import sys, os, ranksrgan, ranksrgan.cli; "
        "print('torch' in sys.modules, os.environ['OMP_WAIT_POLICY'], sorted(ranksrgan.__all__) == ranksrgan.__all__); "
        "from ranksrgan import load_ranker, read_image; print(callable(load_ranker), ranksrgan.__version__)"
    )
    assert _python(code).splitlines() == ["False PASSIVE True", "True 0.1.0"]
    assert _python("import os, ranksrgan.cli; print(os.environ['OMP_WAIT_POLICY'])", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    # train.py sets it before importing anything that imports torch
    source = (CONF.parent / "train.py").read_text()
    assert source.index('os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")') < source.index("from ranksrgan")
    with pytest.raises(AttributeError):
        import ranksrgan

        ranksrgan.no_such_name  # noqa: B018
