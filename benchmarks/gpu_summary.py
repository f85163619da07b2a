"""The summary table of ``benchmarks/gpu_check.sh``, read from its step logs.

    python benchmarks/gpu_summary.py LOG_DIR

One row per measured setting: the step, what ran, iterations (or images) per second, peak GPU
memory, and the step's status and wall seconds; then the ratios: the tuned step against the default
one and against the plain reference step, what each speed option is worth alone, the Rankers' share
of an iteration, the host synchronisations per iteration, and the speed targets.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

GAN_LINE = re.compile(
    r"^(?P<variant>srgan|rank1|rank2)\s+(?P<feed>synthetic|data|device)\s*: iteration\s+(?P<ms>[\d.]+) ms median.*?"
    r"(?P<rate>[\d.]+) it/s, peak\s+(?P<peak>[\d.]+) MiB"
)
DIAGNOSTIC_LINE = re.compile(r"^(?P<variant>\w+)\s+(?P<feed>\w+)\s*: (?P<what>host syncs per iteration|profile:) (?P<rest>.*)$")
PLAIN_LINE = re.compile(r"^(?P<variant>srgan|rank1|rank2)\s+plain\s*: iteration\s+(?P<ms>[\d.]+) ms; +(?P<rate>[\d.]+) it/s")
TUNED = "bf16 + channels_last + fused Adam"
GAN_SETTINGS = {
    "02_gan_tf32": "fp32 (TF32 convs)",
    "03_gan_tuned": TUNED,
    "05_gan_bf16_cl": "bf16 + channels_last",
    "06_gan_bf16": "bf16-mixed",
    "07_gan_tf32_bf16_losses": "TF32, loss networks bf16",
}
#: (what the option is, the run with it, the run without it): each differs in that option alone
OPTION_GAINS = (
    ("bf16-mixed over TF32", ("06_gan_bf16", "rank1", "synthetic"), ("02_gan_tf32", "rank1", "synthetic")),
    ("channels_last (bf16)", ("05_gan_bf16_cl", "rank1", "synthetic"), ("06_gan_bf16", "rank1", "synthetic")),
    ("fused Adam (bf16 + channels_last)", ("03_gan_tuned", "rank1", "synthetic"), ("05_gan_bf16_cl", "rank1", "synthetic")),
    (
        "loss networks in bf16 (TF32 run)",
        ("07_gan_tf32_bf16_losses", "rank1", "synthetic"),
        ("02_gan_tf32", "rank1", "synthetic"),
    ),
    (
        "on-device patches over the worker loader (tuned, 2 Rankers)",
        ("03_gan_tuned", "rank2", "device"),
        ("03_gan_tuned", "rank2", "data"),
    ),
)
TARGET_RATE, TARGET_RANKER_SHARE = 40.0, 10.0


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

    name = "08_gan_diagnostics"
    for line in _read(logs, name).splitlines():
        m = DIAGNOSTIC_LINE.match(line.strip())
        if m:
            what = m["what"].rstrip(":")
            table.append([name, f"{what}, {TUNED}, {m['variant']}, {m['feed']}", m["rest"], "-", *status(name)])
    if not any(row[0] == name for row in table):
        table.append([name, "host syncs and profile", "no result", "-", *status(name)])

    name = "09_host_overhead"
    text = _read(logs, name)
    for line in text.splitlines():
        m, plain = GAN_LINE.match(line.strip()), PLAIN_LINE.match(line.strip())
        if m and m["feed"] == "synthetic":
            what = f"host cost of an iteration (all layers, no arithmetic), {TUNED}, {m['variant']}, Lightning"
            ms = float(m["ms"])  # median host time of an iteration: its inverse is the host's ceiling
            table.append([name, what, f"{ms:.1f} ms host = {1000 / ms:.1f} it/s at most", "-", *status(name)])
        elif plain:
            what = f"host cost of an iteration (all layers, no arithmetic), {TUNED}, {plain['variant']}, plain loop"
            table.append(
                [name, what, f"{float(plain['ms']):.1f} ms = {float(plain['rate']):.1f} it/s at most", "-", *status(name)]
            )
    if not any(row[0] == name for row in table):
        table.append([name, "host cost of an iteration", "no result", "-", *status(name)])

    name = "10_niqe"
    for line in _read(logs, name).splitlines():
        m = re.match(r"^(cpu|cuda)\s+(\d+×\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)", line.strip())
        if m:
            what = f"NIQE {m[2]}, batch {m[3]} ({m[1]})"
            table.append([name, what, f"{m[4]} ms/image", f"+{m[5]} MiB", *status(name)])
    if not any(row[0] == name for row in table):
        table.append([name, "NIQE", "no result", "-", *status(name)])

    name = "11_ranker_labelling"
    text = _read(logs, name)
    for label, unit in (("Ranker training", "pairs/s"), ("NIQE labelling", "patches/s")):
        m = re.search(r"([\d.]+) " + unit + r"; peak memory (\d+) MiB", text)
        row = [f"{m[1]} {unit}", f"{m[2]} MiB"] if m else ["no result", "-"]
        table.append([name, label, *row, *status(name)])

    name = "12_pipeline"
    text = _read(logs, name)
    done = re.findall(r"\[(stage \d+/\d+ [^\]]+)\] done: (\d+/\d+ \w+) in ([\d:]+)", text)
    peak = re.findall(r"peak CUDA memory: (\d+) MiB allocated", text) or re.findall(r"peak process RSS: (\d+) MiB", text)
    result = (
        f"{len(done)} stages; " + ", ".join(f"{s.split()[-1]} {n} in {t}" for s, n, t in done) if done else "no stage finished"
    )
    table.append([name, "pipeline (smoke graph)", result, f"{peak[-1]} MiB" if peak else "-", *status(name)])

    notes.extend(ratios(gan, ref))
    return table, notes


def ratios(gan: dict[tuple[str, str, str], float], ref: dict) -> list[str]:
    """The comparisons under the table, from the GAN rates ``{(step, variant, feed): it/s}`` and the
    reference step's results."""
    notes = []
    for variant in ("rank1", "rank2"):
        for feed in ("data", "device"):
            tuned, default = gan.get(("03_gan_tuned", variant, feed)), gan.get(("02_gan_tf32", variant, "data"))
            if tuned and default:
                notes.append(
                    f"tuned ({feed} feed) / default (TF32, worker loader), {variant}: {tuned / default:.2f}x ({tuned:.1f} vs {default:.1f} it/s)"
                )
    for ours_key, ref_key in (
        (("02_gan_tf32", "rank1", "synthetic"), "fp32_default_tf32"),
        (("05_gan_bf16_cl", "rank1", "synthetic"), "bf16_channels_last"),
        (("03_gan_tuned", "rank1", "synthetic"), "bf16_channels_last"),
    ):
        ours, base = gan.get(ours_key), ref.get(ref_key, {}).get("steps_per_s")
        if ours and base:
            label = GAN_SETTINGS[ours_key[0]]
            notes.append(
                f"ours ({label}, 1 Ranker, synthetic) / reference {ref_key}: {ours / base:.2f}x ({ours:.1f} vs {base:.1f} it/s)"
            )
    for what, with_key, without_key in OPTION_GAINS:
        on, off = gan.get(with_key), gan.get(without_key)
        if on and off:
            notes.append(f"gain of {what}: {(on / off - 1) * 100:+.1f} % ({on:.1f} vs {off:.1f} it/s)")
    for name, label in GAN_SETTINGS.items():
        for feed in ("synthetic", "data", "device"):
            srgan = gan.get((name, "srgan", feed))
            for variant, count in (("rank1", "one Ranker's"), ("rank2", "two Rankers'")):
                rate = gan.get((name, variant, feed))
                if srgan and rate:
                    notes.append(f"{count} share of the step, {label}, {feed}: {(1 - rate / srgan) * 100:.1f} %")
    best = max(((rate, key) for key, rate in gan.items() if key[1] != "srgan" and key[2] != "synthetic"), default=None)
    if best:
        rate, (name, variant, feed) = best
        srgan = gan.get((name, "srgan", feed))
        share = f", Rankers {(1 - rate / srgan) * 100:.1f} % (target <= {TARGET_RANKER_SHARE:.0f} %)" if srgan else ""
        verdict = "met" if rate >= TARGET_RATE else "not met"
        notes.append(
            f"target >= {TARGET_RATE:.0f} it/s with a real loader and Rankers: {verdict}; best {rate:.1f} it/s "
            f"({GAN_SETTINGS[name]}, {variant}, {feed} feed){share}"
        )
    return notes


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
    if notes:
        print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
