"""Fig. 9: per-image NIQE of each method against its HR image (share better, histograms)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ranksrgan.evaluation import Evaluation, niqe_against_hr
from ranksrgan.io import decode_image

HR = {"a": 5.0, "b": 4.0, "c": 6.0, "d": 3.0, "e": 4.5}
METHODS = {
    # lower than HR on a, d, e; a tie on b (not better); worse on c: 3 of 5
    "SRGAN": {"a": 4.0, "b": 4.0, "c": 7.0, "d": 2.0, "e": 4.4},
    # every image lower except c, which is NaN (left out): 4 of 4
    "RankSRGAN": {"a": 3.0, "b": 3.5, "c": math.nan, "d": 2.5, "e": 3.9},
}


def _evaluation() -> Evaluation:
    ev = Evaluation(4, ["niqe", "psnr"], ["Bicubic", "SRGAN", "RankSRGAN", "HR"], ["val"], reference="HR")
    bicubic = {k: v + 2.0 for k, v in HR.items()}  # never better
    for method, vals in (("Bicubic", bicubic), *METHODS.items(), ("HR", HR)):
        for image, v in vals.items():
            ev.records.append({"dataset": "val", "method": method, "image": image, "niqe": v, "psnr": 30.0})
    # one more image, in a second set: left out by dataset="val", counted when the sets are pooled
    ev.datasets.append("other")
    ev.records.append({"dataset": "other", "method": "SRGAN", "image": "z", "niqe": 1.0, "psnr": 1.0})
    ev.records.append({"dataset": "other", "method": "HR", "image": "z", "niqe": 9.0, "psnr": 1.0})
    return ev


def test_share_better_than_hr(tmp_path):
    res = niqe_against_hr(_evaluation(), png=tmp_path / "fig9.png", dataset="val")
    assert res.better == {"Bicubic": 0.0, "SRGAN": 3 / 5, "RankSRGAN": 4 / 4}
    assert res.pairs == {"Bicubic": 5, "SRGAN": 5, "RankSRGAN": 4}
    assert list(res.values) == ["HR", "Bicubic", "SRGAN", "RankSRGAN"]
    np.testing.assert_array_equal(res.values["RankSRGAN"], [3.0, 3.5, 2.5, 3.9])
    table = res.format()
    srgan_line = next(line for line in table.splitlines() if line.startswith("SRGAN"))
    assert srgan_line.split()[1:] == ["5", "4.28", "60.0%"]  # (4 + 4 + 7 + 2 + 4.4) / 5
    rank_line = next(line for line in table.splitlines() if line.startswith("RankSRGAN"))
    assert rank_line.split()[1:] == ["4", f"{np.mean([3.0, 3.5, 2.5, 3.9]):.2f}", "100.0%"]
    hr_line = next(line for line in table.splitlines() if line.startswith("HR"))
    assert hr_line.split()[1:] == ["5", f"{np.mean(list(HR.values())):.2f}", "-"]
    # both sets pooled: the pair of set "other" counts too
    assert niqe_against_hr(_evaluation()).better["SRGAN"] == 4 / 6


def test_histograms_and_png(tmp_path):
    res = niqe_against_hr(_evaluation(), png=tmp_path / "fig9.png", dataset="val")
    edges, counts = res.histograms(bins=4)
    pooled = [v for vals in (HR, METHODS["SRGAN"], METHODS["RankSRGAN"]) for v in vals.values() if not math.isnan(v)]
    pooled += [v + 2.0 for v in HR.values()]
    np.testing.assert_allclose(edges, np.linspace(min(pooled), max(pooled), 5))
    assert counts["SRGAN"].tolist() == np.histogram(list(METHODS["SRGAN"].values()), bins=edges)[0].tolist()
    img = decode_image(tmp_path / "fig9.png")
    assert img.shape == (8 + 96 * 4 + 34, 720, 3) and img.dtype == np.uint8
    # each series' bars are drawn in its own colour: HR grey, then the palette
    for colour in ((128, 128, 128), (31, 119, 180), (255, 127, 14), (44, 160, 44)):
        assert (img == colour).all(-1).any(), colour


def test_needs_the_hr_reference_and_the_column():
    ev = _evaluation()
    with pytest.raises(ValueError, match="no 'ma' column"):
        niqe_against_hr(ev, metric="ma")
    ev.reference = None
    with pytest.raises(ValueError, match="include_hr=True"):
        niqe_against_hr(ev)


def test_final_report_goes_to_wandb_with_the_fig9_histogram_and_shares(tmp_path, monkeypatch):
    """logger=wandb (offline): a run named "final" holds the table's CSV rows, the Fig. 9 image and
    the shares better than HR; logger=csv logs nothing more (the files are beside the table)."""
    import json

    from omegaconf import OmegaConf

    from ranksrgan.pipeline import log_final_report

    monkeypatch.setenv("WANDB_MODE", "offline")
    res = niqe_against_hr(_evaluation(), dataset="val")
    png = res.write_png(tmp_path / "niqe_vs_hr.png")
    tables = {}
    for name in ("Set14", "BSD100"):  # a table per test set, as the run writes them
        tables[name] = tmp_path / f"final_table_{name}.csv"
        tables[name].write_text(f"dataset,method,metric,mean\n{name},srgan,niqe,6.93\n{name},rankrbri,niqe,6.56\n")
    files = {"csv_Set14": tables["Set14"], "csv_BSD100": tables["BSD100"], "niqe_vs_hr": png}
    result = {"files": files, "better_than_hr": res.better}
    wandb_logger = {"_target_": "pytorch_lightning.loggers.WandbLogger", "_partial_": True, "project": "t", "offline": True}
    csv_logger = {"_target_": "pytorch_lightning.loggers.CSVLogger", "_partial_": True}
    assert log_final_report(OmegaConf.create({"logger": csv_logger}), result, tmp_path) is None
    run = log_final_report(OmegaConf.create({"logger": wandb_logger}), result, tmp_path)
    assert run.parent == tmp_path / "wandb" and run.name.startswith("offline-run-")
    images = list((run / "files" / "media" / "images").rglob("*.png"))
    assert [p.relative_to(run / "files" / "media" / "images").parts[0] for p in images] == ["fig9"]
    for name in ("Set14", "BSD100"):
        logged = json.loads(next((run / "files" / "media" / "table").glob(f"final_table_{name}_*.table.json")).read_text())
        assert logged["columns"] == ["dataset", "method", "metric", "mean"]
        assert logged["data"] == [[name, "srgan", "niqe", "6.93"], [name, "rankrbri", "niqe", "6.56"]]
    shares = json.loads(next((run / "files" / "media" / "table" / "fig9").glob("better_than_hr_*.table.json")).read_text())
    assert shares["data"] == [["Bicubic", 0.0], ["SRGAN", 0.6], ["RankSRGAN", 1.0]]
