"""The dry run's totals and ESTIMATED time on one GPU, from the seconds per unit that the
``estimate`` config ASSUMES (see ``conf/config.yaml``; nothing here measures anything).

Per stage that will train (stages to reuse cost nothing):

* a Ranker: ``max_steps · ranker_step + validations · ranker_validation``;
* a generator without discriminator (pre-training): ``max_steps · pretrain_iteration``;
* a GAN: ``max_steps · (gan_iteration + Rankers · rank_term)``;
* a generator validation: ``images · generator_val_image`` (``data.val_max_images``, else the
  images found in ``data.val_hr``),

where ``validations = max_steps // val_check_interval``. Start-up (decoding the data, running the
interp Ranker's SR source) and the final table are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omegaconf import DictConfig

from ranksrgan.pipeline.stage import Stage

__all__ = ["RATES", "StageEstimate", "stage_kind", "estimate_stages", "describe_estimate"]

#: keys of the ``estimate`` config (seconds)
RATES = ("ranker_step", "pretrain_iteration", "gan_iteration", "rank_term", "ranker_validation", "generator_val_image")


@dataclass
class StageEstimate:
    """Seconds one stage is estimated to take: training steps and validation."""

    stage: Stage
    kind: str  # "ranker" | "pre-training" | "gan"
    train_s: float
    val_s: float


def stage_kind(stage: Stage) -> str:
    """``"ranker"``, ``"gan"`` (a discriminator: its GAN weight is > 0) or ``"pre-training"``."""
    if stage.kind == "ranker":
        return "ranker"
    gan = stage.section.module.get("gan") or {}
    return "gan" if float(gan.get("weight", 0.0) or 0.0) > 0 else "pre-training"


def _val_images(cfg: DictConfig) -> int:
    if cfg.data.get("val_max_images"):
        return int(cfg.data.val_max_images)
    from ranksrgan.io import list_images

    count = 0
    for folder in cfg.data.get("val_hr") or []:
        try:
            count += len(list_images(folder))
        except FileNotFoundError:
            continue
    return count


def estimate_stages(cfg: DictConfig, stages: Sequence[Stage]) -> list[StageEstimate]:
    """One :class:`StageEstimate` per stage in ``stages`` (pass the ones that will train)."""
    rates = {k: float(cfg.estimate[k]) for k in RATES}
    per_val_image = rates["generator_val_image"] * _val_images(cfg)
    out = []
    for stage in stages:
        kind = stage_kind(stage)
        validations = stage.steps // max(1, int(stage.section.val_check_interval))
        if kind == "ranker":
            train, val = stage.steps * rates["ranker_step"], validations * rates["ranker_validation"]
        else:
            per_it = rates["pretrain_iteration"]
            if kind == "gan":
                per_it = rates["gan_iteration"] + len(stage.section.get("rankers") or []) * rates["rank_term"]
            train, val = stage.steps * per_it, validations * per_val_image
        out.append(StageEstimate(stage, kind, train, val))
    return out


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def describe_estimate(cfg: DictConfig, stages: Sequence[Stage], to_train: Sequence[Stage]) -> list[str]:
    """The dry run's footer: total steps per kind of all ``stages``, and the ESTIMATED time of
    ``to_train`` (the stages that will train), with the rates it assumes."""
    labels = {"ranker": "Rankers", "pre-training": "pre-training", "gan": "GANs"}
    all_est = estimate_stages(cfg, stages)
    totals = []
    for kind, label in labels.items():
        group = [e for e in all_est if e.kind == kind]
        if group:
            unit = "steps" if kind == "ranker" else "iterations"
            totals.append(f"{label} ({len(group)}) {sum(e.stage.steps for e in group):,} {unit}")
    lines = ["Total: " + "; ".join(totals)]
    est = estimate_stages(cfg, to_train)
    if not est:
        lines.append("ESTIMATED time on one GPU: 0 (every stage is reused)")
        return lines
    parts = [
        f"{label} {_hours(sum(e.train_s for e in est if e.kind == kind))}"
        for kind, label in labels.items()
        if any(e.kind == kind for e in est)
    ]
    val = sum(e.val_s for e in est)
    total = sum(e.train_s for e in est) + val
    r = cfg.estimate
    lines += [
        f"ESTIMATED time on one GPU: {_hours(total)} ({', '.join(parts)}, validation {_hours(val)}; "
        f"{len(est)} of {len(stages)} stages train, start-up not counted)",
        f"  an estimate, not a measurement: it assumes (conf `estimate`) a Ranker step {r.ranker_step * 1000:g} ms, "
        f"a pre-training iteration {r.pretrain_iteration * 1000:g} ms, a GAN iteration {r.gan_iteration * 1000:g} ms "
        f"+ {r.rank_term * 1000:g} ms per Ranker of its loss, {r.ranker_validation:g} s per Ranker validation, "
        f"{r.generator_val_image:g} s per generator validation image, on one H200-class GPU at 32-true",
    ]
    images = _val_images(cfg)
    lines.append(
        f"  generator validations count {images} image(s) each"
        if images
        else "  no validation image found in data.val_hr: generator validations are not counted"
    )
    if str(cfg.trainer.get("accelerator")) == "cpu":
        lines.append("  this run trains on the CPU: the one-GPU estimate does not apply")
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision != "32-true":
        lines.append(f"  this run uses precision {precision}: faster than the assumed 32-true rates (not modelled)")
    return lines
