"""LightningModules: the Ranker (``ranker_module``) and the SR generator / GAN (``sr_module``)."""

__all__: list[str] = []
