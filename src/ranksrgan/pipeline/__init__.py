"""Stage planning and training: which Rankers and generators a run needs, which are already
trained, and training the rest in order.

A *stage* is one Lightning fit: a Ranker (``ranker=<name>``) or a generator recipe (``gan=<name>``).
The paper's dependency graph is built from the configs:

* a GAN recipe depends on its Rankers (``gan.rankers``: a Ranker config name or a checkpoint)
  and on the generator it starts from (``gan.pretrained``: a recipe name or a checkpoint);
* the interpolation Ranker depends on the generator recipe named by ``datamodule.sr``
  (``sr: srgan``: SRGAN outputs interpolated with HR, paper Eq. 12);
* ``compare: [srgan, rankrb, ...]`` adds more recipes to the run (the paper's Fig. 22);
* ``seeds: [1, 2, 3]`` trains the compared recipes (``gan`` and ``compare``) once per seed
  (stages labelled ``name@seed``); the stages they depend on are trained once, with ``seed``.

``ranker=blur gan=rankrbri`` therefore plans: blur Ranker, SRResNet, SRGAN, interpolation Ranker
(fed by that SRGAN), RankSRGAN-RbRi.

**Stage settings.** A dependency is composed from its own config option with the run's other
command-line overrides (``experiment=...``, ``data...``, ``trainer...``); the group overrides
(``ranker.*``, ``gan.*``) belong to the option the command selected, except the generator
architecture (``gan.module.generator...``), which every generator stage shares. Then the
``stages`` dict of the config is merged into the stage's section, most specific last:
``stages.all`` < ``stages.rankers`` / ``stages.generators`` < ``stages.<stage name>``.
A command-line ``gan.*`` / ``ranker.*`` / ``data.*`` value that a ``stages`` entry replaces in a
stage it addresses stops the run before anything trains, with the ``++stages...`` override that
reaches it (:func:`~ranksrgan.pipeline.overrides.unreached_overrides`; ``docs/sweeps.md``).

**Stage key.** The SHA-256 (12 hex digits) of everything that decides the stage's result:

* its resolved config (section, seed, precision; for generators the data config), less the keys
  that do not change the result (:data:`NO_EFFECT_KEYS`, and the labelling settings of a label
  file that is read rather than built: those are checked against the file's header instead);
* the fingerprint of every file and folder it reads (:mod:`ranksrgan.fingerprint`: folders by
  names, sizes and modification times; label files and checkpoints by content);
* the keys of the stages it depends on;
* the world size (devices × nodes: ``data.batch_size`` is per process, so it sets the effective
  batch) and the library version.

**Published weights.** A generator stage publishes its last weights (``select: last``, equal
iterations for every recipe) or those of its best validation by ``monitor`` (``select: best``); a
Ranker its best validation. The record says which (``selected``, ``iteration``, ``metrics``) and
keeps both validations (``last``, ``best``). The final table is on ``data.test_hr``, which no stage
reads (:func:`~ranksrgan.pipeline.reporting.summary`).

Finished stages live in :class:`ranksrgan.store.StageStore`. With ``reuse_stages=true`` a finished
stage of the same key is reused and an unfinished one resumes from its ``last.ckpt``. With
``reuse_stages=false`` every stage trains from step 0 in a fresh work folder (an old one is moved
aside to ``<name>-<key>.old-<time>``). ``dry_run=true`` prints the plan and what each stage will do
(a stage to train is compared with the most similar stored stage of its name), and exits with
status 2 when something would stop the real run.

Modules, in the order a run uses them: :mod:`~ranksrgan.pipeline.planning` (stages, keys,
inputs; :mod:`~ranksrgan.pipeline.stage` is one stage), :mod:`~ranksrgan.pipeline.overrides` and
:mod:`~ranksrgan.pipeline.checks` (what stops a run before it trains),
:mod:`~ranksrgan.pipeline.reuse` (reuse, resume or train), :mod:`~ranksrgan.pipeline.training`
(one Trainer per stage, publishing; :mod:`~ranksrgan.pipeline.loggers` makes their loggers) and
:mod:`~ranksrgan.pipeline.reporting` (the dry-run plan, the summary).
"""

from ranksrgan.pipeline.checks import blocking_problems, check_values, preflight
from ranksrgan.pipeline.loggers import make_logger
from ranksrgan.pipeline.overrides import run_origin, unreached_overrides
from ranksrgan.pipeline.planning import (
    NO_EFFECT_KEYS,
    PATH_KEYS,
    STAGE_TRAINER_KEYS,
    TRAINER_KEYS_WITHOUT_EFFECT,
    Planner,
    is_recipe,
    stage_inputs,
    world_size,
)
from ranksrgan.pipeline.reporting import describe_plan, log_final_report, stored_stages, summary
from ranksrgan.pipeline.reuse import Decision, closest_record, decide
from ranksrgan.pipeline.stage import PlanError, Stage
from ranksrgan.pipeline.training import is_primary_process, make_trainer, run, run_stage

__all__ = [
    "NO_EFFECT_KEYS",
    "PATH_KEYS",
    "STAGE_TRAINER_KEYS",
    "TRAINER_KEYS_WITHOUT_EFFECT",
    "Decision",
    "PlanError",
    "Planner",
    "Stage",
    "blocking_problems",
    "check_values",
    "closest_record",
    "decide",
    "describe_plan",
    "is_primary_process",
    "is_recipe",
    "log_final_report",
    "make_logger",
    "make_trainer",
    "preflight",
    "run",
    "run_origin",
    "run_stage",
    "stage_inputs",
    "stored_stages",
    "summary",
    "unreached_overrides",
    "world_size",
]
