"""The house rules that a reader relies on: every module declares ``__all__``, and no module
imports from a layer above it (nets/metrics/ops/io know nothing of Lightning, Hydra, the
pipeline or the command line; only ``cli`` imports ``cli``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ranksrgan"
MODULES = sorted(SRC.rglob("*.py"))

# layer of each top-level part of the package; a module may import only from its layer or below
LAYERS = {
    "_lazy": 0,
    "io": 1,
    "ops": 1,
    "fingerprint": 1,
    "device": 1,
    "nets": 1,
    "export": 2,
    "checkpoint_layouts": 2,
    "checkpoints": 2,
    "tiling": 2,
    "metrics": 2,
    "losses": 2,
    "viz": 3,
    "data": 3,
    "configs": 3,
    "evaluation": 3,
    "store": 3,
    "lit": 4,
    "pipeline": 5,
    "cli": 6,
}
FRAMEWORKS = ("pytorch_lightning", "lightning", "hydra", "omegaconf")


def _part(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_every_module_declares_all(path):
    tree = ast.parse(path.read_text())
    declared = any(
        isinstance(n, (ast.Assign, ast.AnnAssign))
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in (n.targets if isinstance(n, ast.Assign) else [n.target]))
        for n in tree.body
    )
    assert declared, f"{path.relative_to(SRC)} has no __all__"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.name != "__init__.py" or p.parent != SRC], ids=lambda p: str(p.relative_to(SRC))
)
def test_no_module_imports_from_a_layer_above(path):
    part = _part(path)
    if part == "__init__":
        return
    for name in _imports(path):
        if name.startswith("ranksrgan."):
            target = name.split(".")[1]
            if target in LAYERS and target != part:
                assert LAYERS[target] <= LAYERS[part], f"{path.relative_to(SRC)} ({part}) imports {name} from a layer above"
        if LAYERS.get(part, 9) <= 2:
            assert not name.startswith(FRAMEWORKS), f"{path.relative_to(SRC)} ({part}) imports {name}"
