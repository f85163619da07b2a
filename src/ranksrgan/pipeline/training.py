"""Training the planned stages: one Lightning Trainer per stage, publishing to the store
(see :mod:`ranksrgan.pipeline`)."""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ranksrgan.checkpoints import is_checkpoint_path
from ranksrgan.lit.history import HISTORY_FILE, load_history
from ranksrgan.pipeline.checks import preflight
from ranksrgan.pipeline.loggers import finish_logger, make_logger
from ranksrgan.pipeline.planning import Planner
from ranksrgan.pipeline.reuse import Decision, decide
from ranksrgan.pipeline.stage import PlanError, Stage
from ranksrgan.store import StageStore

log = logging.getLogger(__name__)

__all__ = ["RUN_STARTED_ENV", "choose_checkpoint", "is_primary_process", "make_trainer", "run_stage", "run"]


#: Environment variable with the start time of the primary process's run; DDP ranks that re-run
#: the command see it and reuse the stages published since, even with ``reuse_stages=false``.
RUN_STARTED_ENV = "RANKSRGAN_RUN_STARTED"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")


def is_primary_process() -> bool:
    """True unless this process is a non-zero rank of a distributed run.

    Lightning's DDP launcher re-runs the whole command for ranks > 0 (with ``LOCAL_RANK`` set);
    SLURM starts every task itself (``SLURM_PROCID``). Only the primary process takes the stage
    lock: the other ranks must reach ``trainer.fit`` to join the process group, or rank 0 would
    wait for them forever while they wait for its lock.
    """
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def make_trainer(
    cfg: DictConfig,
    stage: Stage,
    work_dir: Path,
    max_steps: int,
    val_check_interval: int,
    monitor: str,
    mode: str,
    position: tuple[int, int] = (1, 1),
) -> pl.Trainer:
    """A Trainer for one stage: the ``trainer`` config's arguments and callbacks, plus step-based
    validation, the best checkpoint by ``monitor``, ``last.ckpt`` after every validation and at
    the end (:class:`~ranksrgan.lit.last_checkpoint.LastCheckpoint`), the global random states in
    every checkpoint and a saving stop on Ctrl-C / SIGTERM (:mod:`ranksrgan.lit.resume`), the
    validation history, stage progress and the run's logger."""
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

    from ranksrgan.lit.history import ValidationHistory
    from ranksrgan.lit.last_checkpoint import LastCheckpoint
    from ranksrgan.lit.progress import StageProgress
    from ranksrgan.lit.resume import Interruption, RandomState

    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)
    extra = kwargs.pop("callbacks", None) or {}
    if kwargs.get("strategy") == "ddp" and stage.kind == "generator":
        from ranksrgan.lit.ddp import GANDDPStrategy

        kwargs["strategy"] = GANDDPStrategy()
    checkpoint = ModelCheckpoint(
        dirpath=str(work_dir / "checkpoints"),
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    label, unit = f"stage {position[0]}/{position[1]} {stage.kind} {stage.label}", "step" if stage.kind == "ranker" else "it"
    steps_per_unit = max(1, max_steps // max(1, stage.steps))
    progress = StageProgress(label, stage.steps, unit=unit, steps_per_unit=steps_per_unit)
    last = LastCheckpoint(work_dir / "checkpoints")
    callbacks = [checkpoint, last, ValidationHistory(work_dir / HISTORY_FILE), progress, RandomState()]
    callbacks.append(Interruption(last, label, stage.steps, unit=unit, steps_per_unit=steps_per_unit))
    callbacks += [instantiate(c) for c in extra.values()]
    logger = make_logger(cfg, work_dir, f"{stage.name}-{stage.key}")
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return pl.Trainer(
        **kwargs,
        max_steps=max_steps,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=None,
        default_root_dir=str(work_dir),
        logger=logger if logger is not None else False,
        callbacks=callbacks,
        enable_progress_bar=False,  # StageProgress counts the stage's own units
        enable_model_summary=bool(cfg.get("verbose", False)),
        num_sanity_val_steps=0,
    )


def run_stage(
    cfg: DictConfig,
    stage: Stage,
    resolved: dict[str, Path],
    run_started: float | None = None,
    position: tuple[int, int] = (1, 1),
) -> Path:
    """Train ``stage`` (or reuse its stored artifact) and return the artifact path.

    ``resolved`` maps the keys of earlier stages to their artifacts; ``position`` is the stage's
    place in the plan (for progress lines).
    """
    store = StageStore(cfg.paths.store)
    artifact = store.artifact(stage.kind, stage.name, stage.key)
    primary = is_primary_process()
    with _locked(store.lock_path(stage.name, stage.key)) if primary else nullcontext():
        decision = decide(cfg, stage, store, run_started)
        if decision.action == "reuse":
            log.info("reusing %s %s (%s): %s", stage.kind, stage.name, stage.key, decision.reason)
            return artifact
        work_dir = _work_dir(cfg, store, stage, decision, primary)
        pl.seed_everything(stage.cfg.seed, workers=True)
        datamodule, module, steps = _instantiate(stage, resolved)
        section = stage.section
        monitor = section.monitor
        mode = "max" if stage.kind == "ranker" else section.monitor_mode
        val_every = max(1, min(section.val_check_interval, section.max_steps))
        trainer = make_trainer(cfg, stage, work_dir, steps, val_every, monitor, mode, position)
        log.info("training %s %s (%s) in %s: %s", stage.kind, stage.name, stage.key, work_dir, decision.reason)
        _fit(trainer, module, datamodule, work_dir, decision.action == "resume", primary)
        if trainer.global_step < steps:
            # Lightning returns normally from some interruptions (e.g. Ctrl-C in older releases):
            # never publish a network that did not finish.
            raise RuntimeError(
                f"{stage.kind} {stage.name} stopped at step {trainer.global_step} of {steps}; "
                "run the same command again to resume from its last checkpoint"
            )
        history = load_history(work_dir / HISTORY_FILE)
        if not history or history[-1]["step"] < section.max_steps:
            # max_steps is not a multiple of val_check_interval: validate the final weights too,
            # so that "last" has metrics (checkpoint selection only sees the periodic validations)
            trainer.validate(module, datamodule=datamodule, verbose=False)
            history = load_history(work_dir / HISTORY_FILE)
        if trainer.global_rank == 0:
            _publish_selected(trainer, store, stage, history, work_dir, resolved)
        trainer.strategy.barrier()
        return artifact


def _work_dir(cfg: DictConfig, store: StageStore, stage: Stage, decision: Decision, primary: bool) -> Path:
    """The stage's work folder; with ``reuse_stages=false`` an old one is moved aside first."""
    work_dir = store.work_dir(stage.name, stage.key)
    if decision.action == "train" and not cfg.reuse_stages and primary:
        moved = store.move_aside(work_dir)
        if moved is not None:
            log.info("reuse_stages=false: moved the old work folder aside to %s", moved)
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir


def _instantiate(stage: Stage, resolved: dict[str, Path]) -> tuple[pl.LightningDataModule, pl.LightningModule, int]:
    """The stage's data module, Lightning module (earlier stages' artifacts filled in) and its
    optimizer steps (a GAN iteration may take several)."""
    from hydra.utils import instantiate

    section = stage.section
    if stage.kind == "ranker":
        dm_cfg = OmegaConf.to_container(section.datamodule, resolve=True)
        source_dep = next((d for d in stage.depends_on if d.kind == "generator"), None)
        if source_dep is not None:
            dm_cfg["sr"] = str(resolved[source_dep.key])
        return instantiate(dm_cfg), instantiate(section.module), section.max_steps
    module_cfg = OmegaConf.to_container(section.module, resolve=True)
    module_cfg["rankers"] = [_resolve_ranker_entry(e, stage, resolved) for e in section.rankers]
    module_cfg["pretrained_generator"] = _resolve_pretrained(section.pretrained, stage, resolved)
    module = instantiate(module_cfg)
    return instantiate(stage.cfg.data), module, section.max_steps * module.optimizer_steps_per_iteration


def _fit(trainer: pl.Trainer, module, datamodule, work_dir: Path, resume: bool, primary: bool) -> None:
    """``trainer.fit``, from the stage's ``last.ckpt`` when resuming; a failed start leaves no empty folder."""
    last = work_dir / "checkpoints" / "last.ckpt"
    resume = resume and last.is_file()
    try:
        with warnings.catch_warnings():
            if resume:  # the folder holds this stage's own checkpoints
                warnings.filterwarnings("ignore", message=f"Checkpoint directory {re.escape(str(last.parent))} exists")
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    except BaseException:
        if primary and work_dir.is_dir() and not any(p.is_file() for p in work_dir.rglob("*")):
            shutil.rmtree(work_dir, ignore_errors=True)
        raise
    finally:
        finish_logger(trainer.logger)


def _publish_selected(
    trainer: pl.Trainer, store: StageStore, stage: Stage, history: list, work_dir: Path, resolved: dict[str, Path]
) -> None:
    """Publish the selected weights (a generator: ``select``, last by default; a Ranker: its best
    validation) with their record, then drop the training checkpoints."""
    section = stage.section
    last = work_dir / "checkpoints" / "last.ckpt"
    callback = trainer.checkpoint_callback
    best = Path(callback.best_model_path or last)
    select = section.get("select", "last") if stage.kind == "generator" else "best"
    if not best.exists():  # no validation scored (every monitor value NaN): the last weights
        select = "last"
    score = None if callback.best_model_score is None else float(callback.best_model_score)
    mode = "max" if stage.kind == "ranker" else section.monitor_mode
    choice = choose_checkpoint(history, section.monitor, mode, select, score)
    _publish(store, best if select == "best" else last, stage, choice, resolved)
    # The published network is the stage's result: the training checkpoints (optimiser
    # states, discriminator) go; logs, samples and the validation history stay.
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)


def _validation(entry: dict[str, Any]) -> dict[str, Any]:
    return {"iteration": entry["step"], **{k: v for k, v in entry.items() if k.startswith("val/")}}


def choose_checkpoint(
    history: list[dict[str, Any]], monitor: str, mode: str, select: str, best_score: float | None = None
) -> dict[str, Any]:
    """What a stage publishes, from its validation history (oldest first): ``select`` ("last" or
    "best"), ``iteration`` and ``metrics`` (the ``val/*`` values) of the published weights, and
    ``last`` / ``best`` (each ``{"iteration", val/*...}``).

    The best entry is the one that scored ``best_score`` (the checkpoint callback's) on
    ``monitor``, else the first of the best values by ``mode`` ("min" / "max"); NaN never wins.
    """
    if not history:
        raise ValueError("no validation ran: nothing describes the weights to publish")
    last = history[-1]
    scored = [e for e in history if isinstance(e.get(monitor), float) and not math.isnan(e[monitor])]
    best = last
    if scored:
        target = best_score if best_score is not None and any(e[monitor] == best_score for e in scored) else None
        if target is None:
            target = (min if mode == "min" else max)(e[monitor] for e in scored)
        best = next(e for e in scored if e[monitor] == target)
    chosen = last if select == "last" else best
    view = _validation(chosen)
    return {
        "selected": select,
        "monitor": monitor,
        "iteration": view.pop("iteration"),
        "metrics": view,
        "last": _validation(last),
        "best": _validation(best),
    }


def _publish(store: StageStore, source: Path, stage: Stage, choice: dict[str, Any], resolved: dict[str, Path]) -> Path:
    """Store the stage's network (from the chosen checkpoint) as a slim state dict with its record.

    The record describes the published weights: ``selected`` (last / best), their ``iteration``
    and validation ``metrics``; ``last`` and ``best`` keep both validations (:func:`choose_checkpoint`).

    The record's ``config`` is what the stage ran with: the interpolation Ranker's ``sr`` recipe is
    replaced by the generator file it resolved to, so that its data module can be instantiated
    again (notebooks do); a GAN's Rankers and starting point keep their names (``deps`` maps them
    to keys). ``key_config`` is what the key hashed; ``origin`` the run's experiment and data options."""
    from ranksrgan.checkpoints import load_generator, load_ranker

    net = load_ranker(source) if stage.kind == "ranker" else load_generator(source)
    payload = stage.payload()
    config = OmegaConf.to_container(stage.cfg, resolve=True)
    source_dep = next((d for d in stage.depends_on if d.kind == "generator"), None)
    if stage.kind == "ranker" and source_dep is not None:
        config["ranker"]["datamodule"]["sr"] = str(resolved[source_dep.key])
    record = {
        "kind": stage.kind,
        "name": stage.name,
        "key": stage.key,
        "seed": stage.cfg.seed,
        "source": str(source),
        **choice,
        "config": config,
        "key_config": payload["config"],
        "inputs": payload["inputs"],
        "deps": payload["deps"],
        "world_size": payload["world_size"],
        "version": payload["version"],
        "origin": stage.origin,
    }
    return store.publish(net, record)


def _resolve_ranker_entry(entry: DictConfig, stage: Stage, resolved: dict[str, Path]) -> dict:
    if entry.get("checkpoint"):
        path = Path(entry.checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"{path}: Ranker checkpoint named in gan={stage.name} does not exist")
        return {"name": entry.get("name") or path.stem, "checkpoint": str(path), "weight": float(entry.weight)}
    dep = next(d for d in stage.depends_on if d.kind == "ranker" and d.name == entry.name)
    return {"name": entry.name, "checkpoint": str(resolved[dep.key]), "weight": float(entry.weight)}


def _resolve_pretrained(pretrained: str | None, stage: Stage, resolved: dict[str, Path]) -> str | None:
    if not pretrained:
        return None
    if is_checkpoint_path(str(pretrained)):
        if not Path(pretrained).exists():
            raise FileNotFoundError(f"{pretrained}: pretrained generator named in gan={stage.name} does not exist")
        return str(pretrained)
    dep = next(d for d in stage.depends_on if d.kind == "generator")
    return str(resolved[dep.key])


def run(cfg: DictConfig, overrides: list[str] = ()) -> dict[str, Any]:
    """Run every stage the config needs (``overrides``: the command line, to compose dependencies).

    Returns ``{"stages": {label: artifact}, "final": Stage, "metrics": final stage metrics (of its
    published weights), "all": stages}`` (labels: :attr:`Stage.label`).
    """
    if is_primary_process():
        os.environ[RUN_STARTED_ENV] = repr(time.time())
    run_started = float(os.environ[RUN_STARTED_ENV]) if RUN_STARTED_ENV in os.environ else None
    stages = Planner(cfg, list(overrides)).plan()
    store = StageStore(cfg.paths.store)
    todo = [s for s in stages if decide(cfg, s, store).action != "reuse"]
    problems = preflight(cfg, todo)
    if problems:
        raise PlanError(problems)
    log.info("stages: %s", ", ".join(f"{s.kind}:{s.label}" for s in stages))
    resolved: dict[str, Path] = {}
    for i, stage in enumerate(stages, 1):
        resolved[stage.key] = run_stage(
            cfg, stage, resolved, run_started if not cfg.reuse_stages else None, position=(i, len(stages))
        )
    final = _final_stage(cfg, stages)
    record = StageStore(cfg.paths.store).finished(final.kind, final.name, final.key) or {}
    return {
        "stages": {s.label: resolved[s.key] for s in stages},
        "final": final,
        "metrics": record.get("metrics", {}),
        "all": stages,
    }


def _final_stage(cfg: DictConfig, stages: list[Stage]) -> Stage:
    """The stage the command asked for: its ``gan`` recipe, else its Ranker, else the last one."""
    for kind, group in (("generator", "gan"), ("ranker", "ranker")):
        if cfg.get(group) is not None:
            match = [s for s in stages if s.kind == kind and s.name == cfg[group].name]
            if match:
                return match[-1]
    return stages[-1]
