"""``python train.py`` / ``ranksrgan-train``: the Hydra entry point of every training stage.

Thin: config discovery, logging and printing. The stage logic is :mod:`ranksrgan.pipeline`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig

__all__ = ["config_dir", "train", "quiet", "main"]

log = logging.getLogger("ranksrgan.train")


def config_dir() -> str:
    """``$RANKSRGAN_CONFIG_DIR``, else ``./conf`` in the launch folder, else the source checkout's ``conf/``."""
    candidates = [os.environ.get("RANKSRGAN_CONFIG_DIR"), Path.cwd() / "conf", Path(__file__).resolve().parents[3] / "conf"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "config.yaml").is_file():
            return str(Path(candidate).resolve())
    raise SystemExit("ranksrgan-train: no conf/config.yaml found; run from the repository root or set RANKSRGAN_CONFIG_DIR")


def train(cfg: DictConfig) -> float | None:
    """Run the pipeline for ``cfg``; print the summary; return the final stage's monitored metric.

    Problems with the command (nothing to train, missing inputs, bad values, command-line values
    that do not reach their stage, missing VGG19 weights offline) are printed as one line each,
    without a traceback, and exit with status 2; so does a dry run that finds them.
    Ctrl-C or SIGTERM during a stage saves its current step, prints what was saved and the command
    that resumes (:class:`~ranksrgan.lit.resume.Interruption`) and exits with 128 + the signal.
    """
    from hydra.core.hydra_config import HydraConfig

    from ranksrgan import pipeline
    from ranksrgan.lit.resume import StageInterrupted

    quiet(bool(cfg.get("verbose", False)))
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    try:
        if cfg.dry_run:
            stages = pipeline.Planner(cfg, overrides).plan()
            print(pipeline.describe_plan(cfg, stages, with_problems=False))
            problems = pipeline.blocking_problems(cfg, stages)
            if problems:
                raise pipeline.PlanError(problems)
            return None
        if HydraConfig.initialized():
            from ranksrgan.cli.sweep import check_job

            check_job(HydraConfig.get(), cfg, overrides)
        result = pipeline.run(cfg, overrides)
    except (pipeline.PlanError, FileNotFoundError) as err:
        lines = err.problems if isinstance(err, pipeline.PlanError) else [str(err)]
        for line in lines:
            print(f"ranksrgan-train: error: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    except StageInterrupted as stop:  # the line saying what was saved is printed already
        raise SystemExit(stop.exit_code) from None
    out_dir = HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None
    if pipeline.is_primary_process():  # the other DDP ranks would print the same table again
        print(pipeline.summary(cfg, result, out_dir))
        if out_dir is not None:
            wandb_run = pipeline.log_final_report(cfg, result, out_dir)
            if wandb_run is not None:
                print(f"  W&B run of the final table and Fig. 9: {wandb_run}")
    final = result["final"]
    section = final.cfg.ranker if final.kind == "ranker" else final.cfg.gan
    value = result["metrics"].get(section.monitor)  # of the published weights (the stage's `select`)
    if out_dir is not None and pipeline.is_primary_process():
        from ranksrgan.cli.sweep import write_job_result

        path = write_job_result(
            out_dir, overrides, section.monitor, section.get("monitor_mode", "max"), value, result["metrics"], result.get("table")
        )
        print(f"  {path}")
    if value is None:
        return None
    if math.isnan(value):
        # A sweep must rank a diverged trial last rather than stop the whole study.
        worst = float("-inf") if section.get("monitor_mode", "max") == "max" else float("inf")
        log.warning("%s is NaN for %s; returning %s to the sweeper", section.monitor, final.name, worst)
        return worst
    return float(value)


# Messages that are expected here and only add noise (shown with verbose=true): frozen VGG/Rankers
# are in eval mode on purpose; the module (not the datamodule) moves batches for on-device
# distortion.
_EXPECTED_WARNINGS = (
    r".*module\(s\) in eval mode at the start of training.*",
    r".*overridden `on_after_batch_transfer` in `LightningModule`.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*torch\.jit.*deprecated.*",
    r".*does not have many workers.*",
    r".*This DataLoader will create \d+ worker processes in total.*",
)
# Loggers whose INFO lines (GPU/TPU availability, tips, seeds, checkpoint loading) are hidden
# unless verbose=true.
_CHATTY_LOGGERS = (
    "pytorch_lightning.utilities.rank_zero",
    "pytorch_lightning.accelerators.cuda",
    "pytorch_lightning.trainer.connectors.checkpoint_connector",
    "lightning_fabric.utilities.seed",
    "lightning_fabric.utilities.distributed",
)


def quiet(verbose: bool) -> None:
    """Hide the expected warnings and Lightning's info lines, unless ``verbose``."""
    if verbose:
        return
    for pattern in _EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main() -> float | None:
    return hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")(train)()


if __name__ == "__main__":
    main()
