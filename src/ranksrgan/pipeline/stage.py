"""A stage of a run (one trainable unit, its key) and the error that lists planning problems."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

import ranksrgan

__all__ = ["PlanError", "Stage"]


class PlanError(ValueError):
    """Problems found while planning or checking a run, one per line (all of them, not the first)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Stage:
    """One trainable unit.

    Attributes:
        kind: "ranker" or "generator".
        name: its config option (``blur``, ``srresnet``, ``rankrbri``...).
        cfg: the resolved stage config (``ranker`` or ``gan`` section, seed, the trainer settings
            that change results[, data]).
        depends_on: stages whose artifacts it reads.
        inputs: ``{path: fingerprint}`` of the files and folders it reads.
        world_size: processes of the run (devices × nodes).
        ignored: dotted config keys left out of the key (no effect on the result).
        origin: the run's ``experiment`` and ``data`` options (:func:`run_origin`); recorded, not in the key.
        seed: the seed of a compared GAN stage repeated once per entry of the top-level ``seeds``
            (it is ``cfg.seed``, hence in the key); None for a stage planned once.
    """

    kind: str
    name: str
    cfg: DictConfig
    depends_on: list[Stage] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    world_size: int = 1
    ignored: tuple[str, ...] = ()
    origin: dict[str, str | None] = field(default_factory=dict)
    seed: int | None = None

    @property
    def label(self) -> str:
        """``name``, or ``name@seed`` for a stage repeated per seed (unique within a plan)."""
        return self.name if self.seed is None else f"{self.name}@{self.seed}"

    @property
    def section(self) -> DictConfig:
        return self.cfg.ranker if self.kind == "ranker" else self.cfg.gan

    @property
    def steps(self) -> int:
        """Ranker steps, or generator iterations (generator updates)."""
        return int(self.section.max_steps)

    def payload(self) -> dict[str, Any]:
        """Everything the key hashes (also stored in the stage's record, to explain changes)."""
        config = OmegaConf.to_container(self.cfg, resolve=True)
        for dotted in self.ignored:
            node = config
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(leaf, None)
        return {
            "kind": self.kind,
            "config": config,
            "inputs": dict(sorted(self.inputs.items())),
            "deps": {d.name: d.key for d in self.depends_on},
            "world_size": self.world_size,
            "version": ranksrgan.__version__,
        }

    @property
    def key(self) -> str:
        payload = json.dumps(self.payload(), sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]
