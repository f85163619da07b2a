"""The run's experiment logger (``cfg.logger``), made per stage and once more for the final report."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

__all__ = ["is_wandb", "make_logger", "finish_logger"]


def is_wandb(cfg: DictConfig) -> bool:
    """Whether the run logs to Weights & Biases (``logger=wandb``)."""
    return cfg.get("logger") is not None and str(cfg.logger.get("_target_", "")).endswith("WandbLogger")


def make_logger(cfg: DictConfig, save_dir: str | os.PathLike, name: str):
    """``cfg.logger`` (a partial Lightning logger) writing under ``save_dir`` as run ``name``, or None."""
    from hydra.utils import instantiate

    if cfg.get("logger") is None:
        return None
    if is_wandb(cfg):
        os.environ.setdefault("WANDB_SILENT", "true")
    logger = instantiate(cfg.logger)(save_dir=str(Path(save_dir)), name=name)
    # Lightning passes anonymous=None, which wandb now warns about at every stage.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def finish_logger(logger) -> None:
    """Close a W&B run, so that the next stage (or the final report) starts its own."""
    if logger is not None and type(logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()
