"""Ma et al. (2017) no-reference SR quality ("Ma", NRQM) and the PIRM2018 Perceptual Index (PI).

Reference: C. Ma, C.-Y. Yang, X. Yang, M.-H. Yang, "Learning a no-reference quality metric for
single-image super-resolution", CVIU 158 (2017). Authors' MATLAB release: ``sr-metric``
(``quality_predict.m``), MIT licence. PI: Blau et al., "The 2018 PIRM challenge on perceptual
image super-resolution", ECCVW 2018.

Polarity and range: **Ma: higher = better**, roughly 0..10 (a regression of mean opinion
scores). **PI = ((10 - Ma) + NIQE) / 2: lower = better.**

The algorithm, as the authors' MATLAB code computes it: 138 features of the 8-bit gray image in
three groups (local frequency, global frequency, spatial; :mod:`ranksrgan.metrics._ma_features`
describes each step), then three regression forests (``regRF_train``, 2000 trees each) map the
groups to three scores ``s1, s2, s3``; ``Ma = [1 s1 s2 s3] * linear`` (``robustfit``
coefficients).

Conventions (name them when you report numbers):

* ``ma(x)`` defaults: ``color="gray"``, ``crop_border=0`` — the authors' ``quality_predict`` on an
  RGB image.
* ``pi(x)`` defaults: ``color="y"``, ``crop_border=4`` — the PIRM2018 toolbox (and RankSRGAN):
  Ma and NIQE both on the rounded MATLAB Y channel after shaving 4 px (the scale) per side.
  ``ma(x, color="y", crop_border=4)`` is the Ma inside that PI.

The trained forests are not redistributable here: see :func:`load_ma_model`.

What was verified, and how: each feature group against plain loop/numpy transcriptions of the
MATLAB steps (per-block ``scipy.fft.dctn``, per-patch loops, a per-band numpy steerable pyramid),
the pyramid's tight-frame reconstruction, and the vectorised forest against a per-tree loop on
synthetic forests, in ``tests/test_ma.py``. End-to-end Ma/PI values against MATLAB need the
authors' ``model.mat``; that test skips without it, so final Ma values have NOT been checked
against MATLAB by this package's tests unless the model file is supplied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ranksrgan._lazy import lazy_attributes
from ranksrgan.io import atomic_path
from ranksrgan.metrics._forest import RF_FIELDS, RegressionForest
from ranksrgan.metrics._ma_features import GROUP_SIZES, GROUPS, ma_features

__all__ = [
    "MaModel",
    "load_ma_model",
    "convert_ma_model",
    "ma_features",
    "ma",
    "pi",
    "MA_MODEL_ENV",
    "MaModelNotFoundError",
    "GROUP_SIZES",
]

#: environment variable naming the model file (``.mat`` or ``.npz``)
MA_MODEL_ENV = "RANKSRGAN_MA_MODEL"


# --------------------------------------------------------------------------------------------
# model


@dataclass
class MaModel:
    """The trained NRQM regressor: three forests and the 4 linear coefficients.

    Attributes:
        forests: forests for the "dct" (18), "gsm" (45) and "svd" (75) feature groups.
        linear: ``(4,)`` float64: ``Ma = linear[0] + linear[1:] @ [s1, s2, s3]``.
        source: the file it was read from.
    """

    forests: tuple[RegressionForest, RegressionForest, RegressionForest]
    linear: torch.Tensor
    source: str = ""
    _per_device: dict = field(default_factory=dict, repr=False)

    def on(self, device: torch.device | str) -> MaModel:
        """This model with its tensors on ``device`` (cached)."""
        key = str(torch.device(device))
        if key not in self._per_device:
            self._per_device[key] = MaModel(
                tuple(f.to(device) for f in self.forests),
                self.linear.to(device),
                self.source,  # type: ignore[arg-type]
            )
        return self._per_device[key]

    def predict(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """Ma from :func:`ma_features` output: ``(B,)`` float64, higher = better."""
        dev = feats["dct"].device
        m = self.on(dev)
        s = torch.stack([f.predict(feats[g]) for f, g in zip(m.forests, GROUPS)], dim=1)
        return m.linear[0] + s @ m.linear[1:]


class MaModelNotFoundError(FileNotFoundError):
    """No Ma model file. ``str(err)`` tells a Python caller how to pass one (the ``path``
    argument of :func:`load_ma_model`); :meth:`message` words it for a command-line tool, which
    names its own option (or none)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(self.message("pass its path as load_ma_model(path)"))

    def message(self, how: str | None) -> str:
        """The full message; ``how`` is the last way offered to give the file (e.g.
        ``"pass --ma-model FILE"``), None to offer only the cache folder and the variable."""
        ways = [
            f"Put it at {_cache_dir() / 'ma_model.mat'} (or convert it with convert_ma_model to {_cache_dir() / 'ma_model.npz'})",
            f"set {MA_MODEL_ENV}=/path/to/model.mat",
        ] + ([how] if how else [])
        return (
            f"Ma (NRQM) model not found ({self.detail}). Ma needs the trained 'model.mat' of Ma et al.'s "
            f"sr-metric release (github.com/chaoma99/sr-metric, MIT licence; three regression forests of "
            f"2000 trees); no package ships it. {', '.join(ways[:-1])}, or {ways[-1]}."
        )


