"""Stage progress counts the stage's own units (GAN iterations, not optimiser steps), names the
stage and its place in the plan, and prints lines when the output is not a terminal or a terminal
of unknown size."""

from __future__ import annotations

import io
from types import SimpleNamespace

import torch

from ranksrgan.lit.progress import StageProgress


def _trainer(step: int = 0, metrics=None):
    return SimpleNamespace(
        global_step=step,
        is_global_zero=True,
        sanity_checking=False,
        state=SimpleNamespace(fn="fit"),
        callback_metrics=metrics or {},
    )


def test_gan_iterations_count_two_optimiser_steps_and_lines_every_n():
    out = io.StringIO()
    progress = StageProgress("stage 2/5 generator srgan", total=10, unit="it", steps_per_unit=2, every_n=5, stream=out, tty=False)
    trainer = _trainer()
    progress.on_train_start(trainer, None)
    for step in range(1, 21):  # G and D steps alternate: 20 optimiser steps = 10 iterations
        trainer.global_step = step
        progress.on_train_batch_end(trainer, None, None, None, step)
    trainer.callback_metrics = {"val/psnr": torch.tensor(25.5), "val/rank/blur": torch.tensor(0.1)}
    progress.on_validation_end(trainer, None)
    progress.on_train_end(trainer, None)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[stage 2/5 generator srgan] 10 it"
    assert [line.split("]")[1].split("(")[0].strip() for line in lines[1:3]] == ["5/10 it", "10/10 it"]
    assert "it/s, ETA" in lines[1]
    assert lines[3] == "[stage 2/5 generator srgan] validation at 10: psnr=25.5"
    assert lines[4].startswith("[stage 2/5 generator srgan] done: 10/10 it in ")


def test_a_resumed_stage_starts_at_its_step_and_prints_at_least_every_interval(monkeypatch):
    import ranksrgan.lit.progress as progress_module

    clock = iter(float(t) for t in (0, 31, 31, 40, 80, 80))
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    progress = StageProgress("stage 1/1 ranker blur", total=1000, every_s=30, stream=out, tty=False)
    trainer = _trainer(step=400)
    progress.on_train_start(trainer, None)
    for step in (401, 402, 403):
        trainer.global_step = step
        progress.on_train_batch_end(trainer, None, None, None, step)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[stage 1/1 ranker blur] 1000 step, resumed at 400"
    # 401 at t=31 s (over 30 s since the start), 402 at t=40 s (not yet), 403 at t=80 s
    assert [line.split("]")[1].split("(")[0].strip() for line in lines[1:]] == ["401/1000 step", "403/1000 step"]
    assert "ETA" in lines[1]


def _on_pty(rows: int, columns: int) -> str:
    """What a stage of 3 steps writes to a pseudo-terminal of ``rows``×``columns``."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    with os.fdopen(slave, "w", closefd=True) as stream:
        progress = StageProgress("stage 1/1 ranker blur", total=3, stream=stream)
        trainer = _trainer()
        progress.on_train_start(trainer, None)
        for step in (1, 2, 3):
            trainer.global_step = step
            progress.on_train_batch_end(trainer, None, None, None, step)
        progress.on_train_end(trainer, None)
        stream.flush()
        mode = "bar" if progress.tty else "lines"
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return f"{mode}\n{out.decode(errors='replace')}"


def test_a_terminal_of_unknown_size_gets_lines_and_a_sized_one_a_bar():
    unknown = _on_pty(0, 0)  # e.g. a container started without a terminal size: a bar shows nothing
    assert unknown.startswith("lines\n") and "[stage 1/1 ranker blur] 3/3 step (100%)" in unknown
    assert "done: 3/3 step" in unknown
    sized = _on_pty(24, 80)
    assert sized.startswith("bar\n") and "3/3" in sized and "done:" not in sized
