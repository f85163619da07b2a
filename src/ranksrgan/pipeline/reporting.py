"""What a run prints: the plan of a dry run and the end-of-run summary (see :mod:`ranksrgan.pipeline`)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ranksrgan.evaluation.seeds import Method
from ranksrgan.evaluation.table3 import BenchmarkSet
from ranksrgan.lit.history import HISTORY_FILE, load_history
from ranksrgan.pipeline.checks import blocking_problems
from ranksrgan.pipeline.loggers import finish_logger, is_wandb, make_logger
from ranksrgan.pipeline.reuse import decide
from ranksrgan.pipeline.stage import Stage
from ranksrgan.store import StageStore

__all__ = [
    "PLUMBING_ITERATIONS",
    "SUMMARY_METRICS",
    "describe_plan",
    "log_final_report",
    "summary",
    "stored_stages",
    "write_curves_csv",
]


def describe_plan(cfg: DictConfig, stages: list[Stage], with_problems: bool = True) -> str:
    """One line per stage: order, kind, name (``name@seed`` for a stage repeated per seed), key,
    steps, action, dependencies, reason; the seeds and the images of the final table; the total
    steps and the ESTIMATED time of the stages to train (:mod:`ranksrgan.pipeline.estimate`); then,
    with ``with_problems``, what would stop the real run (:func:`~ranksrgan.pipeline.checks.blocking_problems`).
    A stage to train is compared with the most similar stored stage of its name."""
    from ranksrgan.pipeline.estimate import describe_estimate

    store = StageStore(cfg.paths.store)
    header = f"{'#':>2}  {'kind':<9} {'name':<12} {'key':<12} {'steps':>8}  {'action':<6}  {'depends on':<24} why"
    lines = [f"Plan ({len(stages)} stages, reuse_stages={str(bool(cfg.reuse_stages)).lower()}):", header]
    for i, stage in enumerate(stages, 1):
        decision = decide(cfg, stage, store)
        deps = ", ".join(d.label for d in stage.depends_on) or "-"
        lines.append(
            f"{i:>2}  {stage.kind:<9} {stage.label:<12} {stage.key:<12} {stage.steps:>8}  {decision.action:<6}  {deps:<24} "
            f"{decision.reason}"
        )
    if any(s.kind == "generator" for s in stages):
        seeds = list(cfg.get("seeds") or [])
        lines.append(
            f"Seeds of the compared GAN stages: {', '.join(map(str, seeds))} (the stages they depend on use seed={cfg.seed})"
            if seeds
            else f"Seeds: one, seed={cfg.seed} (seeds=[...] repeats the compared GAN stages)"
        )
        lines.append(f"Final table on: {_table_split(cfg)[1]}")
    to_train = [s for s in stages if decide(cfg, s, store).action != "reuse"]
    lines += describe_estimate(cfg, stages, to_train)
    problems = blocking_problems(cfg, stages) if with_problems else []
    if problems:
        lines += ["Before this can run:"] + [f"  - {p}" for p in problems]
    return "\n".join(lines)


#: Generator iterations below which the summary says that a run only checked the plumbing.
PLUMBING_ITERATIONS = 50
#: Columns of the end-of-run comparison: the Y metrics of the paper, two that see colour, and the
#: amplitude of a pattern at the SR scale's period (a generator gaming NIQE or a Ranker draws one).
SUMMARY_METRICS = ("niqe", "psnr", "ssim", "psnr_rgb", "chroma", "grid")


def _table_split(cfg: DictConfig) -> tuple[list[BenchmarkSet], str]:
    """The sets of the final table (the held-out ``data.test_hr``, else the validation folders)
    and a sentence saying which."""
    held_out = bool(cfg.data.get("test_hr"))
    split = "test" if held_out else "val"
    hr = list(cfg.data[f"{split}_hr"])
    lr = list(cfg.data.get(f"{split}_lr") or []) or [None] * len(hr)
    sets = [
        BenchmarkSet(f"{split}{i}" if len(hr) > 1 else split, Path(h), Path(x) if x else None)
        for i, (h, x) in enumerate(zip(hr, lr))
    ]
    where = ", ".join(str(h) for h in hr)
    if held_out:
        return sets, f"the held-out test split data.test_hr ({where}); no stage reads it"
    return sets, (
        f"the validation images data.val_hr ({where}), NOT held out: they drew the validation curves "
        "(and chose checkpoints with select=best); set data.test_hr for an unbiased table"
    )


def _rows(cfg: DictConfig, stages: list[Stage], store: StageStore) -> tuple[list[Method], list[tuple[str, str]], list[str]]:
    """Rows of the final table (Bicubic, the generators planned once, the ``compare`` recipes and
    the command's ``gan`` recipe, each over its seeds, HR), the paired differences (``gan`` minus
    each ``compare`` recipe) and notes."""

    def weights(group: list[Stage]) -> str:
        records = [store.finished(s.kind, s.name, s.key) or {} for s in group]
        chosen = {r.get("selected", "?") for r in records}
        its = list(dict.fromkeys(str(r.get("iteration", "?")) for r in records))
        return f"{'/'.join(sorted(chosen))} (it {', '.join(its)})"

    generators = [s for s in stages if s.kind == "generator"]
    order = [str(n) for n in cfg.get("compare") or []] + ([cfg.gan.name] if cfg.get("gan") is not None else [])
    seeded = sorted((s for s in generators if s.seed is not None), key=lambda s: order.index(s.name) if s.name in order else -1)
    compared: dict[str, list[Stage]] = {}
    for s in seeded:
        compared.setdefault(s.name, []).append(s)
    rows = [Method("Bicubic", ("Bicubic",))]
    notes = []
    for s in generators:
        if s.seed is not None:
            continue
        if s.name in compared:
            notes.append(f"{s.name} with seed {s.cfg.seed} (a dependency of other stages) is not a row; its seed is not in seeds")
            continue
        rows.append(Method(s.label, (s.label,), (int(s.cfg.seed),), weights([s])))
    for name, group in compared.items():
        rows.append(Method(name, tuple(s.label for s in group), tuple(int(s.seed) for s in group), weights(group)))
    rows.append(Method("HR", ("HR",)))
    final = cfg.gan.name if cfg.get("gan") is not None and cfg.gan.name in compared else None
    pairs = [(final, other) for other in compared if final is not None and other != final]
    return rows, pairs, notes


def summary(cfg: DictConfig, result: dict[str, Any], out_dir: str | os.PathLike | None = None) -> str:
    """Human-readable end-of-run report: the stages; for GAN runs the final table (the comparison
    of the paper's Fig. 22) on the held-out test split (``data.test_hr``; else the validation
    images, said so): Bicubic, every generator (each compared recipe as mean ± std over its seeds)
    and HR as rows; NIQE, PSNR, SSIM, RGB PSNR, chroma ratio and each Ranker's mean score as
    columns; the paired differences between recipes; the validation curves of every generator
    stage; the share of outputs whose NIQE beats their HR's (Fig. 9) and the run's departures from
    the paper. For a Ranker run its validation metrics.

    With ``out_dir``, writes ``final_table.md``, ``final_table.csv``, ``final_per_image.csv``,
    ``val_curves.csv`` and the NIQE histograms ``niqe_vs_hr.png`` there and lists their paths. Adds ``result["table"]`` (the table's numbers,
    :func:`ranksrgan.evaluation.table_numbers`, one per set) and ``result["files"]``.
    """
    import torch

    from ranksrgan.evaluation import (
        evaluate,
        format_seed_table,
        niqe_against_hr,
        seed_table,
        table_numbers,
        write_per_image_csv,
        write_seed_table,
    )
    from ranksrgan.lit.history import format_curves
    from ranksrgan.pipeline.departures import departures

    stages: list[Stage] = result["all"]
    lines = ["", "Stages (reused or trained):"]
    lines += [f"  {s.kind:<9} {s.label:<14} {result['stages'][s.label]}" for s in stages]
    generators = [s for s in stages if s.kind == "generator"]
    if not generators:
        metrics = result["metrics"]
        lines.append(
            "Ranker validation: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()) if k.startswith("val/"))
        )
        return "\n".join(lines)
    store = StageStore(cfg.paths.store)
    sets, where = _table_split(cfg)
    rows, pairs, row_notes = _rows(cfg, stages, store)
    runs = [r for row in rows[1:-1] for r in row.runs]
    gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        evaluation = evaluate(
            sets,
            checkpoints=[(label, result["stages"][label]) for label in runs],
            scale=cfg.data.scale,
            device="cuda" if gpu else "cpu",
            with_pi=None,
            metrics=list(SUMMARY_METRICS),
            rankers=[(s.label, result["stages"][s.label]) for s in stages if s.kind == "ranker"],
            include_hr=True,
            max_images=None if cfg.data.get("test_hr") else cfg.data.get("val_max_images"),
        )
    nan_outputs = sum("is NaN" in str(w.message) for w in caught)
    if nan_outputs:
        evaluation.notes.append(f"{nan_outputs} output(s) have an undefined (NaN) metric: constant or near-constant images")
    evaluation.notes += row_notes
    most = max(s.steps for s in generators)
    if most < PLUMBING_ITERATIONS:
        evaluation.notes.append(
            f"the generators trained at most {most} iterations: this run checks the plumbing, not quality "
            "(`make demo` trains for real)"
        )
    margin = float((cfg.get("report") or {}).get("hr_margin", 0.5))
    tables = [seed_table(evaluation, rows, d, pairs, margin) for d in evaluation.datasets]
    texts = [format_seed_table(t, f"Final table on {where}:\n") for t in tables]
    histories = {s.label: load_history(store.work_dir(s.name, s.key) / HISTORY_FILE) for s in generators}
    against_hr = niqe_against_hr(evaluation)
    footer = departures(cfg, stages)
    lines += [""] + texts
    lines += ["NIQE of each output against its own HR image (the paper's Fig. 9):", against_hr.format(), ""]
    if footer:
        lines += ["Departures from the paper in this run:"] + [f"  - {d}" for d in footer] + [""]
    lines += ["Validation curves (the data of Fig. 22):", format_curves(histories)]
    result["table"] = {t.dataset: table_numbers(t) for t in tables}
    result["files"] = {}
    if out_dir is not None:
        out = Path(out_dir)
        for t, text in zip(tables, texts):
            suffix = "" if len(tables) == 1 else f"_{t.dataset}"
            for kind, path in write_seed_table(t, out, text).items():
                target = path.with_name(path.stem + suffix + path.suffix)
                path.replace(target)
                result["files"][f"{kind}{suffix}"] = target
        result["files"]["per_image"] = out / "final_per_image.csv"
        write_per_image_csv(
            result["files"]["per_image"],
            evaluation.records,
            ["dataset", "method", "image"],
            evaluation.metrics,
            ["dataset", "method"],
        )
        result["files"]["curves"] = write_curves_csv(histories, out / "val_curves.csv")
        result["files"]["niqe_vs_hr"] = against_hr.write_png(out / "niqe_vs_hr.png")
        result["better_than_hr"] = dict(against_hr.better)
        lines += ["Written:"] + [f"  {path}" for path in result["files"].values()]
    return "\n".join(lines)


def write_curves_csv(histories: dict[str, list[dict[str, Any]]], path: str | os.PathLike) -> Path:
    """The validation curves as one CSV: ``stage,iteration`` then every ``val/*`` metric any
    stage logged (empty where a stage has none)."""
    from ranksrgan.evaluation import write_csv

    metrics = sorted({k for entries in histories.values() for e in entries for k in e if k.startswith("val/")})
    rows = [[label, e["step"]] + [e.get(m, "") for m in metrics] for label, entries in histories.items() for e in entries]
    write_csv(path, ["stage", "iteration", *metrics], rows)
    return Path(path)


def stored_stages(store: str | os.PathLike, kind: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
    """Records of finished stages in ``store`` (newest first), optionally of one kind / name.

    Each record is the stage's JSON (``kind``, ``name``, ``key``, ``seed``; ``selected``: last or
    best, ``iteration`` and ``metrics``: the validation of the published weights; ``last`` and
    ``best``: both validations; ``config``; ``inputs``...) plus
    ``"checkpoint"``: the artifact path. Used by notebooks and scripts to find trained models.
    """
    return StageStore(store).records(kind, name)


def log_final_report(cfg: DictConfig, result: dict[str, Any], out_dir: str | os.PathLike) -> Path | None:
    """With a W&B logger (``logger=wandb``), one more run named ``final`` in ``out_dir``: the final
    table (``final_table``, or ``final_table_<set>`` per test set: the rows of its CSV), the Fig. 9
    histograms (``fig9/niqe_vs_hr``) and, per method, the share of test images whose NIQE is
    better than their HR's (in [0, 1]; table ``fig9/better_than_hr`` and summary
    ``fig9/better_than_hr/<method>``). Call after :func:`summary` wrote the files. Returns the W&B
    run folder; None with another or no logger."""
    files = result.get("files") or {}
    tables = {key: path for key, path in files.items() if key == "csv" or key.startswith("csv_")}
    if not is_wandb(cfg) or not tables:
        return None
    import csv

    logger = make_logger(cfg, out_dir, "final")
    for key, path in tables.items():  # "csv", or "csv_<set>" when the table covers several sets
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        logger.log_table(key="final_table" + key[3:], columns=rows[0], data=rows[1:])
    if "niqe_vs_hr" in files:
        logger.log_image(key="fig9/niqe_vs_hr", images=[str(files["niqe_vs_hr"])])
    shares = result.get("better_than_hr") or {}
    logger.log_table(key="fig9/better_than_hr", columns=["method", "share"], data=[[m, s] for m, s in shares.items()])
    for method, share in shares.items():
        logger.experiment.summary[f"fig9/better_than_hr/{method}"] = share
    run_dir = Path(logger.experiment.dir).parent
    finish_logger(logger)
    return run_dir
