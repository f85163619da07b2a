"""Stage resolution and training: which Rankers and generators a run needs, which are already
trained with the same config, and training the rest in order.

A *stage* is one Lightning fit: a Ranker (``ranker=<name>``) or a generator recipe (``gan=<name>``).
Its identity is the SHA-256 of its resolved config plus everything it depends on (data, seed,
precision, the stages it initialises from). Finished stages live in the store::

    <paths.store>/rankers/<name>-<hash>.pth      (the network; + .json: config, metrics)
    <paths.store>/generators/<name>-<hash>.pth
    <paths.store>/training/<name>-<hash>/        (logs, last.ckpt: a killed stage resumes here)

so a multirun sweep over GAN loss weights trains each Ranker once, and re-running a killed
command resumes each unfinished stage from its last checkpoint. Stages are guarded by a file lock,
so parallel launchers (submitit) do not train the same stage twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from ranksrgan.io import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """One trainable unit. ``kind`` is "ranker" or "generator"; ``cfg`` is the resolved stage config."""

    kind: str
    name: str
    cfg: DictConfig
    depends_on: list[Stage] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Hash of this stage's config and of everything it depends on."""
        payload = {
            "kind": self.kind,
            "cfg": OmegaConf.to_container(self.cfg, resolve=True),
            "deps": [d.key for d in self.depends_on],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def artifact(self, store: Path) -> Path:
        return store / f"{self.kind}s" / f"{self.name}-{self.key}.pth"

    def work_dir(self, store: Path) -> Path:
        return store / "training" / f"{self.name}-{self.key}"


def _stage_config(cfg: DictConfig, section: str) -> DictConfig:
    """The part of ``cfg`` that decides a stage's result.

    A Ranker: its section (data folders are already interpolated into it), seed and precision.
    A generator: its recipe, the data config, seed and precision.
    """
    node: dict[str, Any] = {
        section: OmegaConf.to_container(cfg[section], resolve=True),
        "seed": cfg.seed,
        "precision": cfg.trainer.precision,
    }
    if section == "gan":
        node["data"] = OmegaConf.to_container(cfg.data, resolve=True)
    return OmegaConf.create(node)


class Planner:
    """Resolves the stages of a run. ``overrides`` are the run's command-line overrides."""

    def __init__(self, cfg: DictConfig, overrides: list[str]) -> None:
        self.cfg, self.overrides = cfg, list(overrides)

    def variant(self, group: str, name: str, extra: Sequence[str] = ()) -> DictConfig:
        """The run's config with ``group`` switched to ``name``, keeping the other overrides.

        Overrides inside the group (``ranker.x=...``) apply only to the option the user selected,
        except the generator architecture (``gan.module.generator...``), which a GAN and the
        generator it is initialised from must share. ``extra`` overrides are applied last.
        """
        if not extra and self.cfg[group] is not None and self.cfg[group].get("name") == name:
            return self.cfg
        from hydra import compose

        def keep(o: str) -> bool:
            key = o.lstrip("+~")
            if group == "gan" and key.startswith("gan.module.generator"):
                return True
            return not key.startswith((f"{group}=", f"{group}."))

        return compose(config_name="config", overrides=[o for o in self.overrides if keep(o)] + [f"{group}={name}", *extra])

    def plan(self) -> list[Stage]:
        """Stages to run, dependencies first, each once."""
        cfg = self.cfg
        if cfg.get("gan") is None:
            if cfg.get("ranker") is None:
                raise ValueError(
                    "nothing to train: choose ranker=<sr|interp|blur|noise> and/or gan=<recipe> (or experiment=demo)"
                )
            return [ranker_stage(cfg)]
        stages: list[Stage] = []
        if cfg.get("ranker") is not None:
            stages.append(ranker_stage(cfg))
        self.generator_stage(cfg, stages)
        return stages

    def generator_stage(self, cfg: DictConfig, stages: list[Stage]) -> Stage:
        """The stage of ``cfg.gan``, after appending the stages it depends on to ``stages``."""
        deps: list[Stage] = []
        for entry in cfg.gan.get("rankers") or []:
            if entry.get("checkpoint"):
                continue
            if not entry.get("name"):
                raise ValueError(f"gan={cfg.gan.name}: a Ranker entry needs a name or a checkpoint, got {dict(entry)}")
            dep = next((s for s in stages if s.kind == "ranker" and s.name == entry.name), None)
            if dep is None:
                dep = ranker_stage(self.variant("ranker", entry.name))
                stages.append(dep)
            deps.append(dep)
        pretrained = cfg.gan.get("pretrained")
        if pretrained and not is_checkpoint_path(str(pretrained)):
            extra = list(cfg.gan.get("pretrained_overrides") or [])
            deps.append(self.generator_stage(self.variant("gan", str(pretrained), extra), stages))
        stage = Stage("generator", cfg.gan.name, _stage_config(cfg, "gan"), deps)
        existing = next((s for s in stages if s.key == stage.key), None)
        if existing is not None:
            return existing
        stages.append(stage)
        return stage


def is_checkpoint_path(value: str) -> bool:
    """A ``pretrained`` / Ranker value that names a file rather than a recipe."""
    return "/" in value or value.endswith((".ckpt", ".pth", ".pt"))


def ranker_stage(cfg: DictConfig) -> Stage:
    return Stage("ranker", cfg.ranker.name, _stage_config(cfg, "ranker"))


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


def make_logger(cfg: DictConfig, stage: Stage, work_dir: Path):
    kind = cfg.logger.kind
    if kind == "wandb":
        from pytorch_lightning.loggers import WandbLogger

        os.environ.setdefault("WANDB_SILENT", "true")
        return WandbLogger(
            project=cfg.logger.project,
            name=f"{stage.name}-{stage.key}",
            save_dir=str(work_dir),
            offline=cfg.logger.offline,
            group=stage.kind,
        )
    if kind == "csv":
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(save_dir=str(work_dir), name="csv")
    raise ValueError(f"logger.kind must be 'wandb' or 'csv', got {kind!r}")


def make_trainer(
    cfg: DictConfig, stage: Stage, work_dir: Path, max_steps: int, val_check_interval: int, monitor: str, mode: str
) -> pl.Trainer:
    """A Trainer for one stage: step-based validation, best + last checkpoints, the run's logger."""
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

    t = cfg.trainer
    strategy: Any = t.strategy
    if strategy == "ddp" and stage.kind == "generator":
        from ranksrgan.lit.ddp import GANDDPStrategy

        strategy = GANDDPStrategy()
    checkpoint = ModelCheckpoint(
        dirpath=str(work_dir / "checkpoints"),
        filename="best",
        monitor=monitor,
        mode=mode,
        save_last=True,
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    callbacks = [checkpoint]
    logger = make_logger(cfg, stage, work_dir)
    if logger is not None:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    return pl.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=strategy,
        precision=t.precision,
        max_steps=max_steps,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=None,
        log_every_n_steps=t.log_every_n_steps,
        deterministic=t.deterministic,
        benchmark=t.benchmark,
        default_root_dir=str(work_dir),
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=True,
        num_sanity_val_steps=0,
    )


def _finish_logger(trainer: pl.Trainer) -> None:
    if trainer.logger is not None and type(trainer.logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


def run_stage(cfg: DictConfig, stage: Stage, resolved: dict[str, Path]) -> Path:
    """Train ``stage`` (or reuse its stored artifact) and return the artifact path."""
    from hydra.utils import instantiate

    store = Path(cfg.paths.store)
    artifact = stage.artifact(store)
    lock = _locked(store / "locks" / f"{stage.name}-{stage.key}.lock") if is_primary_process() else nullcontext()
    with lock:
        if cfg.reuse_stages and artifact.exists():
            log.info("reusing %s %s: %s", stage.kind, stage.name, artifact)
            return artifact
        section = stage.cfg.ranker if stage.kind == "ranker" else stage.cfg.gan
        work_dir = stage.work_dir(store)
        work_dir.mkdir(parents=True, exist_ok=True)
        pl.seed_everything(cfg.seed, workers=True)
        if stage.kind == "ranker":
            datamodule = instantiate(section.datamodule)
            module = instantiate(section.module)
            steps = section.max_steps
            monitor, mode = section.monitor, "max"
        else:
            datamodule = instantiate(stage.cfg.data)
            module_cfg = OmegaConf.to_container(section.module, resolve=True)
            module_cfg["rankers"] = [_resolve_ranker_entry(e, stage, resolved) for e in section.rankers]
            module_cfg["pretrained_generator"] = _resolve_pretrained(section.pretrained, stage, resolved)
            module = instantiate(module_cfg)
            steps = section.max_steps * module.optimizer_steps_per_iteration
            monitor, mode = section.monitor, section.monitor_mode
        val_every = max(1, min(section.val_check_interval, section.max_steps))
        trainer = make_trainer(cfg, stage, work_dir, steps, val_every, monitor, mode)
        last = work_dir / "checkpoints" / "last.ckpt"
        log.info(
            "training %s %s (%s) in %s%s", stage.kind, stage.name, stage.key, work_dir, " — resuming" if last.exists() else ""
        )
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if last.exists() else None)
        finally:
            _finish_logger(trainer)
        if trainer.global_rank == 0:
            callback = trainer.checkpoint_callback
            best = Path(callback.best_model_path or last)
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
            if callback.best_model_score is not None:
                metrics[f"best/{monitor}"] = float(callback.best_model_score)
            _publish(best if best.exists() else last, artifact, stage, metrics)
        trainer.strategy.barrier()
        return artifact


def _publish(source: Path, artifact: Path, stage: Stage, metrics: dict[str, float]) -> None:
    """Store the stage's network (from the chosen checkpoint) as a slim state dict, atomically,
    with a JSON record beside it. The full training checkpoint stays in the work folder."""
    from ranksrgan.checkpoints import load_generator, load_ranker
    from ranksrgan.export import save_state_dict

    net = load_ranker(source) if stage.kind == "ranker" else load_generator(source)
    save_state_dict(net, artifact)
    record = {
        "kind": stage.kind,
        "name": stage.name,
        "key": stage.key,
        "source": str(source),
        "metrics": metrics,
        "config": OmegaConf.to_container(stage.cfg, resolve=True),
    }
    atomic_write_bytes(artifact.with_suffix(".json"), json.dumps(record, indent=2, default=str).encode())


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

    Returns ``{"stages": {name: artifact}, "final": Stage, "metrics": final stage metrics, "all": stages}``.
    """
    stages = Planner(cfg, list(overrides)).plan()
    log.info("stages: %s", ", ".join(f"{s.kind}:{s.name}" for s in stages))
    resolved: dict[str, Path] = {}
    for stage in stages:
        resolved[stage.key] = run_stage(cfg, stage, resolved)
    final = stages[-1]
    record = json.loads(final.artifact(Path(cfg.paths.store)).with_suffix(".json").read_text())
    return {"stages": {s.name: resolved[s.key] for s in stages}, "final": final, "metrics": record["metrics"], "all": stages}


def summary(cfg: DictConfig, result: dict[str, Any]) -> str:
    """Human-readable end-of-run report: the stages, then (for GAN runs) a PSNR/SSIM/NIQE table of
    bicubic and every trained generator on the validation folders (the Table 3 protocol),
    else the Ranker's validation metrics."""
    from ranksrgan.evaluation import BenchmarkSet, evaluate, format_markdown

    stages: list[Stage] = result["all"]
    lines = ["", "Stages (reused or trained):"]
    lines += [f"  {s.kind:<9} {s.name:<14} {result['stages'][s.name]}" for s in stages]
    generators = [s for s in stages if s.kind == "generator"]
    if not generators:
        metrics = result["metrics"]
        lines.append(
            "Ranker validation: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("val/"))
        )
        return "\n".join(lines)
    val_lr = list(cfg.data.val_lr) if cfg.data.get("val_lr") else [None] * len(cfg.data.val_hr)
    sets = [
        BenchmarkSet(f"val{i}" if len(cfg.data.val_hr) > 1 else "val", Path(hr), Path(lr) if lr else None)
        for i, (hr, lr) in enumerate(zip(cfg.data.val_hr, val_lr))
    ]
    evaluation = evaluate(
        sets, checkpoints=[(s.name, result["stages"][s.name]) for s in generators], scale=cfg.data.scale, with_pi=None
    )
    lines += ["", format_markdown(evaluation)]
    return "\n".join(lines)


def stored_stages(store: str | os.PathLike, kind: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    """Records of finished stages in ``store`` (newest first), optionally of one kind / name.

    Each record is the stage's JSON (``kind``, ``name``, ``key``, ``metrics``: the last validation
    plus ``best/<monitor>``, the score of the stored checkpoint; ``config``) plus
    ``"checkpoint"``: the artifact path. Used by notebooks and scripts to find trained models.
    """
    records = []
    for kind_dir in ("rankers", "generators"):
        for meta in (Path(store) / kind_dir).glob("*.json"):
            record = json.loads(meta.read_text())
            record["checkpoint"] = str(meta.with_suffix(".pth"))
            record["mtime"] = meta.stat().st_mtime
            if (kind is None or record["kind"] == kind) and (name is None or record["name"] == name):
                records.append(record)
    return sorted(records, key=lambda r: r["mtime"], reverse=True)
