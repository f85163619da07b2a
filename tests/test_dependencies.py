"""Honest dependencies: what setup.cfg declares is what src/ imports, and the other way round.

Imports are found by parsing every file of ``src/`` with :mod:`ast` (top-level names of
``import x.y`` and ``from x.y import z``, function-level imports included); standard-library
modules and ``ranksrgan`` itself are left out.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"

# distribution name -> import name, where they differ
IMPORT_NAMES = {
    "opencv-python-headless": "cv2",
    "opencv-python": "cv2",
    "scikit-image": "skimage",
    "pytorch-lightning": "pytorch_lightning",
    "hydra-core": "hydra",
    "pillow": "PIL",
}
# import names that a distribution ships besides its own (pytorch-lightning's wheel holds lightning_fabric)
ALSO_SHIPPED = {"pytorch-lightning": ["lightning_fabric"]}


def _requirement_names(block: str) -> list[str]:
    names = []
    for line in block.strip().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[\s<>=!~;\[]", line, maxsplit=1)[0].lower())
    return names


def _declared() -> tuple[dict[str, str], dict[str, str]]:
    """``({import name: distribution}`` of install_requires, the same for every extra``)``."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")

    def imports(names):
        found = {IMPORT_NAMES.get(n, n.replace("-", "_")): n for n in names}
        found.update({extra: n for n in names for extra in ALSO_SHIPPED.get(n, [])})
        return found

    required = imports(_requirement_names(cfg["options"]["install_requires"]))
    extras = {}
    for _, block in cfg["options.extras_require"].items():
        extras.update(imports(_requirement_names(block)))
    return required, extras


def _imported() -> dict[str, list[str]]:
    """``{top-level third-party import name: [files importing it]}`` over ``src/``."""
    found: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "ranksrgan":
                    continue
                found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def test_every_required_package_is_imported_by_src():
    required, _ = _declared()
    imported = _imported()
    unused = sorted(dist for name, dist in required.items() if name not in imported)
    assert not unused, f"install_requires lists packages that src/ never imports: {unused}"


def test_every_package_src_imports_is_declared():
    required, extras = _declared()
    undeclared = {name: files for name, files in _imported().items() if name not in required and name not in extras}
    assert not undeclared, f"src/ imports packages setup.cfg does not declare: {undeclared}"


def test_the_card_packages_are_used():
    imported = _imported()
    for name in ("piq", "albumentations", "cv2", "kornia"):
        assert name in imported, name


def test_the_parser_sees_imports_inside_functions(tmp_path, monkeypatch):
    (tmp_path / "mod.py").write_text("import os\n\ndef f():\n    import piq.perceptual\n    from cv2 import imread\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert set(_imported()) == {"piq", "cv2"}


def _requirements(extras: set[str] | None = None) -> list[Requirement]:
    """install_requires and the given extras of setup.cfg (every extra when None)."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg", encoding="utf-8")
    chosen = [block for name, block in cfg["options.extras_require"].items() if extras is None or name in extras]
    blocks = [cfg["options"]["install_requires"], *chosen]
    return [Requirement(line.split("#", 1)[0].strip()) for b in blocks for line in b.strip().splitlines() if line.strip()]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_dependency_has_a_tested_upper_bound():
    unbounded = [str(r) for r in _requirements() if not any(s.operator in ("<", "<=", "==") for s in r.specifier)]
    assert not unbounded, f"setup.cfg: no upper bound for {unbounded}"


def test_constraints_pin_every_dependency_within_its_bounds():
    """constraints.txt (what `make install` uses) names every package `make install` installs except
    the torch pair, which the Makefile pins, at a version inside setup.cfg's bounds."""
    installed_extras = re.search(r'-e "\.\[([a-z,]+)\]"', (REPO / "Makefile").read_text()).group(1)
    pins = _constraints()
    for req in _requirements(set(installed_extras.split(","))):
        name = canonicalize_name(req.name)
        if name in ("torch", "torchvision"):
            continue
        assert name in pins, f"constraints.txt: no pin for {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt: {req.name}=={pins[name]} outside {req}"


def test_the_makefile_torch_pair_is_inside_the_bounds():
    line = next(ln for ln in (REPO / "Makefile").read_text().splitlines() if ln.startswith("TORCH ?="))
    pinned = dict(p.split("==") for p in line.split("?=", 1)[1].split())
    bounds = {canonicalize_name(r.name): r.specifier for r in _requirements()}
    assert set(pinned) == {"torch", "torchvision"}
    for name, version in pinned.items():
        assert bounds[name].contains(version), f"Makefile TORCH: {name}=={version} outside {bounds[name]}"
