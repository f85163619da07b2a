"""Scoring, benchmark tables (the paper's Table 3) and the upper bounds of §3.4 (Eq. 10).

The command-line tools (``ranksrgan-score``, ``ranksrgan-evaluate``, ``ranksrgan-upper-bound``)
are thin wrappers over this module; everything here is usable from Python.

Modules, one job each:

* :mod:`~ranksrgan.evaluation.scoring`: scoring files and batches (:func:`score_images`,
  :func:`score_batch`, :func:`ranker_score`);
* :mod:`~ranksrgan.evaluation.csvformat`: the per-image CSV format and text tables;
* :mod:`~ranksrgan.evaluation.upper_bound`: the Eq. 10 upper bounds;
* :mod:`~ranksrgan.evaluation.table3`: the paper's Table 3 (:func:`evaluate`), presented by
  :mod:`~ranksrgan.evaluation.table3_format` (:func:`format_markdown`, :func:`write_evaluation`);
* :mod:`~ranksrgan.evaluation.rank100`: Ranker scores per SR method (Rank100, Fig. 20);
* :mod:`~ranksrgan.evaluation.against_hr`: per-image NIQE of each method against its HR image
  (Fig. 9: share better than HR, histograms as PNG).
* :mod:`~ranksrgan.evaluation.seeds`: a run's final table over seeds (mean ± std, paired
  differences, the Ranker-against-HR alarm).

Every name is importable from ``ranksrgan.evaluation`` itself. Metric ids, polarity and the
conventions: :mod:`ranksrgan.metrics.registry`.
"""

from ranksrgan.evaluation.against_hr import AgainstHR, niqe_against_hr
from ranksrgan.evaluation.csvformat import (
    MEAN_ROW,
    SKIPPED,
    format_table,
    read_per_image_csv,
    skipped_records,
    write_csv,
    write_per_image_csv,
)
from ranksrgan.evaluation.rank100 import format_summary, matched_files, ranker_scores
from ranksrgan.evaluation.scoring import (
    RANK_PREFIX,
    load_learned_metrics,
    metric_spec,
    ranker_score,
    score_batch,
    score_images,
    warn_nan,
)
from ranksrgan.evaluation.seeds import (
    Method,
    SeedTable,
    format_seed_table,
    seed_table,
    table_numbers,
    write_seed_table,
)
from ranksrgan.evaluation.table3 import BenchmarkSet, Evaluation, evaluate
from ranksrgan.evaluation.table3_format import format_comparison, format_markdown, write_evaluation
from ranksrgan.evaluation.upper_bound import UpperBound, upper_bounds
from ranksrgan.metrics.registry import LEARNED_METRICS, METRICS, MetricInfo

__all__ = [
    "AgainstHR",
    "BenchmarkSet",
    "Evaluation",
    "LEARNED_METRICS",
    "MEAN_ROW",
    "METRICS",
    "Method",
    "MetricInfo",
    "RANK_PREFIX",
    "SKIPPED",
    "SeedTable",
    "UpperBound",
    "evaluate",
    "format_comparison",
    "format_markdown",
    "format_seed_table",
    "format_summary",
    "format_table",
    "load_learned_metrics",
    "matched_files",
    "metric_spec",
    "niqe_against_hr",
    "ranker_score",
    "ranker_scores",
    "read_per_image_csv",
    "score_batch",
    "score_images",
    "seed_table",
    "table_numbers",
    "skipped_records",
    "upper_bounds",
    "warn_nan",
    "write_csv",
    "write_evaluation",
    "write_per_image_csv",
    "write_seed_table",
]
