"""One LightningModule for SRResNet pre-training, SRGAN, ESRGAN and RankSRGAN (any number of Rankers).

Every loss is a weight in the config; a weight of 0 removes the term (and, for the GAN loss, the
discriminator and its optimiser). One training batch is one ITERATION = one generator update
(plus one discriminator update when the GAN loss is on). ``iteration`` counts them; the LR
schedule (halve at the milestones) is stepped once per iteration, and the pipeline sets Lightning's
``max_steps`` to ``iterations * optimizer_steps_per_iteration`` because Lightning counts every
optimiser step. Validation rounds the outputs to 8 bits and computes PSNR, SSIM, NIQE and chroma
in the registry's ``PIRM`` convention (:mod:`ranksrgan.metrics.registry`), exactly as the evaluation
table scores the same weights on the same images: the curves of the paper's Figs. 5, 12, 15 and 22.

Training curves (``train/<term>`` unweighted, ``train/loss_g``, ``train/d_loss``, ``train/d_real``
and ``train/d_fake`` (mean logits), ``train/lr``, ``iteration``) are logged on the iterations whose
step metrics Lightning writes (every ``trainer.log_every_n_steps``).

Diagnostics for tuning the loss weights (logged like every other curve, so they reach W&B / CSV):

* ``train/grad_sr/<term>``: every ``grad_norm_interval`` iterations, the L2 norm (over the whole
  batch) of the gradient of each WEIGHTED generator loss term with respect to the SR image, and of
  the weighted total (``train/grad_sr/total``). It says how hard each term pulls the image. Adam
  normalises each update by the gradient's running magnitude, so the direction of the update is set
  by the term with the largest pull whatever its weight; a rank or GAN pull far above the content
  pull (pixel / perceptual) means the generator follows the Ranker / discriminator alone. Each
  term costs one extra backward pass through its loss network (not through the generator).
* ``val/ranker/<name>``: each Ranker's mean score on the (8-bit) validation outputs; higher =
  worse, so it should fall while the rank loss works and must not fall while NIQE rises.
* ``val/ranker_hr/<name>``: the same Ranker's mean score on the HR images. When the outputs score
  better (lower) than HR by more than ``rank.hr_alarm_margin`` (Ranker score units), a warning
  names the Rankers and the iteration: the generator may be exploiting a Ranker's blind spots
  (reward hacking) rather than looking more like HR.
* ``val/chroma``: the registry's ``chroma`` (the evaluation table's): the outputs' colourfulness
  over HR's, 1 = as colourful as HR, 0 = grey. Y metrics (PSNR, SSIM, NIQE) cannot see colour.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from ranksrgan.checkpoints import load_generator
from ranksrgan.configs import plain
from ranksrgan.io import write_image
from ranksrgan.losses import GANLoss, RankLoss, build_generator_losses
from ranksrgan.metrics.base import PerImageMean
from ranksrgan.metrics.registry import METRICS, PIRM
from ranksrgan.nets import build_net, net_spec
from ranksrgan.ops.color import quantize_uint8
from ranksrgan.ops.resize import imresize
from ranksrgan.viz import labelled_strip

__all__ = ["SRModule", "MeanScore", "HR_ALARM_MARGIN"]

log = logging.getLogger(__name__)

#: Default ``rank.hr_alarm_margin``, in Ranker score units (higher = worse): the paper's pair
#: margin, the gap a Ranker is trained to keep between neighbouring quality levels.
HR_ALARM_MARGIN = 0.5
#: Validation metrics (registry names, ``PIRM`` convention), logged as ``val/<name>``.
VAL_METRICS = ("psnr", "ssim", "niqe", "chroma")

# Keys of frozen helper networks that are NOT stored in checkpoints (they are rebuilt from the
# config and their own files): the VGG feature extractor and the Rankers.
_FROZEN_PREFIXES = ("losses.perceptual.", "losses.rank/")


class MeanScore(PerImageMean):
    """Mean of per-image scores (e.g. a Ranker's) over all images and processes."""

    def update(self, scores: torch.Tensor) -> None:
        self._accumulate(scores)


class SRModule(pl.LightningModule):
    """Super-resolution GAN with pixel, perceptual, adversarial and rank-content losses.

    Args:
        generator: ``{"name": "SRResNet"|"RRDBNet", "kwargs": {...}}``; LR ``B×3×h×w`` [0,1] -> SR.
        scale: SR factor (must match the generator's).
        pixel, perceptual, gan, rank: the loss sections, keyword arguments of the terms of
            :func:`ranksrgan.losses.build_generator_losses` (whose signatures hold the defaults):
            ``pixel``: :class:`~ranksrgan.losses.PixelLoss`; ``perceptual``:
            :func:`~ranksrgan.losses.build_perceptual_loss`; ``gan``: ``{"weight", "kind"}``;
            ``rank``: ``{"function", "reduction", "floor", "jitter"}`` of every Ranker's
            :class:`~ranksrgan.losses.RankLoss`, and ``hr_alarm_margin`` (the validation warning
            above; default :data:`HR_ALARM_MARGIN`).
        discriminator: ``{"name": "VGGDiscriminator", "kwargs": {...}}``; used when gan weight > 0.
        rankers: list of ``{"checkpoint": path, "weight": w, "name": label}``; frozen, eval mode.
        optimizer: ``{"lr": 1e-4, "betas": [0.9, 0.99], "weight_decay": 0, "fused": False}`` for G
            and D alike; ``fused``: torch's single-kernel Adam (the same update, fewer kernel launches).
        lr_milestones: iterations (generator updates) at which the LR is multiplied by ``lr_gamma``.
        pretrained_generator: checkpoint to initialise G from (ours or the authors' release).
        num_logged_images: validation images logged as bicubic | SR | HR strips, captioned, in
            ``samples/strip_<image stem>_it<iteration>.png`` under the trainer's folder.
        method: the name of the SR panel's caption (the recipe's name).
        channels_last: use the channels-last memory format for all networks and their inputs.
        loss_networks_bf16: run the frozen loss networks (VGG / LPIPS / DISTS features and the
            Rankers) under bf16 autocast even when the trainer's precision is 32-true; their loss
            values come back as float32. (Under ``bf16-mixed`` everything is bf16 already.)
        nan_check_interval: iterations between host-side checks of the NaN/Inf flags (each check
            synchronises the GPU); the error names the exact first bad iteration and loss.
        grad_norm_interval: log ``train/grad_sr/<term>`` (module docstring) every this many
            iterations (at iterations ``k * interval - 1``, 0-based, which a trainer's
            ``log_every_n_steps`` equal to or dividing the interval writes out at once); 0 turns it
            off (it costs one extra backward pass per loss term).
        ema_decay: keep ``generator_ema``, an exponential moving average of the generator's
            weights, updated after every generator step as ``ema = decay * ema + (1 - decay) * w``
            (buffers copied); 0 = off. Validation scores it, and :func:`~ranksrgan.checkpoints.load_generator`
            of a checkpoint returns it (training resumes the raw weights). 0.999 is BasicSR's.
    """

    def __init__(
        self,
        generator: dict,
        scale: int = 4,
        pixel: dict | None = None,
        perceptual: dict | None = None,
        gan: dict | None = None,
        discriminator: dict | None = None,
        rank: dict | None = None,
        rankers: Sequence[dict] = (),
        optimizer: dict | None = None,
        lr_milestones: Sequence[int] = (50_000, 100_000, 200_000, 300_000),
        lr_gamma: float = 0.5,
        pretrained_generator: str | None = None,
        num_logged_images: int = 3,
        channels_last: bool = False,
        loss_networks_bf16: bool = False,
        nan_check_interval: int = 10,
        grad_norm_interval: int = 0,
        ema_decay: float = 0.0,
        method: str = "SR",
    ) -> None:
        super().__init__()
        args = {k: plain(v) for k, v in locals().items() if k not in ("self", "__class__")}
        self.save_hyperparameters(args)
        self.automatic_optimization = False
        hp = self.hparams
        self.optim_cfg = {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0, "fused": False, **(hp.optimizer or {})}

        self.generator = build_net(hp.generator)
        if net_spec(self.generator)["kwargs"].get("scale", scale) != scale:
            raise ValueError(f"scale={scale} but the generator upscales x{net_spec(self.generator)['kwargs']['scale']}")
        if pretrained_generator:
            source = load_generator(pretrained_generator)
            try:
                self.generator.load_state_dict(source.state_dict())
            except RuntimeError as err:
                raise ValueError(f"{pretrained_generator}: does not fit the configured generator: {err}") from None
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off), got {ema_decay}")
        #: exponential moving average of the generator's weights (None when ``ema_decay`` is 0)
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval() if ema_decay > 0 else None
        self.discriminator = None
        if float((hp.gan or {}).get("weight", 0.0)) > 0:
            if not hp.discriminator:
                raise ValueError("gan.weight > 0 needs a discriminator config")
            self.discriminator = build_net(hp.discriminator)
        self.ranker_specs = [dict(r) for r in hp.rankers]
        for spec in self.ranker_specs:
            if not spec.get("checkpoint"):
                raise ValueError(f"Ranker entry {spec} has no checkpoint (the pipeline resolves names to files)")
        rank = dict(hp.rank or {})
        #: the validation warning's threshold: mean Ranker score on HR minus on the outputs
        self.hr_alarm_margin = float(rank.pop("hr_alarm_margin", HR_ALARM_MARGIN))
        #: the generator's loss terms, each owning its weight (:func:`ranksrgan.losses.build_generator_losses`)
        self.losses = build_generator_losses(
            hp.pixel,
            hp.perceptual,
            hp.gan,
            rank,
            [(name, spec["checkpoint"], spec.get("weight", 0.0)) for name, spec in zip(self._ranker_labels(), self.ranker_specs)],
            self.discriminator,
        )
        if grad_norm_interval < 0:
            raise ValueError(f"grad_norm_interval must be >= 0 (0 = off), got {grad_norm_interval}")
        self.val_metrics = nn.ModuleDict({name: METRICS[name].make(PIRM, scale) for name in VAL_METRICS})
        # one mean score per Ranker (index-keyed: Ranker names may hold characters a module name cannot)
        self.val_ranker_scores = nn.ModuleList([MeanScore() for _ in self.ranker_specs])
        self.val_ranker_hr_scores = nn.ModuleList([MeanScore() for _ in self.ranker_specs])
        self._first_bad: torch.Tensor | None = None
        self._bad_names: list[str] = []
        self._ddp_generator: nn.Module | None = None
        self._ddp_discriminator: nn.Module | None = None

    # ------------------------------------------------------------------ bookkeeping
    @property
    def optimizer_steps_per_iteration(self) -> int:
        """Lightning optimiser steps per generator update: 2 with a discriminator, else 1."""
        return 2 if self.discriminator is not None else 1

    @property
    def iteration(self) -> int:
        """Generator updates done so far (what ``max_steps`` and the LR milestones count)."""
        return self.global_step // self.optimizer_steps_per_iteration

    def wrap_for_ddp(self, wrap: Callable[[nn.Module], nn.Module]) -> None:
        """Wrap G and D separately for DDP (see :class:`ranksrgan.lit.ddp.GANDDPStrategy`).

        Each DDP wrapper then sees all of its parameters used in every backward, so plain DDP
        works without ``find_unused_parameters``. The wrappers are not registered as submodules:
        checkpoints keep the plain ``generator.*`` / ``discriminator.*`` keys.
        """
        object.__setattr__(self, "_ddp_generator", wrap(self.generator))
        if self.discriminator is not None:
            object.__setattr__(self, "_ddp_discriminator", wrap(self.discriminator))

    def unwrap_ddp(self) -> None:
        """Drop the DDP wrappers (after ``fit``): the plain modules are used again."""
        object.__setattr__(self, "_ddp_generator", None)
        object.__setattr__(self, "_ddp_discriminator", None)

    def _g(self) -> nn.Module:
        return self._ddp_generator if self._ddp_generator is not None else self.generator

    def _d(self) -> nn.Module:
        return self._ddp_discriminator if self._ddp_discriminator is not None else self.discriminator

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """LR ``B×3×h×w`` in [0, 1] -> SR ``B×3×(s·h)×(s·w)`` (not clamped)."""
        return self.generator(lr)

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            for net in (self.generator, self.generator_ema, self.discriminator, self.losses):
                if net is not None:
                    net.to(memory_format=torch.channels_last)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.hparams.channels_last and self.training:
            batch = {
                k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.dim() == 4 else v
                for k, v in batch.items()
            }
        return batch

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        cfg = self.optim_cfg
        kwargs = {"lr": cfg["lr"], "betas": tuple(cfg["betas"]), "weight_decay": cfg["weight_decay"]}
        if cfg["fused"]:
            kwargs["fused"] = True
        optimizers = [torch.optim.Adam(self.generator.parameters(), **kwargs)]
        if self.discriminator is not None:
            optimizers.append(torch.optim.Adam(self.discriminator.parameters(), **kwargs))
        schedulers = [
            torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(self.hparams.lr_milestones), gamma=self.hparams.lr_gamma)
            for opt in optimizers
        ]
        return optimizers, schedulers

    def _ranker_labels(self) -> list[str]:
        names = [str(spec.get("name") or "ranker").replace(".", "_") for spec in self.ranker_specs]
        return [f"{n}{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]

    def ranker_names(self) -> list[str]:
        """The label of each Ranker in logs: its ``name`` (``ranker`` when unnamed; numbered when
        repeated; ``.`` written ``_``)."""
        return [name.removeprefix("rank/") for name in self.losses if name.startswith("rank/")]

    def rank_losses(self) -> list[RankLoss]:
        """The Rankers' terms, in the order of ``rankers``."""
        return [loss for name, loss in self.losses.items() if name.startswith("rank/")]

    @property
    def gan_loss(self) -> GANLoss | None:
        """The adversarial term, or None without a GAN term."""
        return self.losses["gan"] if "gan" in self.losses else None

    def term_weights(self) -> dict[str, float]:
        """The weight of each generator loss term, keyed like the terms of :meth:`generator_losses`."""
        return {name: loss.weight for name, loss in self.losses.items()}

    def generator_losses(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Generator loss for one batch: ``(weighted total, {name: unweighted term}, sr)``.

        Term names: the keys of :attr:`losses` whose weight is non-zero (``pixel``, ``perceptual``,
        ``gan``, ``rank/<Ranker name>``) and ``total`` (the weighted sum).
        """
        sr = self._g()(lr)
        terms: dict[str, torch.Tensor] = {}
        total = sr.new_zeros(())
        for name, loss in self.losses.items():
            if not loss.weight:
                continue
            with self._loss_network_precision(sr) if loss.uses_loss_network else contextlib.nullcontext():
                terms[name] = loss(sr, hr).float()
            total = total + loss.weight * terms[name]
        terms["total"] = total
        return total, terms, sr

    def _loss_network_precision(self, sr: torch.Tensor) -> contextlib.AbstractContextManager:
        """bf16 autocast for the frozen loss networks when ``loss_networks_bf16`` (else a no-op
        context that leaves the trainer's own autocast, if any, in force)."""
        if not self.hparams.loss_networks_bf16:
            return contextlib.nullcontext()
        return torch.autocast(sr.device.type, dtype=torch.bfloat16)

    def sr_gradient_norms(self, terms: dict[str, torch.Tensor], sr: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{term: ||d(weight * term) / d sr||_2}`` for the terms of :meth:`generator_losses` (and the
        total), keeping the graph for the generator's own backward pass."""
        weights = {**self.term_weights(), "total": 1.0}
        norms = {}
        for name, term in terms.items():
            if name not in weights or not term.requires_grad:
                continue
            (grad,) = torch.autograd.grad(weights[name] * term, sr, retain_graph=True, allow_unused=True)
            norms[name] = sr.new_zeros(()) if grad is None else grad.detach().float().norm()
        return norms

    def _track_finite(self, terms: dict[str, torch.Tensor]) -> None:
        """Record, on the device, the first iteration at which each loss term was NaN/Inf.

        Checking on the host every iteration would synchronise the GPU each step; the flags are
        read every ``nan_check_interval`` iterations instead (and the run then stops naming the
        exact first bad iteration and loss).
        """
        names = list(terms)
        values = torch.stack([t.detach().float().reshape(()) for t in terms.values()])
        if self._first_bad is None or self._bad_names != names:
            self._bad_names = names
            self._first_bad = torch.full((len(names),), -1, dtype=torch.long, device=values.device)
        bad = ~torch.isfinite(values) & (self._first_bad < 0)
        self._first_bad = torch.where(bad, torch.full_like(self._first_bad, self.iteration), self._first_bad)
        if (self.iteration + 1) % self.hparams.nan_check_interval == 0:
            self.check_finite()

    def check_finite(self) -> None:
        """Raise ``FloatingPointError`` naming the first iteration and loss that were NaN/Inf."""
        if self._first_bad is None:
            return
        first = self._first_bad.tolist()
        bad = [(step, name) for step, name in zip(first, self._bad_names) if step >= 0]
        if bad:
            step = min(s for s, _ in bad)
            names = ", ".join(n for s, n in bad if s == step)
            raise FloatingPointError(
                f"non-finite loss at generator step {step}: {names}; lower the learning rate or check the data"
            )

    def training_step(self, batch: dict, batch_idx: int) -> None:
        lr, hr = batch["lr"], batch["hr"]
        optimizers = self.optimizers()
        opt_g, opt_d = (optimizers[0], optimizers[1]) if isinstance(optimizers, list) else (optimizers, None)
        schedulers = self.lr_schedulers()
        schedulers = schedulers if isinstance(schedulers, list) else [schedulers]

        loss_g, terms, sr = self.generator_losses(lr, hr)
        interval = self.hparams.grad_norm_interval
        if interval and (self.iteration + 1) % interval == 0:
            self.log_dict({f"train/grad_sr/{k}": v for k, v in self.sr_gradient_norms(terms, sr).items()})
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.update_ema()

        if opt_d is not None:
            real_logits = self._d()(hr)
            fake_logits = self._d()(sr.detach())
            terms["d_loss"] = self.gan_loss.discriminator(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(terms["d_loss"])
            opt_d.step()
            logits = {"d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}

        self._track_finite(terms)
        for sched in schedulers:
            sched.step()
        if self._writes_step_logs():
            self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, prog_bar=False)
            if opt_d is not None:
                self.log_dict({f"train/{k}": v for k, v in logits.items()})
            self.log("train/loss_g", loss_g.detach())
            # Host numbers go in as CPU tensors: Lightning would copy a Python number to the GPU,
            # and that blocking copy waits for every queued kernel (a host sync per iteration).
            self.log("train/lr", torch.tensor(float(opt_g.param_groups[0]["lr"])))
            self.log("iteration", torch.tensor(float(self.iteration)))  # generator updates done, this one included

    @torch.no_grad()
    def update_ema(self) -> None:
        """``ema = decay * ema + (1 - decay) * w`` for every generator parameter; buffers copied.

        It reads the plain generator (not a DDP wrapper), whose weights are identical on every
        process, so the average is too."""
        if self.generator_ema is None:
            return
        decay = self.hparams.ema_decay
        ema = dict(self.generator_ema.named_parameters())
        names, weights = zip(*((n, p.detach()) for n, p in self.generator.named_parameters()))
        averaged = [ema[n] for n in names]
        torch._foreach_mul_(averaged, decay)
        torch._foreach_add_(averaged, weights, alpha=1.0 - decay)
        ema_buffers = dict(self.generator_ema.named_buffers())
        for name, buffer in self.generator.named_buffers():
            ema_buffers[name].copy_(buffer)

    def inference_generator(self) -> nn.Module:
        """The generator that validation scores and checkpoints publish: the EMA when kept."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def _writes_step_logs(self) -> bool:
        """Whether Lightning writes this iteration's step metrics (every ``log_every_n_steps``
        iterations, and when the run is stopping). The ``train/*`` scalars are logged on those
        iterations only: Lightning would discard them on the others, and each ``self.log`` costs
        host time (about 3 ms per iteration for all of them on a 2-core CPU). Without a trainer, or
        if Lightning's connector ever changes, every iteration logs."""
        connector = getattr(self._trainer, "_logger_connector", None) if self._trainer is not None else None
        return bool(getattr(connector, "should_update_logs", True))

    def on_train_end(self) -> None:
        self.check_finite()

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        lr, hr = batch["lr"], batch["hr"]
        # rounded to 8 bits as the evaluation table scores a saved output (ranksrgan.evaluation.evaluate)
        sr = quantize_uint8(self.inference_generator()(lr).float())
        for name, metric in self.val_metrics.items():
            if METRICS[name].full_reference:
                metric.update(sr, hr)
            else:
                metric.update(sr)
        for loss, mean, mean_hr in zip(self.rank_losses(), self.val_ranker_scores, self.val_ranker_hr_scores):
            mean.update(loss.ranker(sr))
            mean_hr.update(loss.ranker(hr))
        if batch_idx < self.hparams.num_logged_images:
            self._log_sample(lr[0], sr[0], hr[0], batch.get("name", [f"img{batch_idx}"])[0])

    def on_validation_epoch_end(self) -> None:
        for name, metric in self.val_metrics.items():
            self.log(f"val/{name}", metric.compute(), prog_bar=name in ("psnr", "niqe"), sync_dist=False)
            metric.reset()
        gaps = {}
        for name, mean, mean_hr in zip(self.ranker_names(), self.val_ranker_scores, self.val_ranker_hr_scores):
            sr_score, hr_score = mean.compute(), mean_hr.compute()
            self.log(f"val/ranker/{name}", sr_score, sync_dist=False)
            self.log(f"val/ranker_hr/{name}", hr_score, sync_dist=False)
            gaps[name] = float(hr_score - sr_score)
            mean.reset()
            mean_hr.reset()
        margin = self.hr_alarm_margin
        hacked = [f"{name} (by {gap:.3g})" for name, gap in gaps.items() if gap > margin]
        if hacked:
            log.warning(
                "iteration %d: the Rankers %s score the outputs better than HR by more than hr_alarm_margin=%g;"
                " the generator may be exploiting them (compare NIQE and the samples)",
                self.iteration,
                ", ".join(hacked),
                margin,
            )

    def _log_sample(self, lr: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, name: str) -> None:
        bicubic = imresize(lr.double(), size=tuple(hr.shape[-2:])).clamp(0, 1).to(sr.dtype)
        labels = ["bicubic", f"{self.hparams.method} it {self.iteration}", "HR"]
        strip = labelled_strip([bicubic, sr, hr], labels)
        safe = Path(str(name)).name  # the image's stem (names are "<folder>/<stem>")
        logger = self.logger
        if logger is not None and hasattr(logger, "log_image"):
            logger.log_image(
                key=f"val/{safe}",
                images=[strip],
                caption=[f"bicubic | {self.hparams.method} | HR  (iteration {self.iteration})"],
                step=self.global_step,
            )
        root = Path(self.trainer.default_root_dir) if self.trainer is not None else Path(".")
        if self.trainer is None or self.trainer.is_global_zero:
            write_image(root / "samples" / f"strip_{safe}_it{self.iteration:07d}.png", strip)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["ranksrgan_arch"] = net_spec(self.generator)
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(_FROZEN_PREFIXES)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Frozen helper networks are not stored: put the current (config-built) ones back so that
        # strict loading still checks every generator and discriminator key.
        state = checkpoint["state_dict"]
        for key, value in self.state_dict().items():
            if key.startswith(_FROZEN_PREFIXES):
                state[key] = value
