"""The notebooks run top to bottom on the outputs of the tiny demo run, and fail clearly without them.

Each notebook is executed in a fresh ``python3`` kernel of the interpreter running the tests,
with ``RANKSRGAN_ROOT`` set in the kernel's environment and a timeout per cell; any cell error
fails the test. The notebooks run with their saved parameters (first code cell, tagged
``parameters``), which are small enough for the tiny run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = ("01_rank_datasets.ipynb", "02_ranker_scores.ipynb", "03_sr_comparison.ipynb")
CELL_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """A kernelspec folder whose ``python3`` kernel is this interpreter (not whatever a user or
    system kernelspec of that name points to)."""
    from ipykernel.kernelspec import write_kernel_spec

    root = tmp_path_factory.mktemp("kernels")
    spec = write_kernel_spec(root / "python3")
    assert Path(spec).is_dir()
    return root


def execute(name: str, kernel_dir: Path, root: Path):
    """Run notebook ``name`` with ``RANKSRGAN_ROOT=root`` (cwd: the notebooks folder); returns it."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    km = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    assert km.kernel_spec.argv[0] == sys.executable
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    # the inline backend even where MPLBACKEND=Agg is set (CI), so that figures become outputs;
    # one intra-op thread, as in conftest (tiny tensors, a 2-core machine)
    env = {
        **os.environ,
        "RANKSRGAN_ROOT": str(root),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "OMP_NUM_THREADS": "1",
    }
    client.execute(env=env)
    return nb


def outputs(nb, kind: str) -> list[str]:
    """All outputs of one MIME type (``"image/png"``, ``"text/markdown"``) or ``"stream"`` text."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if kind == "stream" and out.output_type == "stream":
                found.append(out.text)
            elif kind != "stream" and kind in out.get("data", {}):
                found.append(out.data[kind])
    return found


def test_notebooks_are_saved_clean_and_documented():
    present = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert present == sorted(NOTEBOOKS), "every notebook must be executed by this file"
    for name in NOTEBOOKS:
        nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
        nbformat.validate(nb)
        assert nb.cells[0].cell_type == "markdown" and "make demo" in nb.cells[0].source, name
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), f"{name}: first code cell must hold the parameters"
        for cell in code:
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: saved with outputs"


def test_rank_datasets_runs_without_a_store(kernel_dir, tmp_path):
    nb = execute("01_rank_datasets.ipynb", kernel_dir, tmp_path / "no_runs")
    assert len(outputs(nb, "image/png")) == 1
    table = "\n".join(outputs(nb, "text/markdown"))
    for family in ("blur", "noise", "interpolation"):
        assert f"| {family} |" in table


def test_ranker_scores(kernel_dir, tiny_run):
    cfg, _, _ = tiny_run
    nb = execute("02_ranker_scores.ipynb", kernel_dir, Path(cfg.paths.root))
    assert len(outputs(nb, "image/png")) == 2  # level histograms, method histograms
    text = "\n".join(outputs(nb, "stream"))
    for name in ("blur", "interp"):
        assert f"Ranker {name}: pair accuracy" in text
    for method in ("Bicubic", "srresnet", "rankrbri", "HR"):
        assert method in text
    assert "higher score = worse" in text


def test_sr_comparison(kernel_dir, tiny_run):
    cfg, _, _ = tiny_run
    nb = execute("03_sr_comparison.ipynb", kernel_dir, Path(cfg.paths.root))
    assert len(outputs(nb, "image/png")) == 1
    table = outputs(nb, "text/markdown")[0]
    assert "| Bicubic | srresnet | rankrbri |" in table and "NIQE" in table and "PSNR" in table


def test_notebook_without_demo_outputs_names_the_fix(kernel_dir, tmp_path):
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="make demo"):
        execute("02_ranker_scores.ipynb", kernel_dir, tmp_path / "no_runs")


def test_require_stages_and_runs_root(tmp_path, monkeypatch, tiny_run):
    from ranksrgan.viz import require_stages, runs_root

    cfg, _, _ = tiny_run
    root = Path(cfg.paths.root)
    monkeypatch.setenv("RANKSRGAN_ROOT", str(root))
    assert runs_root() == root
    assert {r["name"] for r in require_stages("ranker")} == {"blur", "interp"}
    assert [r["name"] for r in require_stages("generator", name="srresnet")] == ["srresnet"]
    with pytest.raises(FileNotFoundError, match="no trained generator named 'esrgan'.*make demo"):
        require_stages("generator", name="esrgan")
    with pytest.raises(ValueError, match="kind must be"):
        require_stages("rankers")
    # a relative root that is missing here is looked for one level up (notebooks/ -> repo root)
    (tmp_path / "runs").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert runs_root("runs") == Path("..") / "runs"
    monkeypatch.delenv("RANKSRGAN_ROOT")
    with pytest.raises(FileNotFoundError, match="ranksrgan_runs.*make demo"):
        require_stages("ranker")


def test_image_grid_and_histograms_check_their_input():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ranksrgan.viz import image_grid, score_histograms, to_hwc

    img = torch.rand(3, 8, 10)
    assert to_hwc(img[None]).shape == (8, 10, 3)
    with pytest.raises(ValueError, match="3×H×W"):
        to_hwc(torch.rand(1, 8, 10))
    fig = image_grid([[img, img], [img]], titles=[["a", "b"], ["c"]], row_labels=["r1", "r2"])
    assert len(fig.axes) == 4
    plt.close(fig)
    with pytest.raises(ValueError, match="titles"):
        image_grid([[img, img]], titles=[["a"]])
    fig, ax = plt.subplots()
    score_histograms(ax, {"level 0": [0.0, 0.1], "level 1": [1.0]}, bins=4)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["level 0 (n=2)", "level 1 (n=1)"]
    with pytest.raises(ValueError, match="at least one score"):
        score_histograms(ax, {"level 0": []})
    plt.close(fig)
