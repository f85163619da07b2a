"""What a run does with a planned stage: reuse a finished one, resume an unfinished one, or train it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from ranksrgan.pipeline.stage import Stage
from ranksrgan.store import StageStore, count_changes, describe_change

__all__ = ["Decision", "decide", "closest_record"]


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
