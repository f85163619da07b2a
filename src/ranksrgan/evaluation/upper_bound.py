"""The upper bounds of §3.4 (Eq. 10): what model classification and metric rank can reach."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["UpperBound", "upper_bounds"]


@dataclass(frozen=True)
class UpperBound:
    """Upper bounds of §3.4 (Eq. 10) for two SR methods on the same LR images.

    Attributes:
        names: ``(method 1, method 2)`` as given.
        n: number of images matched.
        mean1, mean2: mean metric of each method.
        mc_method: the method model classification labels as better (lower mean; method 2 on a
            tie, matching the paper's order SR1 = SRGAN, SR2 = ESRGAN).
        ub_mc: upper bound of model classification = mean of ``mc_method`` over all images.
        ub_mr: upper bound of metric rank = mean over images of the per-image lower score.
        frac1_better: fraction of images where method 1 scores strictly lower than method 2.
        frac_tie: fraction of images with equal scores.
    """

    names: tuple[str, str]
    n: int
    mean1: float
    mean2: float
    mc_method: str
    ub_mc: float
    ub_mr: float
    frac1_better: float
    frac_tie: float


def upper_bounds(
    scores1: Mapping[str, float], scores2: Mapping[str, float], names: tuple[str, str] = ("method1", "method2")
) -> UpperBound:
    """Eq. 10 of the paper for a lower-is-better metric (NIQE, PI), per image.

    For each image ``i`` with scores ``a_i`` (method 1, "SR1") and ``b_i`` (method 2, "SR2"),
    the paper splits the pair into its Lower (-L) and Higher (-H) score.

    * ``UB_MC = Mean(PM_SR2-L + PM_SR2-H)``: model classification labels every output of one
      method as better, so at best a Ranker trained on such labels reproduces that method: the
      union of its lower and higher scores is all its scores, and ``UB_MC`` is that method's
      mean. The method it labels better is the one with the lower mean (the paper uses
      SR2 = ESRGAN, 2.55 vs 2.70 NIQE for SRGAN on PIRM-Test); on a tie of means, method 2.
    * ``UB_MR = Mean(PM_SR2-L + PM_SR1-L)`` where ``PM_SR1-L < PM_SR2-H``: metric rank keeps,
      per image, the output with the lower score, i.e. ``UB_MR = mean_i min(a_i, b_i)``. The
      "where" clause makes SR1 the lower one only when it is strictly lower; a tie counts as
      SR2-L, which does not change the value (``min`` is the same).

    Hence ``UB_MR <= UB_MC <= max(mean1, mean2)``. ``frac1_better`` counts strict wins of
    method 1; ties are reported separately.

    Args:
        scores1, scores2: ``{image: score}`` (lower = better); must hold the same images.
        names: display names of the two methods.

    Raises:
        ValueError: the image sets differ (some names are listed), no images, or NaN/inf scores.
    """
    only1 = sorted(set(scores1) - set(scores2))
    only2 = sorted(set(scores2) - set(scores1))
    if only1 or only2:
        parts = []
        for who, miss in ((names[0], only1), (names[1], only2)):
            if miss:
                shown = ", ".join(miss[:5]) + (f", ... (+{len(miss) - 5} more)" if len(miss) > 5 else "")
                parts.append(f"{len(miss)} image(s) only in {who}: {shown}")
        raise ValueError("the two score sets do not cover the same images: " + "; ".join(parts))
    keys = sorted(scores1)
    if not keys:
        raise ValueError("no images to compare")
    a = np.array([scores1[k] for k in keys], dtype=np.float64)
    b = np.array([scores2[k] for k in keys], dtype=np.float64)
    bad = [k for k, x, y in zip(keys, a, b) if not (math.isfinite(x) and math.isfinite(y))]
    if bad:
        raise ValueError(f"non-finite score for image {bad[0]!r} ({len(bad)} image(s) in all)")
    mean1, mean2 = float(a.mean()), float(b.mean())
    mc = names[0] if mean1 < mean2 else names[1]
    return UpperBound(
        names=(names[0], names[1]),
        n=len(keys),
        mean1=mean1,
        mean2=mean2,
        mc_method=mc,
        ub_mc=min(mean1, mean2),
        ub_mr=float(np.minimum(a, b).mean()),
        frac1_better=float((a < b).mean()),
        frac_tie=float((a == b).mean()),
    )
