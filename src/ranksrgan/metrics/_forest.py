"""Regression forests of the ``randomforest-matlab`` toolbox (``regRF_train``), evaluated in torch.

Ma et al. trained their three forests with Abhishek Jaiantilal's MATLAB port of Liaw & Wiener's
randomForest (``RF_Reg_C``). A trained forest is a struct whose node arrays are
``nrnodes × ntree`` matrices, one column per tree, 1-based:

* ``lDau`` / ``rDau``: left / right daughter node (0 at terminal nodes);
* ``mbest``: the split variable (1-based feature index);
* ``upper``: the split value; a sample goes left when ``x[mbest] <= upper``;
* ``avnode``: the node prediction (used at terminal nodes);
* ``ndtree``: nodes used per tree; ``ntree``: number of trees;
* ``coef``: bias-correction coefficients; ``regRF_predict`` applies
  ``coef(1) + coef(2) * y`` when any of them is non-zero.

The forest prediction is the mean over trees of the terminal node values. Here all trees are
held in padded ``(ntree, nodes)`` tensors and a whole batch descends all trees at once: one
gather per depth level (``max_depth`` iterations), no Python loop over trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

__all__ = ["RegressionForest"]

#: node-array fields read from a randomforest-matlab regression model
RF_FIELDS = ("lDau", "rDau", "mbest", "upper", "avnode", "ndtree", "ntree")


@dataclass(eq=False)
class RegressionForest:
    """All trees of one forest as padded tensors.

    Attributes:
        left, right: ``(T, N)`` int64 child indices, 0-based; ``-1`` marks a terminal node.
        feature: ``(T, N)`` int64 split feature, 0-based (0 at terminal nodes).
        threshold: ``(T, N)`` float64 split values (go left when ``x <= threshold``).
        value: ``(T, N)`` float64 node predictions.
        max_depth: the deepest terminal node (root = depth 0).
        n_features: the feature-vector length the forest expects.
        coef: ``(a, b)`` bias correction ``a + b * y``, or ``None``.
    """

    left: torch.Tensor
    right: torch.Tensor
    feature: torch.Tensor
    threshold: torch.Tensor
    value: torch.Tensor
    max_depth: int
    n_features: int
    coef: tuple[float, float] | None

    @property
    def n_trees(self) -> int:
        return self.left.shape[0]

    def to(self, device: torch.device | str) -> RegressionForest:
        return RegressionForest(
            self.left.to(device),
            self.right.to(device),
            self.feature.to(device),
            self.threshold.to(device),
            self.value.to(device),
            self.max_depth,
            self.n_features,
            self.coef,
        )

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_features: int, name: str = "forest") -> RegressionForest:
        """Build from randomforest-matlab node arrays (``RF_FIELDS`` plus optional ``coef``).

        Raises:
            ValueError: missing fields, inconsistent shapes, child or feature indices out of range,
                or a tree whose descent does not terminate.
        """
        missing = [k for k in RF_FIELDS if k not in arrays]
        if missing:
            raise ValueError(f"{name}: missing regression-forest fields {missing}")
        ntree = int(np.asarray(arrays["ntree"]).reshape(-1)[0])
        rows = np.asarray(arrays["lDau"]).shape[0] if np.asarray(arrays["lDau"]).ndim > 1 else None

        def grab(key: str, dtype) -> np.ndarray:
            a = np.asarray(arrays[key], dtype=dtype)
            a = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)
            if a.shape[0] != (rows or a.shape[0]) or a.shape[1] < ntree:
                raise ValueError(f"{name}: field {key} has shape {a.shape}, expected nrnodes × {ntree} trees")
            return a[:, :ntree]

        ldau = grab("lDau", np.int64)
        rdau = grab("rDau", np.int64)
        mbest = grab("mbest", np.int64)
        upper = grab("upper", np.float64)
        avnode = grab("avnode", np.float64)
        ndtree = np.asarray(arrays["ndtree"], dtype=np.int64).reshape(-1)[:ntree]
        if ndtree.size != ntree:
            raise ValueError(f"{name}: ndtree has {ndtree.size} entries, ntree is {ntree}")
        nodes = int(max(ndtree.max(initial=1), 1))
        if nodes > ldau.shape[0]:
            raise ValueError(f"{name}: ndtree says {nodes} nodes but the node arrays have {ldau.shape[0]} rows")
        # (T, N) layout, 0-based, trimmed to the largest tree.
        ldau, rdau, mbest = ldau[:nodes].T, rdau[:nodes].T, mbest[:nodes].T
        upper, avnode = upper[:nodes].T, avnode[:nodes].T
        terminal = ldau == 0
        if np.any((rdau == 0) != terminal):
            raise ValueError(f"{name}: lDau and rDau disagree on which nodes are terminal")
        for key, child in (("lDau", ldau), ("rDau", rdau)):
            if child.min() < 0 or child.max() > nodes:
                raise ValueError(f"{name}: {key} points outside the {nodes} nodes of its tree")
        internal_feat = mbest[~terminal]
        if internal_feat.size and (internal_feat.min() < 1 or internal_feat.max() > n_features):
            raise ValueError(
                f"{name}: split variables span {internal_feat.min()}..{internal_feat.max()}, "
                f"but the feature vector has {n_features} entries"
            )
        left = np.where(terminal, -1, ldau - 1)
        right = np.where(terminal, -1, rdau - 1)
        feature = np.where(terminal, 0, mbest - 1)
        depth = _max_depth(left, right, name)
        coef = None
        if "coef" in arrays and arrays["coef"] is not None:
            c = np.asarray(arrays["coef"], dtype=np.float64).reshape(-1)
            if c.size >= 2 and np.any(c[:2] != 0):  # MATLAB: ~isempty(find(model.coef))
                coef = (float(c[0]), float(c[1]))
        return cls(
            torch.from_numpy(left),
            torch.from_numpy(right),
            torch.from_numpy(feature),
            torch.from_numpy(np.ascontiguousarray(upper)),
            torch.from_numpy(np.ascontiguousarray(avnode)),
            depth,
            n_features,
            coef,
        )

    @cached_property
    def _packed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat node arrays for the descent: node ids are ``tree * N + node``; terminal nodes point
        to themselves, so a sample that reached its leaf stays there for the remaining levels."""
        t, n = self.left.shape
        own = torch.arange(t * n, device=self.left.device).view(t, n)
        base = (torch.arange(t, device=self.left.device) * n).unsqueeze(1)
        leaf = self.left < 0
        left = torch.where(leaf, own, self.left + base)
        right = torch.where(leaf, own, self.right + base)
        children = torch.stack([left, right], dim=-1).reshape(-1)  # [2 * id] left, [2 * id + 1] right
        roots = base.reshape(1, t)
        return roots, children, self.feature.reshape(-1), self.threshold.reshape(-1), self.value.reshape(-1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Forest prediction for a batch: ``x`` ``(B, n_features)`` float -> ``(B,)`` float64.

        Rows containing NaN give NaN (MATLAB would route them arbitrarily; we refuse to guess).
        """
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"forest expects (B, {self.n_features}) features, got shape {tuple(x.shape)}")
        x = x.to(device=self.left.device, dtype=torch.float64)
        roots, children, feature, threshold, value = self._packed
        node = roots.expand(x.shape[0], -1)  # (B, T) flat node ids
        for _ in range(self.max_depth):
            fx = torch.gather(x, 1, torch.take(feature, node))
            go_right = ~(fx <= torch.take(threshold, node))  # RF_Reg_C: x <= split goes left
            node = torch.take(children, node * 2 + go_right.long())
        y = torch.take(value, node).mean(dim=1)
        if self.coef is not None:
            y = self.coef[0] + self.coef[1] * y
        return torch.where(torch.isnan(x).any(dim=1), torch.full_like(y, float("nan")), y)


def _max_depth(left: np.ndarray, right: np.ndarray, name: str) -> int:
    """Depth of the deepest terminal node over all trees (level-by-level sweep, vectorised)."""
    t, n = left.shape
    rows = np.arange(t)
    frontier = np.zeros((t, n), dtype=bool)
    frontier[:, 0] = True
    depth = 0
    while True:
        internal = frontier & (left >= 0)
        if not internal.any():
            return depth
        depth += 1
        if depth > n:
            raise ValueError(f"{name}: a tree has a cycle (descent longer than its {n} nodes)")
        tr, nd = np.nonzero(internal)
        frontier = np.zeros((t, n), dtype=bool)
        frontier[rows[tr], left[tr, nd]] = True
        frontier[rows[tr], right[tr, nd]] = True