def _missing_model_error(detail: str) -> MaModelNotFoundError:
    return MaModelNotFoundError(detail)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ranksrgan"


def _resolve_model_path(path: str | os.PathLike | None) -> Path:
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise _missing_model_error(f"no file at {p}")
        return p
    env = os.environ.get(MA_MODEL_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise _missing_model_error(f"{MA_MODEL_ENV}={env} is not a file")
        return p
    for name in ("ma_model.npz", "ma_model.mat"):
        p = _cache_dir() / name
        if p.is_file():
            return p
    raise _missing_model_error(f"no path given, {MA_MODEL_ENV} unset, nothing in {_cache_dir()}")


def _read_mat(path: Path) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Read ``model.rf{1..3}`` node arrays and ``model.linear`` from the authors' ``model.mat``."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5)
        raise ValueError(f"{path}: MATLAB v7.3 files are not supported; re-save with save(..., '-v7')") from e
    except Exception as e:  # noqa: BLE001 - scipy raises several types for non-MAT files
        raise ValueError(f"{path}: not a readable MATLAB .mat file ({e})") from e
    if "model" not in mat:
        raise ValueError(f"{path}: no variable 'model' (found {sorted(k for k in mat if not k.startswith('__'))})")
    model = mat["model"].reshape(-1)[0]
    names = model.dtype.names or ()
    if "rf" not in names or "linear" not in names:
        raise ValueError(f"{path}: model struct needs fields 'rf' and 'linear', has {list(names)}")
    cells = np.asarray(model["rf"]).reshape(-1)
    if cells.size != 3:
        raise ValueError(f"{path}: model.rf must hold 3 forests, holds {cells.size}")
    forests = []
    for i, cell in enumerate(cells):
        st = np.asarray(cell).reshape(-1)[0]
        fnames = st.dtype.names or ()
        missing = [k for k in RF_FIELDS if k not in fnames]
        if missing:
            raise ValueError(f"{path}: model.rf{{{i + 1}}} lacks fields {missing}")
        arrays = {k: np.asarray(st[k]) for k in RF_FIELDS}
        if "coef" in fnames:
            arrays["coef"] = np.asarray(st["coef"], dtype=np.float64)
        forests.append(arrays)
    return forests, np.asarray(model["linear"], dtype=np.float64).reshape(-1)


def _read_npz(path: Path) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an .npz archive")
    with z:
        keys = set(z.files)
        forests = []
        for i in range(3):
            need = [f"rf{i}_{k}" for k in RF_FIELDS]
            miss = [k for k in need if k not in keys]
            if miss:
                raise ValueError(f"{path}: not a converted Ma model (missing {miss})")
            arrays = {k: z[f"rf{i}_{k}"] for k in RF_FIELDS}
            if f"rf{i}_coef" in keys:
                arrays["coef"] = z[f"rf{i}_coef"]
            forests.append(arrays)
        if "linear" not in keys:
            raise ValueError(f"{path}: not a converted Ma model (missing 'linear')")
        return forests, z["linear"].reshape(-1)


def _build(forests: list[dict[str, np.ndarray]], linear: np.ndarray, source: str) -> MaModel:
    if linear.size != 4:
        raise ValueError(f"{source}: model.linear must have 4 coefficients, has {linear.size}")
    built = tuple(
        RegressionForest.from_arrays(a, GROUP_SIZES[g], name=f"{source}: forest {i + 1} ({g})")
        for i, (a, g) in enumerate(zip(forests, GROUPS))
    )
    return MaModel(built, torch.from_numpy(linear.astype(np.float64)), source)  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int) -> MaModel:
    p = Path(path)
    forests, linear = _read_npz(p) if p.suffix == ".npz" else _read_mat(p)
    return _build(forests, linear, str(p))


def load_ma_model(path: str | os.PathLike | None = None) -> MaModel:
    """Load the NRQM model from the authors' ``model.mat`` or a converted ``.npz``.

    Search order when ``path`` is None: the ``RANKSRGAN_MA_MODEL`` environment variable, then
    ``~/.cache/ranksrgan/ma_model.npz``, then ``~/.cache/ranksrgan/ma_model.mat`` (``$XDG_CACHE_HOME``
    replaces ``~/.cache`` when set). Loaded models are cached per file and modification time.

    Raises:
        FileNotFoundError: no model file; the message says what the file is and where to put it.
        ValueError: the file is not a Ma model (wrong variables, fields or shapes).
    """
    p = _resolve_model_path(path).resolve()
    return _load_cached(str(p), p.stat().st_mtime_ns)


