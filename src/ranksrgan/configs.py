"""Config values as plain Python: what the modules store in checkpoints and pass to libraries."""

from __future__ import annotations

from typing import Any

__all__ = ["plain"]


def plain(value: Any) -> Any:
    """OmegaConf lists / dicts -> Python lists / dicts (interpolations resolved); anything else as is.

    Checkpoints then load with ``weights_only=True``, and libraries that check for ``dict`` /
    ``tuple`` (albumentations) accept the values.

    >>> from omegaconf import OmegaConf
    >>> plain(OmegaConf.create({"a": [1, "${b}"], "b": 2}))
    {'a': [1, 2], 'b': 2}
    >>> plain((1, 2))
    (1, 2)
    """
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
