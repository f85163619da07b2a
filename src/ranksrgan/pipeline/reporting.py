"""What a run prints: the plan of a dry run and the end-of-run summary (see :mod:`ranksrgan.pipeline`)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ranksrgan.lit.history import HISTORY_FILE, load_history
from ranksrgan.pipeline.planning import Stage, blocking_problems, decide
from ranksrgan.store import StageStore

__all__ = ["PLUMBING_ITERATIONS", "SUMMARY_METRICS", "describe_plan", "summary", "stored_stages"]


def describe_plan(cfg: DictConfig, stages: list[Stage], with_problems: bool = True) -> str:
    """One line per stage: order, kind, name, key, steps, action, dependencies, reason; the total
    steps and the ESTIMATED time of the stages to train (:mod:`ranksrgan.pipeline.estimate`); then,
    with ``with_problems``, what would stop the real run (:func:`~ranksrgan.pipeline.planning.blocking_problems`).
    A stage to train is compared with the most similar stored stage of its name."""
    from ranksrgan.pipeline.estimate import describe_estimate

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
    to_train = [s for s in stages if decide(cfg, s, store).action != "reuse"]
    lines += describe_estimate(cfg, stages, to_train)
    problems = blocking_problems(cfg, stages) if with_problems else []
    if problems:
        lines += ["Before this can run:"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)


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
