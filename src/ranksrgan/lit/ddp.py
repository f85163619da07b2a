"""DDP for GANs without ``find_unused_parameters``.

Lightning's plain DDP wraps the whole LightningModule, so in the discriminator step the generator's
parameters look "unused" and DDP stops with an error. :class:`GANDDPStrategy` instead wraps the
generator and the discriminator in their own ``DistributedDataParallel`` (via the module's
``wrap_for_ddp``), so each wrapper sees all of its parameters used in its own backward. Frozen
networks (VGG, Rankers) are not wrapped: they have no gradients to synchronise.
"""

from __future__ import annotations

from pytorch_lightning.strategies import DDPStrategy
from torch.nn.parallel import DistributedDataParallel

__all__ = ["GANDDPStrategy"]


class GANDDPStrategy(DDPStrategy):
    """``DDPStrategy`` that wraps submodules via ``lightning_module.wrap_for_ddp(wrap)``.

    Use for :class:`ranksrgan.lit.sr_module.SRModule`; modules without ``wrap_for_ddp`` get
    Lightning's usual whole-module wrapping.
    """

    strategy_name = "gan_ddp"

    def __init__(self, *args, **kwargs) -> None:
        unsupported = [
            k
            for k in ("ddp_comm_hook", "ddp_comm_state", "ddp_comm_wrapper", "model_averaging_period")
            if kwargs.get(k) is not None
        ]
        if unsupported:
            raise ValueError(f"GANDDPStrategy does not support {', '.join(unsupported)}")
        super().__init__(*args, **kwargs)

    def configure_ddp(self) -> None:
        module = self.model
        if not hasattr(module, "wrap_for_ddp"):
            super().configure_ddp()
            return
        device_ids = self.determine_ddp_device_ids()
        module.wrap_for_ddp(lambda m: DistributedDataParallel(m, device_ids=device_ids, **self._ddp_kwargs))

    def teardown(self) -> None:
        module = self.lightning_module
        if module is not None and hasattr(module, "wrap_for_ddp"):
            module.unwrap_ddp()
        super().teardown()
