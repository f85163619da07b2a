"""Planning a run: the stages, their keys and inputs, what each will do, and the checks before
anything trains (see :mod:`ranksrgan.pipeline`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import ranksrgan
from ranksrgan.checkpoints import is_checkpoint_path
from ranksrgan.fingerprint import path_digest
from ranksrgan.store import StageStore, count_changes, describe_change

__all__ = [
    "NO_EFFECT_KEYS",
    "PATH_KEYS",
    "SOURCE_WORDS",
    "STAGE_TRAINER_KEYS",
    "TRAINER_KEYS_WITHOUT_EFFECT",
    "MIN_FREE_BYTES",
    "DOWNLOADS",
    "PlanError",
    "Stage",
    "Planner",
    "Decision",
    "world_size",
    "is_recipe",
    "stage_inputs",
    "split_input",
    "with_download_hints",
    "check_values",
    "CHECKED_GROUPS",
    "chosen_option",
    "run_origin",
    "unreached_overrides",
    "preflight",
    "blocking_problems",
    "decide",
    "closest_record",
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
        cfg: the resolved stage config (``ranker`` or ``gan`` section, seed, the trainer settings
            that change results[, data]).
        depends_on: stages whose artifacts it reads.
        inputs: ``{path: fingerprint}`` of the files and folders it reads.
        world_size: processes of the run (devices × nodes).
        ignored: dotted config keys left out of the key (no effect on the result).
        origin: the run's ``experiment`` and ``data`` options (:func:`run_origin`); recorded, not in the key.
        seed: the seed of a compared GAN stage repeated once per entry of the top-level ``seeds``
            (it is ``cfg.seed``, hence in the key); None for a stage planned once.
    """

    kind: str
    name: str
    cfg: DictConfig
    depends_on: list[Stage] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    ignored: tuple[str, ...] = ()
    origin: dict[str, str | None] = field(default_factory=dict)
    seed: int | None = None

    @property
    def label(self) -> str:
        """``name``, or ``name@seed`` for a stage repeated per seed (unique within a plan)."""
        return self.name if self.seed is None else f"{self.name}@{self.seed}"

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


#: Public data sets that configs name by folder (``conf/data``), and what to download for each.
DOWNLOADS = {
    "DIV2K_train_HR": "DIV2K_train_HR.zip (800 PNGs) from data.vision.ee.ethz.ch/cvl/DIV2K and unpack it there",
    "DIV2K_valid_HR": "DIV2K_valid_HR.zip (100 PNGs) from data.vision.ee.ethz.ch/cvl/DIV2K and unpack it there",
    "Flickr2K_HR": "Flickr2K.tar (2,650 PNGs, NTIRE 2017, github.com/LimBee/NTIRE2017) and unpack its Flickr2K_HR there",
}


def with_download_hints(problems: list[str]) -> list[str]:
    """``problems`` with ONE line per missing public data set folder (:data:`DOWNLOADS`) saying
    what to download, instead of one line per stage that reads it."""
    out: list[str] = []
    hinted: set[str] = set()
    for line in problems:
        path = line.split(": ", 1)[0]
        name = Path(path).name
        if name in DOWNLOADS and line.endswith("does not exist"):
            if path not in hinted:
                hinted.add(path)
                out.append(f"{path}: {name} not found; download {DOWNLOADS[name]}")
            continue
        out.append(line)
    return out


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
        if section.get("select", "last") not in ("last", "best"):
            problems.append(f"{where}: select must be last or best, got {section.get('select')!r}")
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


def chosen_option(overrides: list[str], group: str) -> str | None:
    """The option the command line chose for a config group (``experiment=demo`` -> "demo"), or None."""
    for override in reversed(overrides):
        key, sep, value = override.partition("=")
        if sep and key.lstrip("+") == group:
            return None if value in ("null", "") else value
    return None


def run_origin(overrides: list[str]) -> dict[str, str | None]:
    """``{"experiment": ..., "data": ...}``: the options the run was composed with (Hydra's choices
    under ``train.py``; else the command's own ``experiment=`` / ``data=`` overrides)."""
    from hydra.core.hydra_config import HydraConfig

    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    return {group: choices.get(group, chosen_option(overrides, group)) for group in ("experiment", "data")}


#: Config groups whose command-line values must reach the stages they address (:func:`unreached_overrides`).
CHECKED_GROUPS = ("gan", "ranker", "data")


