"""The stage store: finished Rankers and generators, their records, and the work folders of stages
in progress.

Layout under the store root::

    rankers/<name>-<key>.pth        the network (slim state dict, :func:`ranksrgan.export.save_state_dict`)
    rankers/<name>-<key>.json       its record: kind, name, key, config, inputs, metrics, ...
    generators/<name>-<key>.pth|json
    training/<name>-<key>/          Lightning logs and checkpoints (``checkpoints/last.ckpt``)
    training/<name>-<key>.old-<time>/   a work folder moved aside by ``reuse_stages=false``
    locks/<name>-<key>.lock

A stage is *finished* when its record exists and names the SHA-256 of the ``.pth`` beside it.
The ``.pth`` is written first and the record last, each atomically, so a process killed while
publishing leaves either the previous state or an unfinished stage that the next run completes
from its work folder, never a record that points to a half-written or older network.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ranksrgan.fingerprint import file_digest
from ranksrgan.io import atomic_write_bytes

__all__ = ["KINDS", "StageStore", "flatten", "count_changes", "describe_change"]

#: Stage kinds and their folders.
KINDS = {"ranker": "rankers", "generator": "generators"}


class StageStore:
    """Paths and records of one store folder (``paths.store`` of the config)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ----------------------------------------------------------------- layout
    def artifact(self, kind: str, name: str, key: str) -> Path:
        return self.root / KINDS[kind] / f"{name}-{key}.pth"

    def record_path(self, kind: str, name: str, key: str) -> Path:
        return self.artifact(kind, name, key).with_suffix(".json")

    def work_dir(self, name: str, key: str) -> Path:
        return self.root / "training" / f"{name}-{key}"

    def lock_path(self, name: str, key: str) -> Path:
        return self.root / "locks" / f"{name}-{key}.lock"

    # ----------------------------------------------------------------- records
    def finished(self, kind: str, name: str, key: str) -> dict[str, Any] | None:
        """The record of a finished stage, or None (missing, unreadable, or not matching its network)."""
        record = _read_record(self.record_path(kind, name, key))
        artifact = self.artifact(kind, name, key)
        if record is None or not artifact.is_file() or record.get("artifact_sha256") != file_digest(artifact):
            return None
        return record

    def publish(self, net: Any, record: dict[str, Any]) -> Path:
        """Write ``net`` and then its record (with the network's digest); returns the ``.pth``."""
        from ranksrgan.export import save_state_dict

        kind, name, key = record["kind"], record["name"], record["key"]
        artifact = save_state_dict(net, self.artifact(kind, name, key))
        record = {**record, "artifact_sha256": file_digest(artifact), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        atomic_write_bytes(self.record_path(kind, name, key), json.dumps(record, indent=2, default=str).encode())
        return artifact

    def records(self, kind: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Readable records (newest first), each with ``checkpoint`` (the ``.pth``) and ``mtime`` added."""
        out = []
        for kind_name, folder in KINDS.items():
            if kind is not None and kind != kind_name:
                continue
            for meta in (self.root / folder).glob("*.json"):
                record = _read_record(meta)
                if record is None or (name is not None and record.get("name") != name):
                    continue
                record["checkpoint"] = str(meta.with_suffix(".pth"))
                record["mtime"] = meta.stat().st_mtime
                out.append(record)
        return sorted(out, key=lambda r: r["mtime"], reverse=True)

    def find(self, key: str) -> dict[str, Any]:
        """The one record whose key starts with ``key`` (also ``name-key``); ValueError otherwise."""
        wanted = key.rsplit("-", 1)[-1]
        matches = [r for r in self.records() if str(r.get("key", "")).startswith(wanted)]
        if not matches:
            raise ValueError(f"{self.root}: no stored stage with key {key!r} (see `ranksrgan-store list`)")
        if len(matches) > 1:
            names = ", ".join(f"{r['name']}-{r['key']}" for r in matches)
            raise ValueError(f"{self.root}: key {key!r} is ambiguous: {names}; give more characters")
        return matches[0]

    def remove(self, record: dict[str, Any]) -> list[Path]:
        """Delete a stage's network, record and work folder; returns what was removed."""
        kind, name, key = record["kind"], record["name"], record["key"]
        removed = []
        # The record goes first: a stage without a record is unfinished, never half-removed.
        for path in (self.record_path(kind, name, key), self.artifact(kind, name, key)):
            if path.exists():
                path.unlink()
                removed.append(path)
        work = self.work_dir(name, key)
        if work.is_dir():
            shutil.rmtree(work)
            removed.append(work)
        return removed

    def move_aside(self, work_dir: Path) -> Path | None:
        """Rename ``work_dir`` to ``<work_dir>.old-<time>`` (for ``reuse_stages=false``); returns it."""
        if not work_dir.exists():
            return None
        target = work_dir.with_name(f"{work_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while target.exists():
            target = work_dir.with_name(f"{work_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            n += 1
        work_dir.rename(target)
        return target

    def unfinished(self) -> list[Path]:
        """The ``last.ckpt`` of every work folder whose stage has not finished (a stopped or killed
        stage: the same training command resumes it), oldest folder name first."""
        training = self.root / "training"
        if not training.is_dir():
            return []
        finished_dirs = {f"{r['name']}-{r['key']}" for r in self.records() if self.finished(r["kind"], r["name"], r["key"])}
        return [
            work / "checkpoints" / "last.ckpt"
            for work in sorted(p for p in training.iterdir() if p.is_dir() and ".old-" not in p.name)
            if work.name not in finished_dirs and (work / "checkpoints" / "last.ckpt").is_file()
        ]

    def prunable(self, finished: bool = False, older_than_days: float = 7.0) -> list[tuple[Path, str]]:
        """Work folders that can go, with the reason:

        * moved aside by ``reuse_stages=false`` (``*.old-*``): always;
        * abandoned: no finished stage of that name and key, untouched for ``older_than_days``;
        * with ``finished=True``: the work folders (logs, training checkpoints) of finished stages;
          the published network and record stay.
        """
        training = self.root / "training"
        if not training.is_dir():
            return []
        finished_dirs = {f"{r['name']}-{r['key']}" for r in self.records() if self.finished(r["kind"], r["name"], r["key"])}
        now = time.time()
        out = []
        for work in sorted(p for p in training.iterdir() if p.is_dir()):
            if ".old-" in work.name:
                out.append((work, "moved aside by reuse_stages=false"))
            elif work.name in finished_dirs:
                if finished:
                    out.append((work, "stage finished; its network and record stay"))
            elif now - _latest_mtime(work) > older_than_days * 86400:
                out.append((work, f"no finished stage, untouched for over {older_than_days:g} days"))
        return out


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _latest_mtime(folder: Path) -> float:
    latest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        try:
            latest = max(latest, path.stat().st_mtime)
        except OSError:
            pass
    return latest


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists -> ``{"a.b.0.c": value}``."""
    if isinstance(node, dict):
        items: Iterable[tuple[Any, Any]] = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    if not out and prefix:
        out[prefix] = node
    return out


def count_changes(old: dict[str, Any], new: dict[str, Any]) -> int:
    """How many entries differ between two key payloads: config keys (flattened), input paths,
    dependencies, and the world size and version (one each)."""
    count = sum(old.get(f) != new.get(f) for f in ("world_size", "version"))
    for field in ("inputs", "deps"):
        a, b = old.get(field) or {}, new.get(field) or {}
        count += sum(a.get(k) != b.get(k) for k in set(a) | set(b))
    a, b = flatten(old.get("config") or {}), flatten(new.get("config") or {})
    return count + sum(a.get(k, _UNSET) != b.get(k, _UNSET) for k in set(a) | set(b))


_UNSET = object()


def describe_change(old: dict[str, Any], new: dict[str, Any], limit: int = 4) -> str:
    """What differs between two key payloads (``config``, ``inputs``, ``deps``, ``world_size``,
    ``version``) in one line, e.g. ``"input changed: data/demo/train/HR; config: ranker.max_steps 1000 -> 6"``."""
    parts: list[str] = []
    old_inputs, new_inputs = old.get("inputs") or {}, new.get("inputs") or {}
    changed = [p for p in new_inputs if p in old_inputs and old_inputs[p] != new_inputs[p]]
    if changed:
        parts.append("input changed: " + ", ".join(changed))
    added = [p for p in new_inputs if p not in old_inputs]
    if added:
        parts.append("new input: " + ", ".join(added))
    old_deps, new_deps = old.get("deps") or {}, new.get("deps") or {}
    dep_changes = [n for n in new_deps if old_deps.get(n) != new_deps[n]]
    if dep_changes:
        parts.append("retrained dependency: " + ", ".join(dep_changes))
    for field in ("world_size", "version"):
        if old.get(field) != new.get(field):
            parts.append(f"{field} {old.get(field)} -> {new.get(field)}")
    a, b = flatten(old.get("config") or {}), flatten(new.get("config") or {})
    diffs = [f"{k} {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diffs:
        more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
        parts.append("config: " + "; ".join(diffs[:limit]) + more)
    return "; ".join(parts) if parts else "same key payload (stored under another key by an older version)"
