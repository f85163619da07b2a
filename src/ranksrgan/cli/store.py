"""``ranksrgan-store``: look after the stage store (finished Rankers and generators).

    ranksrgan-store list [--kind ranker|generator] [--name NAME]
    ranksrgan-store show KEY [--diff OTHER_KEY]
    ranksrgan-store remove KEY [KEY ...]
    ranksrgan-store prune [--finished] [--older-than DAYS] [--dry-run]

KEY is a stage key or a unique prefix of one (``name-key`` is accepted too). The store is
``--store``, else ``$RANKSRGAN_ROOT/store``, else ``ranksrgan_runs/store`` (the default
``paths.store`` of the training config).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ranksrgan.cli.common import CLIError, CLIParser, run_cli

__all__ = ["main", "build_parser"]

if TYPE_CHECKING:
    from ranksrgan.store import StageStore

PROG = "ranksrgan-store"


def default_store() -> Path:
    return Path(os.environ.get("RANKSRGAN_ROOT", "ranksrgan_runs")) / "store"


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


#: Footnotes of ``list`` for values that are not numbers: marker -> text ({metric} filled in).
NOTES = {
    "[1]": "no validation logged {metric} for this stage",
    "[2]": "the last validation's {metric} is NaN: undefined for constant or near-constant outputs, or a diverged network",
    "[3]": "no validation gave a finite {metric}, so none was best",
}


def _metric(record: dict, which: str) -> tuple[str, str | None]:
    """The monitored metric at the ``which`` ("last" / "best") validation, ``*`` on the published
    weights: ``("niqe=6.42*", None)``, or a placeholder and the footnote marker (:data:`NOTES`)."""
    monitor = (record.get("config") or {}).get("ranker" if record["kind"] == "ranker" else "gan", {}).get("monitor")
    values = record.get(which)
    if values is None:  # a record from before `last` / `best` were kept
        metrics = record.get("metrics") or {}
        values = metrics if which == "last" else {monitor: metrics[f"best/{monitor}"]} if f"best/{monitor}" in metrics else {}
    if not monitor or monitor not in values:
        return "-", "[1]"
    name, value = monitor.split("/")[-1], float(values[monitor])
    mark = "*" if record.get("selected") == which else ""
    if math.isnan(value):
        return f"{name}=undefined{mark}", "[2]"
    if math.isinf(value):
        return "-", "[3]"
    return f"{name}={value:.4g}{mark}", None


def _data(record: dict) -> str:
    """The data option the stage was trained on (``demo``, ``div2k``), else its training HR folder."""
    option = (record.get("origin") or {}).get("data")
    if option and option != "folders":
        return str(option)
    config = record.get("config") or {}
    node = config.get("data") if record["kind"] == "generator" else (config.get("ranker") or {}).get("datamodule")
    node = node or {}
    folders = node.get("train_hr") or node.get("hr") or node.get("labels") or []
    folders = [folders] if isinstance(folders, str) else list(folders)
    if not folders:
        return "-"
    return str(folders[0]) + (f" (+{len(folders) - 1})" if len(folders) > 1 else "")


def _saved_step(checkpoint: Path) -> str:
    """The optimiser step a training checkpoint was saved at ("?" if unreadable)."""
    import torch

    try:
        return str(int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"]))
    except Exception:  # noqa: BLE001 - a torn or foreign file: the listing goes on
        return "?"


def _list_unfinished(store: StageStore, args: argparse.Namespace) -> None:
    unfinished = [c for c in store.unfinished() if args.name is None or c.parents[1].name.rsplit("-", 1)[0] == args.name]
    if not unfinished:
        return
    print("unfinished stages (the same training command resumes them):")
    for checkpoint in unfinished:
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(checkpoint.stat().st_mtime))
        print(f"  {checkpoint.parents[1].name:<25} step {_saved_step(checkpoint):<8} {date}  {checkpoint}")


def cmd_list(store: StageStore, args: argparse.Namespace) -> int:
    records = store.records(args.kind, args.name)
    if not records:
        print(f"{store.root}: no stored stages")
        _list_unfinished(store, args)
        return 0
    print(f"{'kind':<9} {'name':<12} {'key':<12} {'last':<20} {'best':<20} {'size':>9}  {'date':<16}  {'experiment':<10}  data")
    notes: dict[str, set[str]] = {}
    for r in records:
        size = _size(Path(r["checkpoint"])) + _size(store.work_dir(r["name"], r["key"]))
        date = time.strftime("%Y-%m-%d %H:%M", time.localtime(r["mtime"]))
        cells = []
        for which in ("last", "best"):
            text, note = _metric(r, which)
            if note:
                monitor = (r.get("config") or {}).get("ranker" if r["kind"] == "ranker" else "gan", {}).get("monitor")
                named = f"the {which} {monitor}" if note == "[1]" else monitor  # [2], [3]: the validation metric itself
                notes.setdefault(note, set()).add(named or "its monitored metric")
            cells.append(f"{text} {note}" if note else text)
        experiment = (r.get("origin") or {}).get("experiment") or "-"
        print(
            f"{r['kind']:<9} {r['name']:<12} {r['key']:<12} {cells[0]:<20} {cells[1]:<20} {_human(size):>9}  {date:<16}  "
            f"{experiment:<10}  {_data(r)}"
        )
    if any(r.get("selected") for r in records):
        print("* the published weights (the stage's `select`)")
    for marker in sorted(notes):
        print(f"{marker} {NOTES[marker].format(metric=' / '.join(sorted(notes[marker])))}")
    _list_unfinished(store, args)
    return 0


def cmd_show(store: StageStore, args: argparse.Namespace) -> int:
    from ranksrgan.store import describe_change, flatten

    record = store.find(args.key)
    if args.diff:
        other = store.find(args.diff)
        a, b = flatten(other.get("config") or {}), flatten(record.get("config") or {})
        print(f"{other['name']}-{other['key']} -> {record['name']}-{record['key']}:")
        rows = [(k, a.get(k, "<unset>"), b.get(k, "<unset>")) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        for key, old, new in rows:
            print(f"  {key}: {old} -> {new}")
        payload = lambda r: {k: r.get(k) for k in ("inputs", "deps", "world_size", "version")}  # noqa: E731
        extra = describe_change(payload(other), payload(record))
        if not rows and extra.startswith("same key payload"):
            print("  (no difference)")
        elif not extra.startswith("same key payload"):
            print(f"  {extra}")
        return 0
    shown = {k: v for k, v in record.items() if k not in ("mtime",)}
    print(json.dumps(shown, indent=2, default=str))
    return 0


def cmd_remove(store: StageStore, args: argparse.Namespace) -> int:
    records = [store.find(key) for key in args.keys]  # all keys resolve before anything is removed
    for record in records:
        for path in store.remove(record):
            print(f"removed {path}")
    return 0


def cmd_prune(store: StageStore, args: argparse.Namespace) -> int:
    found = store.prunable(finished=args.finished, older_than_days=args.older_than)
    if not found:
        print("nothing to prune")
        return 0
    total = 0
    for path, why in found:
        size = _size(path)
        total += size
        print(f"{'would remove' if args.dry_run else 'removed'} {path} ({_human(size)}): {why}")
        if not args.dry_run:
            shutil.rmtree(path)
    print(f"{'would free' if args.dry_run else 'freed'} {_human(total)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = CLIParser(prog=PROG, description="List, inspect, remove and prune trained stages in the stage store.")
    parser.add_argument(
        "--store", type=Path, default=None, help="store folder (default: $RANKSRGAN_ROOT/store or ranksrgan_runs/store)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "list", help="kind, name, key, last and best metric, size, date, experiment and data of every stored stage"
    )
    p.add_argument("--kind", choices=("ranker", "generator"))
    p.add_argument("--name")
    p = sub.add_parser("show", help="the resolved config and record of one stage, or its difference from another")
    p.add_argument("key")
    p.add_argument("--diff", metavar="OTHER_KEY", help="print what differs from OTHER_KEY instead")
    p = sub.add_parser("remove", help="delete stages: network, record and work folder")
    p.add_argument("keys", nargs="+", metavar="KEY")
    p = sub.add_parser("prune", help="delete work folders moved aside, abandoned, or (--finished) of finished stages")
    p.add_argument("--finished", action="store_true", help="also the work folders (logs, checkpoints) of finished stages")
    p.add_argument("--older-than", type=float, default=7.0, metavar="DAYS", help="age of an abandoned work folder (default 7)")
    p.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    return parser


COMMANDS = {"list": cmd_list, "show": cmd_show, "remove": cmd_remove, "prune": cmd_prune}


def main(argv: Sequence[str] | None = None) -> int:
    def body(args: argparse.Namespace) -> int:
        root = args.store or default_store()
        if not root.is_dir():
            raise CLIError(f"{root}: no such store folder (pass --store)")
        from ranksrgan.store import StageStore  # imports torch: only once a command runs

        return COMMANDS[args.command](StageStore(root), args)

    return run_cli(PROG, build_parser(), body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
