"""Ranker training (paper §3.2, §5.1): a Siamese Ranker on rank pairs, validated by SROCC.

Polarity: a HIGHER score means a WORSE image. Batches follow :mod:`ranksrgan.data.rank`
(``target = +1`` when ``img1`` is worse).

Losses:

* ``"margin"`` (the paper): ``margin_ranking_loss(s1, s2, target, margin)`` =
  ``mean(max(0, -target·(s1 - s2) + margin))``, margin 0.5. As in the authors' code the scores
  are clamped to ``[-score_clamp, score_clamp]`` (5) first, which bounds them: once a pair is
  separated by the margin inside that range it no longer moves the weights. ``score_clamp: null``
  turns the clamp off.
* ``"mse"`` (the "regression Ranker" ablation, §5.4): ``(mse(s1, value1) + mse(s2, value2)) / 2``
  on the raw label values (metric values for the SR family).

Pair forward (``pair_forward``): ``"separate"`` (the authors' code: ``netR(img1)``, then
``netR(img2)``; in training mode each pass normalises with its own batch statistics and updates
the running ones) or ``"joint"`` (ONE pass over ``cat([img1, img2])``: BatchNorm's statistics mix
both images of every pair).

Validation (every level of each location, ``{"images": B×L×3×p×p, "levels": B×L}``):

* ``val/srocc``: Spearman correlation between level labels and scores over all validation
  images (torchmetrics; ties in the labels get average ranks);
* ``val/pair_acc/{i}-{j}``: for levels ``i < j``, the fraction of locations whose level-``j``
  image scores strictly higher than its level-``i`` image (ties count as wrong);
  ``val/pair_acc``: the mean over all level pairs and locations (the authors' "aligned pair
  accuracy");
* ``val/score_mean/{i}``, ``val/score_std/{i}``: per-level score statistics (any logger), plus
  per-level score histograms (the paper's Fig. 13/14/20) to W&B (``wandb.Histogram``) or
  TensorBoard (``add_histogram``).

Optimiser: Adam (lr 1e-3, weight decay 1e-4) with StepLR halving every ``lr_step`` optimiser
steps (paper: 100k of 300k).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.aggregation import CatMetric
from torchmetrics.functional import spearman_corrcoef

from ranksrgan.nets import Ranker, net_spec

__all__ = ["PAIR_FORWARDS", "RankerModule", "pair_accuracy"]

LOSSES = ("margin", "mse")
PAIR_FORWARDS = ("separate", "joint")


def pair_accuracy(scores: torch.Tensor, levels: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """Per level pair ``(i, j)``, ``i < j``: fraction of rows where score(level j) > score(level i).

    Args:
        scores: ``N×L`` Ranker scores (higher = worse).
        levels: ``N×L`` level labels; each row holds every level ``0..L-1`` once.
    """
    order = levels.argsort(dim=1)
    by_level = scores.gather(1, order)
    num = by_level.shape[1]
    return {(i, j): (by_level[:, j] > by_level[:, i]).float().mean() for i, j in itertools.combinations(range(num), 2)}


class RankerModule(pl.LightningModule):
    """Trains ``self.ranker`` (:class:`ranksrgan.nets.ranker.Ranker`) on rank pairs.

    Args:
        variant: ``"vgg8"``, ``"vgg12"`` (paper default) or ``"vgg16"``.
        num_features: width of the first block (64 in the paper).
        loss: ``"margin"`` (margin ranking) or ``"mse"`` (regression on raw label values).
        margin: ranking margin ε (0.5).
        score_clamp: clamp scores to ``[-c, c]`` before the margin loss (5, as the authors' code);
            None: no clamp. Used by the margin loss only.
        lr: Adam learning rate.
        weight_decay: Adam weight decay (L2, as ``torch.optim.Adam``).
        betas: Adam betas.
        lr_step: StepLR period in optimiser steps.
        lr_gamma: StepLR factor.
        pair_forward: ``"separate"`` (two passes, the authors' code) or ``"joint"`` (one pass over
            both images of the pairs; see the module docstring).
    """

    def __init__(
        self,
        variant: str = "vgg12",
        num_features: int = 64,
        loss: str = "margin",
        margin: float = 0.5,
        score_clamp: float | None = 5.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        betas: Sequence[float] = (0.9, 0.999),
        lr_step: int = 100_000,
        lr_gamma: float = 0.5,
        pair_forward: str = "separate",
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        if pair_forward not in PAIR_FORWARDS:
            raise ValueError(f"pair_forward must be one of {PAIR_FORWARDS}, got {pair_forward!r}")
        if score_clamp is not None and score_clamp <= 0:
            raise ValueError(f"score_clamp must be > 0 or None, got {score_clamp}")
        if lr_step < 1:
            raise ValueError(f"lr_step must be >= 1, got {lr_step}")
        # plain Python values only: checkpoints must load with weights_only=True
        self.save_hyperparameters(
            {
                "variant": str(variant),
                "num_features": int(num_features),
                "loss": str(loss),
                "margin": float(margin),
                "score_clamp": None if score_clamp is None else float(score_clamp),
                "lr": float(lr),
                "weight_decay": float(weight_decay),
                "betas": [float(b) for b in betas],
                "lr_step": int(lr_step),
                "lr_gamma": float(lr_gamma),
                "pair_forward": str(pair_forward),
            }
        )
        self.ranker = Ranker(variant=self.hparams.variant, num_features=self.hparams.num_features)
        # validation rows (B×L) gathered over the epoch and across processes; shape kept (no NaN filter)
        self.val_scores = CatMetric(nan_strategy="disable")
        self.val_levels = CatMetric(nan_strategy="disable")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of ``B×3×H×W`` images in [0, 1] -> ``(B,)``; higher = worse."""
        return self.ranker(x)

    def pair_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(loss, s1, s2)`` of a training batch (see the module docstring)."""
        if self.hparams.pair_forward == "joint":
            s1, s2 = self.ranker(torch.cat([batch["img1"], batch["img2"]])).chunk(2)
        else:
            s1, s2 = self.ranker(batch["img1"]), self.ranker(batch["img2"])
        if self.hparams.loss == "mse":
            loss = 0.5 * (F.mse_loss(s1, batch["value1"].to(s1.dtype)) + F.mse_loss(s2, batch["value2"].to(s2.dtype)))
            return loss, s1, s2
        c = self.hparams.score_clamp
        if c is not None:
            s1, s2 = s1.clamp(-c, c), s2.clamp(-c, c)
        return F.margin_ranking_loss(s1, s2, batch["target"].to(s1.dtype), margin=self.hparams.margin), s1, s2

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, s1, s2 = self.pair_loss(batch)
        correct = ((s1 - s2) * batch["target"] > 0).float().mean()
        bs = s1.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log("train/pair_acc", correct, batch_size=bs)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        images, levels = batch["images"], batch["levels"]
        b, num = levels.shape
        scores = self.ranker(images.reshape(b * num, *images.shape[2:])).reshape(b, num)
        self.val_scores.update(scores.float())
        self.val_levels.update(levels.float())

    def on_validation_epoch_end(self) -> None:
        if self.val_scores.update_count == 0:
            return
        scores, levels = self.val_scores.compute(), self.val_levels.compute().long()
        self.val_scores.reset()
        self.val_levels.reset()
        if scores.dim() == 1:  # a single row
            scores, levels = scores[None], levels[None]
        srocc = spearman_corrcoef(scores.flatten(), levels.flatten().float())
        accs = pair_accuracy(scores, levels)
        self.log("val/srocc", srocc, sync_dist=False)
        self.log("val/pair_acc", torch.stack(list(accs.values())).mean())
        for (i, j), acc in accs.items():
            self.log(f"val/pair_acc/{i}-{j}", acc)
        per_level = [scores[levels == k] for k in range(levels.shape[1])]
        for k, s in enumerate(per_level):
            self.log(f"val/score_mean/{k}", s.mean())
            self.log(f"val/score_std/{k}", s.std() if s.numel() > 1 else torch.zeros((), device=s.device))
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
            self._log_histograms(per_level)

    def _log_histograms(self, per_level: list[torch.Tensor]) -> None:
        logger = self.logger
        if logger is None:
            return
        kind = type(logger).__name__
        if kind == "WandbLogger":
            import wandb

            logger.experiment.log(
                {f"val/score_hist/{k}": wandb.Histogram(s.cpu().numpy()) for k, s in enumerate(per_level)}
                | {"trainer/global_step": self.global_step}
            )
        elif kind == "TensorBoardLogger":
            for k, s in enumerate(per_level):
                logger.experiment.add_histogram(f"val/score_hist/{k}", s.cpu(), self.global_step)

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.ranker.parameters(), lr=hp.lr, betas=tuple(hp.betas), weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=hp.lr_step, gamma=hp.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the architecture so :func:`ranksrgan.checkpoints.load_ranker` can rebuild it."""
        checkpoint["ranksrgan_arch"] = net_spec(self.ranker)
