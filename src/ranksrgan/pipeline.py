"""Stage planning and training: which Rankers and generators a run needs, which are already
trained, and training the rest in order.

A *stage* is one Lightning fit: a Ranker (``ranker=<name>``) or a generator recipe (``gan=<name>``).
The paper's dependency graph is built from the configs:

* a GAN recipe depends on its Rankers (``gan.rankers``: a Ranker config name or a checkpoint)
  and on the generator it starts from (``gan.pretrained``: a recipe name or a checkpoint);
* the interpolation Ranker depends on the generator recipe named by ``datamodule.sr``
  (``sr: srgan``: SRGAN outputs interpolated with HR, paper Eq. 12);
* ``compare: [srgan, rankrb, ...]`` adds more recipes to the run (the paper's Fig. 22).

``ranker=blur gan=rankrbri`` therefore plans: blur Ranker, SRResNet, SRGAN, interpolation Ranker
(fed by that SRGAN), RankSRGAN-RbRi.

**Stage settings.** A dependency is composed from its own config option with the run's other
command-line overrides (``experiment=...``, ``data...``, ``trainer...``); the group overrides
(``ranker.*``, ``gan.*``) belong to the option the command selected, except the generator
architecture (``gan.module.generator...``), which every generator stage shares. Then the
``stages`` dict of the config is merged into the stage's section, most specific last:
``stages.all`` < ``stages.rankers`` / ``stages.generators`` < ``stages.<stage name>``.

**Stage key.** The SHA-256 (12 hex digits) of everything that decides the stage's result:

* its resolved config (section, seed, precision; for generators the data config), less the keys
  that do not change the result (:data:`NO_EFFECT_KEYS`, and the labelling settings of a label
  file that is read rather than built: those are checked against the file's header instead);
* the fingerprint of every file and folder it reads (:mod:`ranksrgan.fingerprint`: folders by
  names, sizes and modification times; label files and checkpoints by content);
* the keys of the stages it depends on;
* the world size (devices × nodes: ``data.batch_size`` is per process, so it sets the effective
  batch) and the library version.

Finished stages live in :class:`ranksrgan.store.StageStore`. With ``reuse_stages=true`` a finished
stage of the same key is reused and an unfinished one resumes from its ``last.ckpt``. With
``reuse_stages=false`` every stage trains from step 0 in a fresh work folder (an old one is moved
aside to ``<name>-<key>.old-<time>``). ``dry_run=true`` prints the plan and what each stage will do.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

import ranksrgan
from ranksrgan.checkpoints import is_checkpoint_path
from ranksrgan.fingerprint import path_digest
from ranksrgan.lit.history import HISTORY_FILE, load_history
from ranksrgan.store import StageStore, describe_change

log = logging.getLogger(__name__)

#: Config keys (dotted, inside the stage config) that never change a stage's result.
NO_EFFECT_KEYS = (
    "ranker.datamodule.label_batch_size",
    "gan.module.num_logged_images",
    "gan.module.nan_check_interval",
    "gan.module.grad_norm_interval",
)

__all__ = [
    "PlanError",
    "Stage",
    "Planner",
    "Decision",
    "world_size",
    "is_recipe",
    "stage_inputs",
    "check_values",
    "preflight",
    "decide",
    "describe_plan",
    "is_primary_process",
    "make_logger",
    "make_trainer",
    "run_stage",
    "run",
    "summary",
    "stored_stages",
]
#: Config keys whose string values name files or folders a stage reads.
PATH_KEYS = ("train_hr", "val_hr", "train_lr", "val_lr", "hr", "sr", "labels", "checkpoint", "pretrained")
#: Values of ``sr`` / ``hr`` entries that name no file.
SOURCE_WORDS = ("bicubic", "hr")
#: Environment variable with the start time of the primary process's run; DDP ranks that re-run
#: the command see it and reuse the stages published since, even with ``reuse_stages=false``.
RUN_STARTED_ENV = "RANKSRGAN_RUN_STARTED"


class PlanError(ValueError):
    """Problems found while planning or checking a run, one per line (all of them, not the first)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Stage:
    """One trainable unit.

    Attributes:
        kind: "ranker" or "generator".
        name: its config option (``blur``, ``srresnet``, ``rankrbri``...).
        cfg: the resolved stage config (``ranker`` or ``gan`` section, seed, precision[, data]).
        depends_on: stages whose artifacts it reads.
        inputs: ``{path: fingerprint}`` of the files and folders it reads.
        world_size: processes of the run (devices × nodes).
        ignored: dotted config keys left out of the key (no effect on the result).
    """

    kind: str
    name: str
    cfg: DictConfig
    depends_on: list[Stage] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    ignored: tuple[str, ...] = ()

    @property
    def section(self) -> DictConfig:
        return self.cfg.ranker if self.kind == "ranker" else self.cfg.gan

    @property
    def steps(self) -> int:
        """Ranker steps, or generator iterations (generator updates)."""
        return int(self.section.max_steps)

    def payload(self) -> dict[str, Any]:
        """Everything the key hashes (also stored in the stage's record, to explain changes)."""
        config = OmegaConf.to_container(self.cfg, resolve=True)
        for dotted in self.ignored:
            node = config
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(leaf, None)
        return {
            "kind": self.kind,
            "config": config,
            "inputs": dict(sorted(self.inputs.items())),
            "deps": {d.name: d.key for d in self.depends_on},
            "world_size": self.world_size,
            "version": ranksrgan.__version__,
        }

    @property
    def key(self) -> str:
        payload = json.dumps(self.payload(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def world_size(trainer: DictConfig) -> int:
    """Processes of a run: ``trainer.devices`` (a count, -1/"auto" = all GPUs, or a list of ids) × ``num_nodes``."""
    devices = trainer.devices
    if isinstance(devices, str) and devices != "auto":
        devices = [d for d in devices.split(",") if d.strip()] if "," in devices else int(devices)
    if OmegaConf.is_list(devices) or isinstance(devices, (list, tuple)):
        count = len(devices)
    elif devices in (-1, "auto"):
        import torch

        gpu = trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
        count = torch.cuda.device_count() if gpu else 1
    else:
        count = int(devices)
    return max(1, count) * int(trainer.num_nodes)


class Planner:
    """Resolves the stages of a run. ``overrides`` are the run's command-line overrides."""

    def __init__(self, cfg: DictConfig, overrides: list[str]) -> None:
        self.cfg, self.overrides = cfg, list(overrides)
        self.world_size = world_size(cfg.trainer)
        #: problems found while planning (missing inputs, bad values); :meth:`plan` raises them together
        self.problems: list[str] = []
        if cfg.data.get("build_demo"):
            # The demo images are inputs of every stage: they must exist before they are fingerprinted.
            from ranksrgan.data.demo import build_demo_dataset

            build_demo_dataset(cfg.data.demo_root)

    # ----------------------------------------------------------------- configs
    def variant(self, group: str, name: str) -> DictConfig:
        """The run's config with ``group`` switched to ``name`` and the ``stages`` settings merged."""
        cfg = self.cfg
        if cfg.get(group) is None or cfg[group].get("name") != name:
            from hydra import compose
            from hydra.errors import MissingConfigException

            def keep(o: str) -> bool:
                key = o.lstrip("+~")
                if group == "gan" and key.startswith("gan.module.generator"):
                    return True
                return not key.startswith((f"{group}=", f"{group}."))

            try:
                cfg = compose(config_name="config", overrides=[o for o in self.overrides if keep(o)] + [f"{group}={name}"])
            except MissingConfigException:
                raise PlanError([f"no {group} config named {name!r} (conf/{group}/{name}.yaml)"]) from None
        return self._with_stage_settings(cfg, group, name)

    def _with_stage_settings(self, cfg: DictConfig, group: str, name: str) -> DictConfig:
        settings = self.cfg.get("stages") or {}
        kind = "rankers" if group == "ranker" else "generators"
        layers = [(label, settings.get(label)) for label in ("all", kind, name)]
        layers = [(label, layer) for label, layer in layers if layer]
        if not layers:
            return cfg
        cfg = cfg.copy()
        section = cfg[group]
        for label, layer in layers:
            try:
                section = OmegaConf.merge(section, layer)
            except Exception as err:  # omegaconf raises several types for a bad key
                raise PlanError([f"stages.{label} does not fit {group}={name}: {str(err).splitlines()[0]}"]) from None
        OmegaConf.set_struct(cfg, False)
        cfg[group] = section
        return cfg

    # ----------------------------------------------------------------- planning
    def plan(self) -> list[Stage]:
        """Stages to run, dependencies first, each once.

        Raises :class:`PlanError` listing every problem found in every stage (missing files and
        folders, negative loss weights, non-positive steps) before anything trains.
        """
        self.problems = [
            f"trainer.{k} is set per stage by the pipeline; set it in the stage's section or stages.<name>"
            for k in STAGE_TRAINER_KEYS
            if k in self.cfg.trainer
        ]
        stages = self._plan()
        for stage in stages:
            self.problems += check_values(stage)
        if self.problems:
            raise PlanError(list(dict.fromkeys(self.problems)))
        return stages

    def _plan(self) -> list[Stage]:
        cfg = self.cfg
        compare = list(cfg.get("compare") or [])
        if cfg.get("gan") is None and not compare:
            if cfg.get("ranker") is None:
                raise PlanError(
                    [
                        "nothing to train: choose ranker=<sr|interp|blur|noise|jpeg|downscale|motion|sensor> "
                        "and/or gan=<recipe> (or experiment=demo)"
                    ]
                )
            stages: list[Stage] = []
            self.ranker_stage(self.variant("ranker", cfg.ranker.name), stages)
            return stages
        stages = []
        if cfg.get("ranker") is not None:
            self.ranker_stage(self.variant("ranker", cfg.ranker.name), stages)
        if cfg.get("gan") is not None:
            self.generator_stage(self.variant("gan", cfg.gan.name), stages)
        for name in compare:
            self.generator_stage(self.variant("gan", str(name)), stages)
        return stages

    def _add(self, stage: Stage, stages: list[Stage]) -> Stage:
        existing = next((s for s in stages if s.kind == stage.kind and s.key == stage.key), None)
        if existing is not None:
            return existing
        stages.append(stage)
        return stage

    def ranker_stage(self, cfg: DictConfig, stages: list[Stage]) -> Stage:
        """The Ranker stage of ``cfg.ranker``, after the stages it depends on."""
        deps: list[Stage] = []
        datamodule = cfg.ranker.datamodule
        source = datamodule.get("sr")
        if isinstance(source, str) and is_recipe(source):
            try:
                deps.append(self.generator_stage(self.variant("gan", source), stages))
            except PlanError as err:
                raise PlanError(
                    [
                        f"ranker={cfg.ranker.name}: datamodule.sr={source!r} is not 'bicubic', an existing file or folder, "
                        f"nor a generator recipe ({err})"
                    ]
                ) from None
        ignored = ["ranker.datamodule.label_batch_size"]
        labels = datamodule.get("labels")
        if labels is not None and datamodule.get("hr") is None:
            try:
                ignored += [f"ranker.datamodule.{k}" for k in _read_label_settings(cfg.ranker.name, datamodule)]
            except (OSError, ValueError) as err:
                self.problems.append(str(err))
        stage_cfg = _stage_config(cfg, "ranker")
        stage = Stage(
            "ranker",
            cfg.ranker.name,
            stage_cfg,
            deps,
            stage_inputs(cfg.ranker, f"ranker={cfg.ranker.name}", self.problems, "ranker"),
            self.world_size,
            tuple(ignored),
        )
        return self._add(stage, stages)

    def generator_stage(self, cfg: DictConfig, stages: list[Stage]) -> Stage:
        """The stage of ``cfg.gan``, after the stages it depends on."""
        deps: list[Stage] = []
        for entry in cfg.gan.get("rankers") or []:
            if entry.get("checkpoint"):
                continue
            if not entry.get("name"):
                raise PlanError([f"gan={cfg.gan.name}: a Ranker entry needs a name or a checkpoint, got {dict(entry)}"])
            # A Ranker the command selected itself (with its own overrides) serves the recipe.
            dep = next((s for s in stages if s.kind == "ranker" and s.name == entry.name), None)
            if dep is None:
                dep = self.ranker_stage(self.variant("ranker", entry.name), stages)
            deps.append(dep)
        pretrained = cfg.gan.get("pretrained")
        if pretrained and not is_checkpoint_path(str(pretrained)):
            deps.append(self.generator_stage(self.variant("gan", str(pretrained)), stages))
        where = f"gan={cfg.gan.name}"
        inputs = {**stage_inputs(cfg.gan, where, self.problems, "gan"), **stage_inputs(cfg.data, where, self.problems, "data")}
        stage = Stage("generator", cfg.gan.name, _stage_config(cfg, "gan"), deps, inputs, self.world_size, NO_EFFECT_KEYS)
        return self._add(stage, stages)


def is_recipe(source: str) -> bool:
    """Whether an interpolation Ranker's ``sr`` names a generator recipe (not ``bicubic``, not a
    file or folder that exists, not checkpoint-like)."""
    return source not in SOURCE_WORDS and not Path(source).exists() and not is_checkpoint_path(source)


#: ``trainer`` keys that do not decide a stage's result (the device count enters as the world size).
TRAINER_KEYS_WITHOUT_EFFECT = (
    "accelerator",
    "devices",
    "num_nodes",
    "strategy",
    "log_every_n_steps",
    "benchmark",
    "deterministic",
)


def _stage_config(cfg: DictConfig, section: str) -> DictConfig:
    """The part of ``cfg`` that decides a stage's result.

    A Ranker: its section (data folders are already interpolated into it), seed and the trainer
    settings that change results (precision, extra callbacks, any added Trainer argument such as
    gradient_clip_val). A generator: the same with its recipe, plus the data config.
    """
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    node: dict[str, Any] = {
        section: OmegaConf.to_container(cfg[section], resolve=True),
        "seed": cfg.seed,
        "trainer": {k: v for k, v in trainer.items() if k not in TRAINER_KEYS_WITHOUT_EFFECT},
    }
    if section == "gan":
        node["data"] = OmegaConf.to_container(cfg.data, resolve=True)
    return OmegaConf.create(node)


def _read_label_settings(ranker: str, datamodule: DictConfig) -> list[str]:
    """Check an existing label file's header against the labelling keys; returns those keys."""
    from ranksrgan.data.rank.labels import read_labels
    from ranksrgan.data.rank.sr import LABEL_SETTINGS, check_label_settings

    path = Path(datamodule.labels)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label file of ranker={ranker} not found (build it with ranksrgan-build-rankset)")
    meta = read_labels(path).meta
    check_label_settings(path, meta, **{k: datamodule.get(k) for k in LABEL_SETTINGS if k != "patch_size"})
    return [k for k in LABEL_SETTINGS if k != "patch_size"]


def stage_inputs(node: DictConfig, where: str, problems: list[str] | None = None, prefix: str = "") -> dict[str, str]:
    """``{path: fingerprint}`` of the files and folders named under :data:`PATH_KEYS` in ``node``.

    A missing input raises FileNotFoundError, or is appended to ``problems`` when that list is
    given (so that a plan reports every problem at once). A label file that the stage builds
    itself (``labels`` with ``hr`` set) is an output, not an input; a label file that is read
    adds the folders named in its header.
    """
    found: dict[str, str] = {}

    def add(path: str, label: str, required: bool = True) -> None:
        digest = path_digest(path)
        if digest is None:
            if required:
                message = f"{path}: {label} of {where} does not exist"
                if problems is None:
                    raise FileNotFoundError(message)
                problems.append(message)
            return
        found[path] = digest

    def walk(n: Any, trail: str) -> None:
        if isinstance(n, dict):
            builds_labels = n.get("hr") is not None and "labels" in n
            for k, v in n.items():
                here = f"{trail}.{k}" if trail else str(k)
                if k in PATH_KEYS and not (k == "labels" and builds_labels):
                    for value in _path_values(k, v):
                        add(value, here)
                        if k == "labels" and Path(value).is_file():
                            _label_sources(value, add)
                else:
                    walk(v, here)
        elif isinstance(n, list):
            for i, v in enumerate(n):
                walk(v, f"{trail}.{i}")

    walk(OmegaConf.to_container(node, resolve=True), prefix)
    return found


def _path_values(key: str, value: Any) -> list[str]:
    values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, str) or not v or v in SOURCE_WORDS:
            continue
        if key in ("sr", "pretrained") and not isinstance(value, dict) and is_recipe(v):
            continue  # a recipe: its stage key stands for it
        out.append(v)
    return out


def _label_sources(path: str, add) -> None:
    from ranksrgan.data.rank.labels import read_labels

    meta = read_labels(path).meta
    add(str(meta["hr"]), f"HR folder named in {path}")
    for method, folder in (meta.get("sr") or {}).items():
        if folder not in SOURCE_WORDS:
            add(str(folder), f"SR folder of {method!r} named in {path}")


def check_values(stage: Stage) -> list[str]:
    """Config values that cannot train: non-positive steps or validation interval, negative loss
    or Ranker weights. One line per problem, naming the key as the command line spells it."""
    section, group = stage.section, "ranker" if stage.kind == "ranker" else "gan"
    where = f"{group}={stage.name}"
    problems = []
    for key in ("max_steps", "val_check_interval"):
        value = section.get(key)
        if value is None or int(value) <= 0:
            problems.append(f"{where}: {key} must be > 0, got {value} (stages.{stage.name}.{key} or {group}.{key})")
    if stage.kind == "generator":
        for term in ("pixel", "perceptual", "gan"):
            weight = (section.module.get(term) or {}).get("weight", 0.0)
            if weight is not None and float(weight) < 0:
                problems.append(f"{where}: gan.module.{term}.weight must be >= 0, got {weight}")
        for i, entry in enumerate(section.get("rankers") or []):
            if float(entry.get("weight", 0.0)) < 0:
                problems.append(
                    f"{where}: gan.rankers.{i}.weight ({entry.get('name') or entry.get('checkpoint')}) must be >= 0, "
                    f"got {entry.weight}; a Ranker score is higher for worse images, so a positive weight already "
                    "pushes toward better ones"
                )
    return problems


#: Free space below which a run does not start (checkpoints of one stage are tens of MB to GBs).
MIN_FREE_BYTES = 512 * 2**20


def preflight(cfg: DictConfig, stages: list[Stage], download: bool = True) -> list[str]:
    """Problems that would stop a stage later, found before the first stage starts.

    * the store folder can be created and written, with at least :data:`MIN_FREE_BYTES` free;
    * the VGG19 ImageNet weights of every perceptual loss with ``pretrained: true`` are in the
      torch hub cache; with ``download`` a missing file is fetched now (the dry run only looks);
      the same for LPIPS / DISTS weights (``perceptual.kind``), checked only with ``download``.

    Returns one line per problem (empty: ready). Inputs and config values are checked by
    :meth:`Planner.plan`.
    """
    import shutil

    problems: list[str] = []
    store = Path(cfg.paths.store)
    try:
        store.mkdir(parents=True, exist_ok=True)
        probe = store / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        free = shutil.disk_usage(store).free
        if free < MIN_FREE_BYTES:
            problems.append(f"{store}: only {free / 2**20:.0f} MB free; checkpoints need at least {MIN_FREE_BYTES // 2**20} MB")
    except OSError as err:
        problems.append(f"{store}: the stage store cannot be written ({err.strerror or err}); set paths.root")
    users = [s.name for s in stages if s.kind == "generator" and _pretrained_perceptual(s) == "vgg"]
    if users:
        problem = _imagenet_vgg_problem(", ".join(f"gan={n}" for n in users), download)
        if problem:
            problems.append(problem)
    for kind in ("lpips", "dists"):
        users = [s.name for s in stages if s.kind == "generator" and _pretrained_perceptual(s) == kind]
        if users and download:  # the dry run does not download; training fetches them here
            from ranksrgan.metrics.perceptual import WeightsNotFoundError, weights_file

            try:
                weights_file(kind)
            except WeightsNotFoundError as err:
                problems.append(f"{err} (perceptual loss of {', '.join(f'gan={n}' for n in users)})")
    return problems


def _pretrained_perceptual(stage: Stage) -> str | None:
    """The kind of pretrained perceptual loss a generator stage needs ("vgg", "lpips", "dists"), or None."""
    perceptual = stage.section.module.get("perceptual") or {}
    if float(perceptual.get("weight", 0.0) or 0.0) > 0 and bool(perceptual.get("pretrained", True)):
        return str(perceptual.get("kind", "vgg"))
    return None


def _imagenet_vgg_problem(users: str, download: bool) -> str | None:
    import torch
    from torchvision import models

    weights = models.VGG19_Weights.IMAGENET1K_V1
    file = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    if file.is_file():
        return None
    hint = "copy it there from a machine with internet, or set gan.module.perceptual.pretrained=false (random VGG)"
    if not download:
        return f"{file}: VGG19 ImageNet weights for the perceptual loss of {users} are not downloaded yet ({hint})"
    try:
        weights.get_state_dict(progress=False)  # fetches into the torch hub cache
    except Exception as err:  # network errors come in many types
        return f"{file}: VGG19 ImageNet weights for the perceptual loss of {users} could not be downloaded ({type(err).__name__}); {hint}"
    return None


# ===================================================================== deciding and describing


@dataclass
class Decision:
    """What :func:`run_stage` will do with a stage: ``reuse``, ``resume`` or ``train``, and why."""

    action: str
    reason: str


def decide(cfg: DictConfig, stage: Stage, store: StageStore, run_started: float | None = None) -> Decision:
    """Reuse a finished stage, resume an unfinished one, or train it from step 0 (see module docstring)."""
    record = store.finished(stage.kind, stage.name, stage.key)
    artifact = store.artifact(stage.kind, stage.name, stage.key)
    if record is not None and cfg.reuse_stages:
        return Decision("reuse", f"finished: {artifact}")
    if record is not None and run_started is not None and artifact.stat().st_mtime >= run_started:
        return Decision("reuse", "trained earlier in this run")
    if not cfg.reuse_stages:
        return Decision("train", "reuse_stages=false: from step 0 in a fresh work folder")
    last = store.work_dir(stage.name, stage.key) / "checkpoints" / "last.ckpt"
    if last.is_file():
        return Decision("resume", f"unfinished: resumes from {last}")
    others = [r for r in store.records(stage.kind, stage.name) if r.get("key") != stage.key]
    if not others:
        return Decision("train", "no stored stage of this name")
    latest = others[0]
    old = {k: latest.get(k) for k in ("config", "inputs", "deps", "world_size", "version")}
    old["config"] = latest.get("key_config", latest.get("config"))
    return Decision("train", f"differs from {stage.name}-{latest['key']}: {describe_change(old, stage.payload())}")


def describe_plan(cfg: DictConfig, stages: list[Stage]) -> str:
    """One line per stage: order, kind, name, key, steps, action, dependencies, reason."""
    store = StageStore(cfg.paths.store)
    header = f"{'#':>2}  {'kind':<9} {'name':<12} {'key':<12} {'steps':>8}  {'action':<6}  {'depends on':<24} why"
    lines = [f"Plan ({len(stages)} stages, reuse_stages={str(bool(cfg.reuse_stages)).lower()}):", header]
    for i, stage in enumerate(stages, 1):
        decision = decide(cfg, stage, store)
        deps = ", ".join(d.name for d in stage.depends_on) or "-"
        lines.append(
            f"{i:>2}  {stage.kind:<9} {stage.name:<12} {stage.key:<12} {stage.steps:>8}  {decision.action:<6}  {deps:<24} "
            f"{decision.reason}"
        )
    problems = preflight(cfg, [s for s in stages if decide(cfg, s, store).action != "reuse"], download=False)
    if problems:
        lines += ["Before this can run:"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)


# ===================================================================== training


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


#: Trainer arguments the pipeline sets for each stage; the ``trainer`` config cannot set them.
STAGE_TRAINER_KEYS = (
    "max_steps",
    "val_check_interval",
    "check_val_every_n_epoch",
    "logger",
    "default_root_dir",
    "enable_progress_bar",
    "enable_model_summary",
    "num_sanity_val_steps",
)


def make_logger(cfg: DictConfig, stage: Stage, work_dir: Path):
    """The run's logger (``cfg.logger``: a partial Lightning logger) for one stage, or None."""
    from hydra.utils import instantiate

    if cfg.get("logger") is None:
        return None
    if str(cfg.logger.get("_target_", "")).endswith("WandbLogger"):
        os.environ.setdefault("WANDB_SILENT", "true")
    logger = instantiate(cfg.logger)(save_dir=str(work_dir), name=f"{stage.name}-{stage.key}")
    # Lightning passes anonymous=None, which wandb now warns about at every stage.
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


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
    the end (:class:`~ranksrgan.lit.last_checkpoint.LastCheckpoint`), the validation history,
    stage progress and the run's logger."""
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint

    from ranksrgan.lit.history import ValidationHistory
    from ranksrgan.lit.last_checkpoint import LastCheckpoint
    from ranksrgan.lit.progress import StageProgress

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
    progress = StageProgress(
        f"stage {position[0]}/{position[1]} {stage.kind} {stage.name}",
        stage.steps,
        unit="step" if stage.kind == "ranker" else "it",
        steps_per_unit=max(1, max_steps // max(1, stage.steps)),
    )
    callbacks = [checkpoint, LastCheckpoint(work_dir / "checkpoints"), ValidationHistory(work_dir / HISTORY_FILE), progress]
    callbacks += [instantiate(c) for c in extra.values()]
    logger = make_logger(cfg, stage, work_dir)
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


def _finish_logger(trainer: pl.Trainer) -> None:
    if trainer.logger is not None and type(trainer.logger).__name__ == "WandbLogger":
        import wandb

        wandb.finish()


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
    from hydra.utils import instantiate

    store = StageStore(cfg.paths.store)
    artifact = store.artifact(stage.kind, stage.name, stage.key)
    primary = is_primary_process()
    lock = _locked(store.lock_path(stage.name, stage.key)) if primary else nullcontext()
    with lock:
        decision = decide(cfg, stage, store, run_started)
        if decision.action == "reuse":
            log.info("reusing %s %s (%s): %s", stage.kind, stage.name, stage.key, decision.reason)
            return artifact
        work_dir = store.work_dir(stage.name, stage.key)
        if decision.action == "train" and not cfg.reuse_stages and primary:
            moved = store.move_aside(work_dir)
            if moved is not None:
                log.info("reuse_stages=false: moved the old work folder aside to %s", moved)
        work_dir.mkdir(parents=True, exist_ok=True)
        pl.seed_everything(cfg.seed, workers=True)
        section = stage.section
        if stage.kind == "ranker":
            dm_cfg = OmegaConf.to_container(section.datamodule, resolve=True)
            source_dep = next((d for d in stage.depends_on if d.kind == "generator"), None)
            if source_dep is not None:
                dm_cfg["sr"] = str(resolved[source_dep.key])
            datamodule = instantiate(dm_cfg)
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
        trainer = make_trainer(cfg, stage, work_dir, steps, val_every, monitor, mode, position)
        last = work_dir / "checkpoints" / "last.ckpt"
        resume = decision.action == "resume" and last.is_file()
        log.info("training %s %s (%s) in %s: %s", stage.kind, stage.name, stage.key, work_dir, decision.reason)
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
        except BaseException:
            if primary and work_dir.is_dir() and not any(p.is_file() for p in work_dir.rglob("*")):
                shutil.rmtree(work_dir, ignore_errors=True)  # a failed start leaves no empty folder
            raise
        finally:
            _finish_logger(trainer)
        if trainer.global_step < steps:
            # Lightning returns normally from some interruptions (e.g. Ctrl-C in older releases):
            # never publish a network that did not finish.
            raise RuntimeError(
                f"{stage.kind} {stage.name} stopped at step {trainer.global_step} of {steps}; "
                "run the same command again to resume from its last checkpoint"
            )
        if trainer.global_rank == 0:
            callback = trainer.checkpoint_callback
            best = Path(callback.best_model_path or last)
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
            if not any(k.startswith("val/") for k in metrics):  # resumed at its end: nothing ran
                history = load_history(work_dir / HISTORY_FILE)
                metrics.update({k: float(v) for k, v in (history[-1] if history else {}).items() if k.startswith("val/")})
            if callback.best_model_score is not None:
                metrics[f"best/{monitor}"] = float(callback.best_model_score)
            _publish(store, best if best.exists() else last, stage, metrics, resolved)
            # The published network is the stage's result: the training checkpoints (optimiser
            # states, discriminator) go; logs, samples and the validation history stay.
            shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
        trainer.strategy.barrier()
        return artifact


def _publish(store: StageStore, source: Path, stage: Stage, metrics: dict[str, float], resolved: dict[str, Path]) -> Path:
    """Store the stage's network (from the chosen checkpoint) as a slim state dict with its record.

    The record's ``config`` is what the stage ran with: the interpolation Ranker's ``sr`` recipe is
    replaced by the generator file it resolved to, so that its data module can be instantiated
    again (notebooks do); a GAN's Rankers and starting point keep their names (``deps`` maps them
    to keys). ``key_config`` is what the key hashed."""
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
        "source": str(source),
        "metrics": metrics,
        "config": config,
        "key_config": payload["config"],
        "inputs": payload["inputs"],
        "deps": payload["deps"],
        "world_size": payload["world_size"],
        "version": payload["version"],
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

    Returns ``{"stages": {name: artifact}, "final": Stage, "metrics": final stage metrics, "all": stages}``.
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
    log.info("stages: %s", ", ".join(f"{s.kind}:{s.name}" for s in stages))
    resolved: dict[str, Path] = {}
    for i, stage in enumerate(stages, 1):
        resolved[stage.key] = run_stage(
            cfg, stage, resolved, run_started if not cfg.reuse_stages else None, position=(i, len(stages))
        )
    final = _final_stage(cfg, stages)
    record = StageStore(cfg.paths.store).finished(final.kind, final.name, final.key) or {}
    return {
        "stages": {s.name: resolved[s.key] for s in stages},
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


#: Generator iterations below which the summary says that a run only checked the plumbing.
PLUMBING_ITERATIONS = 50
#: Columns of the end-of-run comparison: the Y metrics of the paper, plus two that see colour.
SUMMARY_METRICS = ("niqe", "psnr", "ssim", "psnr_rgb", "chroma")


def summary(cfg: DictConfig, result: dict[str, Any]) -> str:
    """Human-readable end-of-run report: the stages; for GAN runs the comparison of the paper's
    Fig. 22 on the validation folders (bicubic, every generator and HR as rows; NIQE, PSNR, SSIM,
    RGB PSNR, chroma ratio and each Ranker's mean score as columns) and the validation curves of
    every generator stage; for a Ranker run its validation metrics."""
    import torch

    from ranksrgan.evaluation import BenchmarkSet, evaluate, format_comparison
    from ranksrgan.lit.history import format_curves

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
    gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        evaluation = evaluate(
            sets,
            checkpoints=[(s.name, result["stages"][s.name]) for s in generators],
            scale=cfg.data.scale,
            device="cuda" if gpu else "cpu",
            with_pi=None,
            metrics=list(SUMMARY_METRICS),
            rankers=[(s.name, result["stages"][s.name]) for s in stages if s.kind == "ranker"],
            include_hr=True,
            max_images=cfg.data.get("val_max_images"),
        )
    nan_outputs = sum("is NaN" in str(w.message) for w in caught)
    if nan_outputs:
        evaluation.notes.append(f"{nan_outputs} output(s) have an undefined (NaN) metric: constant or near-constant images")
    most = max(s.steps for s in generators)
    if most < PLUMBING_ITERATIONS:
        evaluation.notes.append(
            f"the generators trained at most {most} iterations: this run checks the plumbing, not quality "
            "(`make demo` trains for real)"
        )
    store = StageStore(cfg.paths.store)
    histories = {s.name: load_history(store.work_dir(s.name, s.key) / HISTORY_FILE) for s in generators}
    lines += ["", format_comparison(evaluation), "", "Validation curves (the data of Fig. 22):", format_curves(histories)]
    return "\n".join(lines)


def stored_stages(store: str | os.PathLike, kind: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    """Records of finished stages in ``store`` (newest first), optionally of one kind / name.

    Each record is the stage's JSON (``kind``, ``name``, ``key``, ``metrics``: the last validation
    plus ``best/<monitor>``, the score of the stored checkpoint; ``config``; ``inputs``...) plus
    ``"checkpoint"``: the artifact path. Used by notebooks and scripts to find trained models.
    """
    return StageStore(store).records(kind, name)
