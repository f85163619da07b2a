"""Checks before anything trains: config values that cannot train, and pre-flight (the store can
be written, pretrained loss weights are there, the test split exists). One line per problem."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from ranksrgan.pipeline.reuse import decide
from ranksrgan.pipeline.stage import Stage
from ranksrgan.store import StageStore

__all__ = ["DOWNLOADS", "MIN_FREE_BYTES", "with_download_hints", "check_values", "preflight", "blocking_problems"]


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


def blocking_problems(cfg: DictConfig, stages: list[Stage], download: bool = False) -> list[str]:
    """:func:`preflight` of the stages that will not be reused: what would stop the real run."""
    store = StageStore(cfg.paths.store)
    return preflight(cfg, [s for s in stages if decide(cfg, s, store).action != "reuse"], download=download)