def convert_ma_model(mat_path: str | os.PathLike, npz_path: str | os.PathLike) -> Path:
    """Convert the authors' ``model.mat`` to a compact ``.npz`` (node arrays trimmed to the
    largest tree), written atomically. Returns the ``.npz`` path. The file is validated by loading
    it before it replaces any existing file."""
    mat_path, npz_path = Path(mat_path), Path(npz_path)
    if not mat_path.is_file():
        raise _missing_model_error(f"no file at {mat_path}")
    forests, linear = _read_mat(mat_path)
    _build(forests, linear, str(mat_path))  # validate before writing
    out: dict[str, np.ndarray] = {"linear": linear.astype(np.float64)}
    for i, a in enumerate(forests):
        ntree = int(np.asarray(a["ntree"]).reshape(-1)[0])
        ndtree = np.asarray(a["ndtree"], dtype=np.int64).reshape(-1)[:ntree]
        nodes = int(max(ndtree.max(initial=1), 1))
        for k in ("lDau", "rDau", "mbest"):
            out[f"rf{i}_{k}"] = np.asarray(a[k], dtype=np.int32).reshape(a[k].shape[0], -1)[:nodes, :ntree]
        for k in ("upper", "avnode"):
            out[f"rf{i}_{k}"] = np.asarray(a[k], dtype=np.float64).reshape(a[k].shape[0], -1)[:nodes, :ntree]
        out[f"rf{i}_ndtree"] = ndtree
        out[f"rf{i}_ntree"] = np.array([ntree], dtype=np.int64)
        if "coef" in a:
            out[f"rf{i}_coef"] = np.asarray(a["coef"], dtype=np.float64).reshape(-1)
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **out)
        _build(*_read_npz(tmp), str(npz_path))  # validate the written file before it replaces any
    return npz_path


def _as_model(model: MaModel | str | os.PathLike | None) -> MaModel:
    return model if isinstance(model, MaModel) else load_ma_model(model)


# --------------------------------------------------------------------------------------------
# functional metrics


def ma(
    x: torch.Tensor,
    model: MaModel | str | os.PathLike | None = None,
    color: str = "gray",
    crop_border: int = 0,
    quantize: bool = True,
) -> torch.Tensor:
    """Ma et al.'s no-reference SR quality. **Higher = better** (about 0..10).

    Args:
        x: ``(B, 3|1, H, W)`` or ``(3|1, H, W)`` float in [0, 1], CPU or GPU.
        model: a :class:`MaModel`, a path to ``model.mat`` / ``.npz``, or None to search (see
            :func:`load_ma_model`).
        color: ``"gray"`` (default; the authors' ``quality_predict`` on RGB) or ``"y"`` (PIRM).
        crop_border: pixels shaved per side after colour conversion (default 0; PIRM uses 4).
        quantize: MATLAB uint8 rounding of the input and of the converted channel.

    Returns:
        ``(B,)`` float64 scores; NaN for images where the MATLAB code itself fails (constant or
        near-constant images).
    """
    m = _as_model(model)
    return m.predict(ma_features(x, color=color, crop_border=crop_border, quantize=quantize))


def pi(
    x: torch.Tensor,
    model: MaModel | str | os.PathLike | None = None,
    color: str = "y",
    crop_border: int = 4,
) -> torch.Tensor:
    """PIRM2018 Perceptual Index ``((10 - Ma) + NIQE) / 2``. **Lower = better.**

    Defaults are the PIRM2018 toolbox convention used by RankSRGAN: both Ma and NIQE on the
    rounded MATLAB ``rgb2ycbcr`` Y channel after shaving ``crop_border = 4`` px per side.

    Args:
        x: ``(B, 3|1, H, W)`` or ``(3|1, H, W)`` float in [0, 1].
        model: Ma model (see :func:`ma`).
        color: ``"y"`` (PIRM) or ``"gray"``; used for both NIQE and Ma.
        crop_border: pixels shaved per side for both metrics.

    Returns:
        ``(B,)`` float64.
    """
    from ranksrgan.metrics.niqe import niqe

    m = _as_model(model)
    ma_val = ma(x, m, color=color, crop_border=crop_border)
    niqe_val = niqe(x, color=color, crop_border=crop_border).to(device=ma_val.device, dtype=torch.float64)
    return ((10.0 - ma_val) + niqe_val) / 2.0


# The torchmetrics classes Ma, PI live in :mod:`ranksrgan.metrics.classes` (torchmetrics costs seconds
# to import); still importable from here, loaded on first use.
__getattr__, __dir__ = lazy_attributes(__name__, dict.fromkeys(("Ma", "PI"), "ranksrgan.metrics.classes"))
