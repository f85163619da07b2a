"""The choices of a run that are not the paper's (TPAMI §5.1, §5.2, §4.3), one short line each,
for the footer of the end-of-run table: what the numbers above it were NOT trained with.

Where the paper is silent or the authors' code differs from it, the line says which side the run
follows. Checked per planned stage (Rankers, pre-training, GANs), then for the whole run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from omegaconf import DictConfig

from ranksrgan.pipeline.estimate import stage_kind
from ranksrgan.pipeline.stage import Stage

__all__ = ["PAPER", "departures"]

#: The paper's settings that :func:`departures` compares against.
PAPER = {
    "ranker_steps": 300_000,
    "ranker_lr": 1e-3,
    "ranker_lr_step": 100_000,
    "ranker_margin": 0.5,
    "ranker_variant": "vgg12",
    "ranker_features": 64,
    "patch": 296,
    "gan_steps": 600_000,
    "gan_lr": 1e-4,
    "gan_milestones": [50_000, 100_000, 200_000, 300_000],
    "pretrain_steps": 1_000_000,  # the authors' train_SRResNet.yml (the paper gives no schedule)
    "perceptual_weight": 1.0,
    "gan_weight": 0.005,
    "rank_weight": 0.03,
    "generator": {"num_features": 64, "num_blocks": 16},
    "discriminator_features": 64,
    "batch": 8,
    "blur_levels": [0.1, 2.0, 4.0],
    "noise_levels": [1.0, 15.0, 30.0],
}


def _pct(steps: int, paper: int) -> str:
    share = 100.0 * steps / paper
    return f"{share:.2g} %" if share < 10 else f"{share:.0f} %"


def _schedule(label: str, stages: list[Stage], paper: int, unit: str, source: str = "the paper's") -> list[str]:
    steps = sorted({s.steps for s in stages})
    if not steps or steps == [paper]:
        return []
    shown = "/".join(f"{n:,}" for n in steps)
    what = "shortened" if max(steps) < paper else "changed"
    return [f"{what} schedule: {label} {shown} of {source} {paper:,} {unit} ({_pct(max(steps), paper)})"]


def _ranker_lines(stage: Stage) -> list[str]:
    m, dm, out = stage.section.module, stage.section.datamodule, []
    if m.variant != PAPER["ranker_variant"] or int(m.num_features) != PAPER["ranker_features"]:
        out.append(f"small Rankers ({m.variant}, {m.num_features} features; paper: vgg12, 64)")
    if float(m.margin) != PAPER["ranker_margin"]:
        out.append(f"Ranker margin {float(m.margin):g} (paper: 0.5)")
    if m.get("loss", "margin") != "margin":
        out.append(f"Ranker loss {m.loss} (paper: margin ranking)")
    if not math.isclose(float(m.lr), PAPER["ranker_lr"]):
        out.append(f"Ranker lr {float(m.lr):g} (paper: 1e-3)")
    if int(m.lr_step) * PAPER["ranker_steps"] != PAPER["ranker_lr_step"] * stage.steps:
        out.append(f"Ranker lr halved every {int(m.lr_step):,} of {stage.steps:,} steps (paper: every 100,000 of 300,000)")
    if m.get("pair_forward", "separate") == "joint":
        out.append("Ranker pairs scored in one pass (BatchNorm mixes both images; the authors' code: two passes)")
    if int(dm.get("patch_size", PAPER["patch"])) != PAPER["patch"]:
        out.append(f"Ranker patches {dm.patch_size} px (paper: 296)")
    kind = dm.get("kind")
    if kind == "noise":
        if dm.get("noise_level_is", "std") == "std":
            out.append("noise levels read as standard deviations (paper: 'covariances', i.e. variances)")
        if [float(v) for v in dm.levels] != PAPER["noise_levels"]:
            out.append(f"noise levels {list(dm.levels)} (paper: 1, 15, 30)")
    if kind == "blur" and [float(v) for v in dm.levels] != PAPER["blur_levels"]:
        out.append(f"blur levels {list(dm.levels)} (paper: 0.1, 2, 4)")
    if float(dm.get("min_gap", 0.0) or 0.0) > 0:
        out.append(f"SR rank set min_gap {dm.min_gap} between every two metric values (paper: none)")
    if "train_hr" in dm and float(dm.get("val_fraction", 0.0) or 0.0) == 0.0:
        out.append("rank sets from the data folders split by folder (paper: DF2K, 3,450 images split 90/10 by image)")
    return out


def _generator_lines(stage: Stage, kind: str) -> list[str]:
    m, out = stage.section.module, []
    g = m.generator.get("kwargs") or {}
    if int(g.get("num_features", 64)) != 64 or int(g.get("num_blocks", 16)) != 16:
        out.append(f"small generator ({g.get('num_features', 64)} features, {g.get('num_blocks', 16)} blocks; paper: 64, 16)")
    if g.get("image_skip"):
        out.append(f"generator image skip: {g.image_skip} (the authors' network: none)")
    if kind != "gan":
        return out
    pixel, perceptual, gan = m.get("pixel") or {}, m.get("perceptual") or {}, m.get("gan") or {}
    p_weight = float(perceptual.get("weight", 0.0) or 0.0)
    if p_weight == 0:
        out.append("no perceptual term (paper: VGG19 conv5_4, weight 1)")
    else:
        if p_weight != PAPER["perceptual_weight"] or perceptual.get("layer", "conv5_4") != "conv5_4":
            out.append(f"perceptual term {perceptual.get('layer')} weight {p_weight:g} (paper: conv5_4, 1)")
        if perceptual.get("kind", "vgg") != "vgg":
            out.append(f"perceptual term {perceptual.kind} (paper: VGG19 features)")
        if not perceptual.get("pretrained", True):
            out.append("perceptual VGG19 with random weights (paper: ImageNet)")
        if perceptual.get("criterion", "l1") == "l1":
            out.append("perceptual distance L1 (the authors' code; the paper: L2)")
    if float(pixel.get("weight", 0.0) or 0.0) > 0:
        out.append(f"{str(pixel.get('criterion', 'l1')).upper()} pixel anchor, weight {float(pixel.weight):g} (paper: none)")
    if float(gan.get("weight", 0.0)) != PAPER["gan_weight"]:
        out.append(f"GAN weight {float(gan.weight):g} (paper: 0.005)")
    weights = sorted({float(r.weight) for r in stage.section.get("rankers") or []})
    if weights and weights != [PAPER["rank_weight"]]:
        out.append(f"rank weights {', '.join(f'{w:g}' for w in weights)} (paper: 0.03)")
    rank = m.get("rank") or {}
    if rank.get("reduction", "sum") != "sum":
        out.append(f"rank loss {rank.reduction} over the batch (paper and authors' code: sum)")
    if rank.get("function", "sigmoid") != "sigmoid":
        out.append(f"rank loss through {rank.function} (paper: sigmoid)")
    if rank.get("floor"):
        out.append(f"rank loss floored at the {rank.floor.upper()} patch's score (paper: no floor)")
    if int(rank.get("jitter", 0) or 0) > 0:
        out.append(f"Rankers see each SR patch at a random offset of up to {int(rank.jitter)} px (paper: none)")
    disc = (m.get("discriminator") or {}).get("kwargs") or {}
    if int(disc.get("num_features", 64)) != PAPER["discriminator_features"]:
        out.append(f"discriminator width {disc.num_features} (paper: 64)")
    if float(m.get("ema_decay", 0.0) or 0.0) > 0:
        out.append(f"generator EMA {m.ema_decay} (paper: none)")
    if not math.isclose(float(m.optimizer.lr), PAPER["gan_lr"]):
        out.append(f"GAN lr {float(m.optimizer.lr):g} (paper: 1e-4)")
    milestones = [int(x) for x in m.lr_milestones]
    scaled = [round(x * stage.steps / PAPER["gan_steps"]) for x in PAPER["gan_milestones"]]
    if milestones != PAPER["gan_milestones"] and milestones != scaled:
        out.append(f"GAN lr halved at {milestones} (paper: 50k/100k/200k/300k of 600k)")
    elif milestones == PAPER["gan_milestones"] and stage.steps < PAPER["gan_milestones"][0]:
        out.append(f"GAN lr constant: no milestone within {stage.steps:,} iterations")
    return out


def departures(cfg: DictConfig, stages: Sequence[Stage]) -> list[str]:
    """The non-paper choices in force for the run of ``cfg``, one line each, without repeats.

    ``stages``: the run's planned stages (``Planner(cfg, overrides).plan()``, or ``result["all"]``
    of :func:`ranksrgan.pipeline.run`): each stage's own resolved config is what is checked.
    """
    by_kind: dict[str, list[Stage]] = {"ranker": [], "pre-training": [], "gan": []}
    for stage in stages:
        by_kind[stage_kind(stage)].append(stage)
    lines: list[str] = []
    for stage in by_kind["ranker"]:
        lines += _ranker_lines(stage)
    for kind in ("pre-training", "gan"):
        for stage in by_kind[kind]:
            lines += _generator_lines(stage, kind)
    if by_kind["pre-training"]:
        lines.append(
            "SRResNet pre-training: lr halved at the recipe's milestones, batch of the data option "
            "(the authors' train_SRResNet.yml: cosine restarts every 250k, batch 16 x 128^2)"
        )
    lines += _schedule("Rankers", by_kind["ranker"], PAPER["ranker_steps"], "steps")
    lines += _schedule("SRResNet", by_kind["pre-training"], PAPER["pretrain_steps"], "iterations", "the authors'")
    lines += _schedule("GANs", by_kind["gan"], PAPER["gan_steps"], "iterations")
    data = cfg.data
    if int(data.get("hr_patch_size", PAPER["patch"])) != PAPER["patch"] or int(data.batch_size) != PAPER["batch"]:
        lines.append(f"GAN batch {data.batch_size} x {data.hr_patch_size}^2 (paper: 8 x 296^2)")
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision != "32-true":
        lines.append(f"precision {precision} (paper: fp32)")
    return list(dict.fromkeys(lines))
