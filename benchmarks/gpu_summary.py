"""The summary table of ``benchmarks/gpu_check.sh``, read from its step logs.

    python benchmarks/gpu_summary.py LOG_DIR

One row per measured setting: the step, what ran, iterations (or images) per second, peak GPU
memory, and the step's status and wall seconds; then the ratios the GPU issue asks for (our step
against the plain reference step, the Rankers' share of an iteration).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

GAN_LINE = re.compile(
    r"^(?P<variant>srgan|rank1|rank2)\s+(?P<feed>synthetic|data)\s*: iteration\s+(?P<ms>[\d.]+) ms median.*?"
    r"(?P<rate>[\d.]+) it/s, peak\s+(?P<peak>[\d.]+) MiB"
)
GAN_SETTINGS = {"02_gan_tf32": "fp32 (TF32 convs)", "03_gan_bf16": "bf16-mixed", "03_gan_bf16_cl": "bf16 + channels_last"}


def _steps(logs: Path) -> dict[str, tuple[str, str]]:
    out = {}
    path = logs / "steps.txt"
    for line in path.read_text().splitlines() if path.is_file() else []:
        parts = line.split()
        if len(parts) == 3:
            status = "ok" if parts[1] == "0" else ("skipped" if parts[1].startswith("skipped") else f"exit {parts[1]}")
            out[parts[0]] = (status, parts[2])
    return out


def _read(logs: Path, name: str) -> str:
    path = logs / f"{name}.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def rows(logs: Path) -> tuple[list[list[str]], list[str]]:
    steps = _steps(logs)
    table: list[list[str]] = []
    notes: list[str] = []

    def status(name: str) -> tuple[str, str]:
        return steps.get(name, ("not run", "-"))

    name = "01_pytest_gpu"
    summary = next(
        (line for line in reversed(_read(logs, name).splitlines()) if re.search(r"passed|failed|skipped|error", line)), ""
    )
    table.append([name, "pytest -m gpu", summary.strip("= ") or "-", "-", *status(name)])

    gan: dict[tuple[str, str, str], float] = {}
    for name, label in GAN_SETTINGS.items():
        for line in _read(logs, name).splitlines():
            m = GAN_LINE.match(line.strip())
            if m:
                gan[(name, m["variant"], m["feed"])] = float(m["rate"])
                what = f"GAN step, {label}, {m['variant']}, {m['feed']}"
                table.append([name, what, f"{float(m['rate']):.2f} it/s", f"{float(m['peak']):.0f} MiB", *status(name)])
        if name in steps and not any(k[0] == name for k in gan):
            table.append([name, f"GAN step, {label}", "no result", "-", *status(name)])

    name = "04_reference"
    ref: dict = {}
    ref_json = logs / "gpu_step_ref.json"
    if ref_json.is_file():
        ref = json.loads(ref_json.read_text())
    for key, value in ref.items():
        if isinstance(value, dict) and "steps_per_s" in value:
            table.append(
                [
                    name,
                    f"reference step, {key}",
                    f"{value['steps_per_s']:.2f} it/s",
                    f"{value['peak_GiB'] * 1024:.0f} MiB",
                    *status(name),
                ]
            )
    if not ref:
        table.append([name, "reference step", "no result", "-", *status(name)])

    name = "05_niqe"
    for line in _read(logs, name).splitlines():
        m = re.match(r"^(cpu|cuda)\s+(\d+×\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)", line.strip())
        if m:
            what = f"NIQE {m[2]}, batch {m[3]} ({m[1]})"
            table.append([name, what, f"{m[4]} ms/image", f"+{m[5]} MiB", *status(name)])
    if not any(row[0] == name for row in table):
        table.append([name, "NIQE", "no result", "-", *status(name)])

    name = "06_ranker_labelling"
    text = _read(logs, name)
    for label, unit in (("Ranker training", "pairs/s"), ("NIQE labelling", "patches/s")):
        m = re.search(r"([\d.]+) " + unit + r"; peak memory (\d+) MiB", text)
        row = [f"{m[1]} {unit}", f"{m[2]} MiB"] if m else ["no result", "-"]
        table.append([name, label, *row, *status(name)])

    name = "07_pipeline"
    text = _read(logs, name)
    done = re.findall(r"\[(stage \d+/\d+ [^\]]+)\] done: (\d+/\d+ \w+) in ([\d:]+)", text)
    peak = re.findall(r"peak CUDA memory: (\d+) MiB allocated", text) or re.findall(r"peak process RSS: (\d+) MiB", text)
    result = (
        f"{len(done)} stages; " + ", ".join(f"{s.split()[-1]} {n} in {t}" for s, n, t in done) if done else "no stage finished"
    )
    table.append([name, "pipeline (smoke graph)", result, f"{peak[-1]} MiB" if peak else "-", *status(name)])

    ours = gan.get(("03_gan_bf16_cl", "rank2", "data")) or gan.get(("03_gan_bf16_cl", "rank1", "data"))
    base = ref.get("fp32_default_tf32", {}).get("steps_per_s")
    if ours and base:
        notes.append(
            f"ours (bf16 + channels_last, Rankers, real loader) / reference eager TF32: {ours / base:.2f}x ({ours:.1f} vs {base:.1f} it/s)"
        )
    for name in GAN_SETTINGS:
        for feed in ("synthetic", "data"):
            srgan, rank2 = gan.get((name, "srgan", feed)), gan.get((name, "rank2", feed))
            if srgan and rank2:
                notes.append(f"two Rankers' share of the step, {GAN_SETTINGS[name]}, {feed}: {(1 - rank2 / srgan) * 100:.1f} %")
    return table, notes


def main() -> None:
    logs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    table, notes = rows(logs)
    env = _read(logs, "00_environment").strip()
    header = ["step", "what", "result", "peak GPU memory", "status", "seconds"]
    print(f"\nGPU check summary ({env or 'environment not recorded'})\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