def unreached_overrides(
    cfg: DictConfig, overrides: list[str], stages: list[Stage], composed: dict[tuple[str, str], DictConfig]
) -> list[str]:
    """Command-line values of ``gan.*``, ``ranker.*`` and ``data.*`` that a stage they address does
    not hold in the end, one line each: it names the ``stages`` entry that replaced the value and
    the override that reaches the stage.

    ``gan.*`` addresses the recipe the command selected (``gan.module.generator...``: every
    generator stage), ``ranker.*`` the selected Ranker, ``data.*`` every generator stage and the
    Ranker settings that interpolate it (``train_hr: ${data.train_hr}``). ``composed`` maps
    ``(group, name)`` to the stage's config before its ``stages`` settings (:attr:`Planner.composed`).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    settings = OmegaConf.to_container(cfg.get("stages") or OmegaConf.create({}), resolve=False)
    problems: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        group, dot, rel = key.partition(".")
        if not dot or group not in CHECKED_GROUPS or override.is_delete() or override.is_sweep_override():
            continue
        text = override.input_line.split("=", 1)[1] if override.input_line else override.get_value_element_as_str()
        wanted = _value(cfg, key)
        for stage in stages:
            if group in ("gan", "ranker"):
                selected = cfg.get(group) is not None and cfg[group].name == stage.name
                if (stage.kind == "ranker") != (group == "ranker"):
                    continue
                if not selected and not (group == "gan" and rel.startswith("module.generator")):
                    continue
                if _value(stage.cfg, key) != wanted:
                    problems.append(_unreached(settings, overrides, stage, key, text, rel, rel))
            elif stage.kind == "generator":
                if _value(stage.cfg, key) != wanted:
                    problems.append(f"{key}={text} does not reach gan={stage.name}: its config holds {_value(stage.cfg, key)!r}")
            else:
                raw = composed.get(("ranker", stage.name))
                for path, source in _data_interpolations(raw.ranker if raw is not None else None, raw):
                    if key == source or key.startswith(source + "."):
                        inner = path + key[len(source) :]
                        if _value(raw, f"ranker.{inner}") != _value(stage.cfg, f"ranker.{inner}"):
                            problems.append(_unreached(settings, overrides, stage, key, text, path, inner))
    return [p for p in dict.fromkeys(problems) if p]


_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _data_interpolations(section: DictConfig | None, root: DictConfig | None = None) -> list[tuple[str, str]]:
    """``(path in the section, "data.<key>")`` of every value that is exactly ``${data.<key>}``, or
    an interpolation of ``root`` that leads to one (``${rank_data.train_hr}`` -> ``${data.train_hr}``)."""
    if section is None:
        return []
    from ranksrgan.store import flatten

    raw_root = flatten(OmegaConf.to_container(root, resolve=False)) if root is not None else {}

    def source(value: Any) -> str | None:
        seen = set()
        while isinstance(value, str) and value.startswith("${") and value.endswith("}") and value.count("${") == 1:
            key = value[2:-1]
            if key.startswith("data."):
                return key
            if key in seen:
                return None
            seen.add(key)
            value = raw_root.get(key)
        return None

    found = []
    for path, value in flatten(OmegaConf.to_container(section, resolve=False)).items():
        origin = source(value)
        if origin is not None:
            found.append((path, origin))
    return found


def _unreached(settings: dict, overrides: list[str], stage: Stage, key: str, text: str, path: str, inner: str) -> str | None:
    """The line for ``key=text``, which ``stage`` does not hold. ``path``: the setting of the stage's
    section the value reaches it through; ``inner``: the setting the value is for (below ``path``).
    None for a ``data.*`` value that a Ranker's own setting on the same command line replaces
    (``+stages.rankers.datamodule.train_hr=...``: asked for)."""
    section = "ranker" if stage.kind == "ranker" else "gan"
    where = f"{section}={stage.name}"
    found = _replacing_entry(
        settings, ("all", "rankers" if stage.kind == "ranker" else "generators", stage.name), path.split(".")
    )
    if found is None:
        return f"{key}={text} does not reach {where}: its config holds {_value(stage.cfg, f'{section}.{inner}')!r}"
    label, entry = found
    entry_key = ".".join(["stages", label, *entry])
    from_command = any(o.lstrip("+~").startswith(f"stages.{label}.") for o in overrides)
    experiment = chosen_option(overrides, "experiment")
    origin = "the command line" if from_command else f"experiment={experiment}" if experiment else "the config"
    if from_command and not key.startswith(f"{section}."):
        return None
    # stages.<name> reaches this stage only; a value inside a list goes where that list is set.
    plain = len(entry) == len(path.split(".")) and inner == path
    target = stage.name if label == stage.name or plain else label
    head = f"{key}={text}" if key == f"{section}.{inner}" else f"{key}={text} does not reach {where}: {section}.{inner}"
    return f"{head} is replaced by {entry_key} from {origin}; set ++stages.{target}.{inner}={text} instead"


def _replacing_entry(settings: dict, labels: tuple[str, ...], parts: list[str]) -> tuple[str, list[str]] | None:
    """The most specific ``stages`` layer that sets ``parts`` (or a list or value above it), as
    ``(label, path of that entry)``; None if no layer does."""
    for label in reversed(labels):
        node = settings.get(label)
        if not isinstance(node, dict):
            continue
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                return label, parts[:i]
            if part not in node:
                break
            node = node[part]
        else:
            return label, parts
    return None


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

    problems: list[str] = []
    for split in ("test_hr", "test_lr"):
        for folder in cfg.data.get(split) or []:
            if not Path(folder).is_dir():
                problems.append(f"{folder}: data.{split} (the final table's test split) is not a folder")
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
    payload = stage.payload()
    closest = closest_record(others, payload)
    return Decision("train", f"differs from {stage.name}-{closest['key']}: {describe_change(_key_payload(closest), payload)}")


def _key_payload(record: dict[str, Any]) -> dict[str, Any]:
    """The key payload a stored record was keyed by (``key_config``; ``config`` in older records)."""
    old = {k: record.get(k) for k in ("config", "inputs", "deps", "world_size", "version")}
    old["config"] = record.get("key_config", record.get("config"))
    return old


def closest_record(records: list[dict[str, Any]], payload: dict[str, Any]) -> dict[str, Any]:
    """The stored record whose key payload differs from ``payload`` in the fewest entries (config
    keys, inputs, dependencies, world size, version); the newest of equals (``records`` newest first)."""
    return min(records, key=lambda r: count_changes(_key_payload(r), payload))


def blocking_problems(cfg: DictConfig, stages: list[Stage], download: bool = False) -> list[str]:
    """:func:`preflight` of the stages that will not be reused: what would stop the real run."""
    store = StageStore(cfg.paths.store)
    return preflight(cfg, [s for s in stages if decide(cfg, s, store).action != "reuse"], download=download)
