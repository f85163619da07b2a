"""Planning a run: the stages, their keys and inputs (see :mod:`ranksrgan.pipeline`). The checks
before anything trains are in :mod:`~ranksrgan.pipeline.checks` and
:mod:`~ranksrgan.pipeline.overrides`; reuse, resume or train in :mod:`~ranksrgan.pipeline.reuse`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ranksrgan.checkpoints import is_checkpoint_path
from ranksrgan.fingerprint import path_digest
from ranksrgan.pipeline.checks import check_values, with_download_hints
from ranksrgan.pipeline.overrides import run_origin, unreached_overrides
from ranksrgan.pipeline.stage import PlanError, Stage

__all__ = [
    "NO_EFFECT_KEYS",
    "PATH_KEYS",
    "SOURCE_WORDS",
    "STAGE_TRAINER_KEYS",
    "TRAINER_KEYS_WITHOUT_EFFECT",
    "Planner",
    "world_size",
    "is_recipe",
    "stage_inputs",
    "split_input",
]


#: Config keys (dotted, inside the stage config) that never change a stage's result.
NO_EFFECT_KEYS = (
    "ranker.datamodule.label_batch_size",
    "gan.module.num_logged_images",
    "gan.module.nan_check_interval",
    "gan.module.grad_norm_interval",
    # the held-out test split: read by the final table only, never by a stage
    "data.test_hr",
    "data.test_lr",
)

#: Config keys whose string values name files or folders a stage reads.
PATH_KEYS = ("train_hr", "val_hr", "train_lr", "val_lr", "hr", "sr", "labels", "checkpoint", "pretrained")
#: Values of ``sr`` / ``hr`` entries that name no file.
SOURCE_WORDS = ("bicubic", "hr")


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
        #: ``(group, name) -> composed config`` of every variant, before the ``stages`` settings
        self.composed: dict[tuple[str, str], DictConfig] = {}
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
        self.composed[(group, name)] = cfg
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
        self.problems += unreached_overrides(self.cfg, self.overrides, stages, self.composed)
        origin = run_origin(self.overrides)
        for stage in stages:
            self.problems += check_values(stage)
            stage.origin = origin
        if self.problems:
            raise PlanError(with_download_hints(list(dict.fromkeys(self.problems))))
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
        seeds = self._seeds()
        names = ([cfg.gan.name] if cfg.get("gan") is not None else []) + [str(n) for n in compare]
        for name in dict.fromkeys(names):
            if not seeds:
                self.generator_stage(self.variant("gan", name), stages)
            for seed in seeds:
                self.seeded_stage(name, seed, stages)
        return stages

    def _seeds(self) -> list[int]:
        """The top-level ``seeds`` (empty: the compared stages run once, with ``seed``)."""
        seeds = list(self.cfg.get("seeds") or [])
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
            raise PlanError([f"seeds must be distinct integers, got {seeds}"])
        return seeds

    def seeded_stage(self, name: str, seed: int, stages: list[Stage]) -> Stage:
        """The compared recipe ``name`` trained with ``seed``; the stages it depends on (Rankers,
        its starting point, the SRGAN of Ranker-i) keep the run's ``seed`` and are shared."""
        cfg = self.variant("gan", name).copy()
        cfg.seed = seed
        stage = self.generator_stage(cfg, stages)
        # a shared stage of the same key (e.g. Ranker-i's SRGAN when seed is the run's seed) is this run too
        stage.seed = seed
        return stage

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
        inputs = stage_inputs(cfg.ranker, f"ranker={cfg.ranker.name}", self.problems, "ranker")
        stage = Stage(
            "ranker", cfg.ranker.name, stage_cfg, deps, {**inputs, **split_input(datamodule)}, self.world_size, tuple(ignored)
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
    from ranksrgan.data.rank.sr_labelling import LABEL_SETTINGS, check_label_settings

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


def split_input(datamodule: DictConfig) -> dict[str, str]:
    """The image split of a rank data module that splits its HR pool by image (``val_fraction`` >
    0): ``{"split of <folders>": "val <n>/<N> sha256:<hex>"}`` (the validation names' digest), a
    pseudo input of the stage's key and record. Empty without such a split or when a folder is
    missing (that is reported as a missing input)."""
    fraction = float(datamodule.get("val_fraction") or 0.0)
    if fraction <= 0 or "train_hr" not in datamodule:  # the SR family splits its label file instead
        return {}
    from ranksrgan.data.rank import image_names, split_by_image

    folders = [str(f) for f in datamodule.train_hr]
    try:
        names = list(image_names(folders))
    except (OSError, ValueError):
        return {}
    _, val = split_by_image(names, fraction, int(datamodule.get("split_seed") or 0))
    digest = hashlib.sha256("\n".join(sorted(val)).encode()).hexdigest()
    return {f"split of {', '.join(folders)}": f"val {len(val)}/{len(names)} sha256:{digest}"}


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
