"""Training samples as a pure function of (seed, epoch, index), so that a resumed run draws what
an uninterrupted one would have drawn.

Every training data set of the library takes a :data:`SampleKey` ``(index, item_seed)`` from
:class:`EpochSampler` and makes all its random draws (window, level pair, flips, noise seed) from
a ``torch.Generator`` seeded with ``item_seed`` (:func:`key_generator`); nothing comes from the
global RNG, in the main process or in a DataLoader worker, so worker seeds, the number of
workers and the RNG use of the model do not change the data. Epoch ``e`` visits the indices in
the order ``randperm(length)`` of a generator seeded with ``(seed, e)``, and item ``i`` of epoch
``e`` has ``item_seed = hash(seed, e, i)``.

A run killed mid-epoch and resumed needs two numbers to go on: the epoch and the batches of it
already trained. :class:`ResumableLoader` stores them in Lightning's checkpoint (the fit loop
saves the ``state_dict`` of every training loader that has one and loads it before iterating
again) and its sampler then starts at that batch. The sampler counts epochs itself (one per
iteration) rather than taking Lightning's: a run resumed from a checkpoint written at the last
batch of an epoch iterates the (empty) rest of that epoch and then counts one epoch more than an
uninterrupted run (Lightning 2.6), while the data must go on with the next epoch.

A plain ``int`` index (a data set used on its own, e.g. ``dataset[3]``) draws its item seed from
torch's global RNG: ``torch.manual_seed`` fixes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["SampleKey", "item_seed", "key_generator", "EpochSampler", "ResumableLoader", "epoch_state", "load_epoch_state"]

#: What :class:`EpochSampler` yields and the training data sets take: ``(index, item_seed)``.
SampleKey = tuple[int, int]

_SEED_BITS = 62


def item_seed(*parts: int) -> int:
    """A 62-bit seed that depends on every one of the non-negative integers ``parts`` (numpy's
    ``SeedSequence`` hash: neighbouring inputs give unrelated seeds)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return ((int(state[0]) << 32) | int(state[1])) >> (64 - _SEED_BITS)


def key_generator(key: int | SampleKey) -> tuple[int, torch.Generator]:
    """``(index, CPU generator)`` for a data set item: seeded with the key's item seed, or for a
    plain index with a seed drawn from torch's global RNG."""
    if isinstance(key, tuple):
        index, seed = key
    else:
        index, seed = key, int(torch.randint(0, 2**_SEED_BITS, ()))
    return int(index), torch.Generator().manual_seed(int(seed))


class EpochSampler(Sampler[SampleKey]):
    """Keys ``(index, item_seed)`` of one epoch: every index of ``range(length)`` once, in the
    order of a permutation seeded with ``(seed, epoch)`` (``shuffle``) or in order.

    Each iteration is the next epoch (``epoch`` is the one the next iteration yields,
    ``last_epoch`` the one of the iteration under way); there is no ``set_epoch``, see the module
    docstring. :meth:`resume` makes the next iteration the rest of an epoch from key ``start`` on.

    Args:
        length: items per epoch.
        seed: the run's seed (any non-negative integer).
        shuffle: a new order every epoch (False: ``0, 1, ..., length-1``; item seeds still differ).
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True) -> None:
        if length < 1:
            raise ValueError(f"EpochSampler needs at least one item, got length {length}")
        self.length, self.seed, self.shuffle = int(length), int(seed), shuffle
        self.epoch, self.start, self.last_epoch = 0, 0, -1

    def __len__(self) -> int:
        return self.length

    def resume(self, epoch: int, start: int) -> None:
        """Start the next iteration at key ``start`` of epoch ``epoch``."""
        self.epoch, self.start = int(epoch), max(0, int(start))

    def order(self, epoch: int) -> torch.Tensor:
        """The indices of epoch ``epoch`` in visiting order (``length`` int64)."""
        if not self.shuffle:
            return torch.arange(self.length)
        return torch.randperm(self.length, generator=torch.Generator().manual_seed(item_seed(self.seed, epoch)))

    def keys(self, epoch: int, start: int = 0) -> Iterator[SampleKey]:
        """The keys of epoch ``epoch`` from position ``start`` on."""
        for index in self.order(epoch)[start:].tolist():
            yield index, item_seed(self.seed, epoch, index)

    def __iter__(self) -> Iterator[SampleKey]:
        epoch, start = self.epoch, self.start
        self.epoch, self.start, self.last_epoch = epoch + 1, 0, epoch
        return self.keys(epoch, start)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` whose position goes into Lightning's checkpoints.

    ``state_dict()`` is ``{"epoch": e, "batches": b}``: the sampler's epoch under way and the
    batches of it trained, as ``trained()`` reports them (the trainer's count: the loader itself
    runs ahead of training by its prefetched batches). ``load_state_dict`` makes the next
    iteration start at batch ``b`` of epoch ``e``. Under a distributed sampler wrapper (DDP) the
    state is empty: such a run resumes with a new epoch.

    Args:
        dataset: a data set taking :data:`SampleKey` keys.
        trained: ``() -> batches of the current epoch trained``.
        **kwargs: the ``DataLoader`` arguments, ``sampler`` (an :class:`EpochSampler`) among them
            (a keyword: Lightning replaces it by a distributed wrapper under DDP).
    """

    def __init__(self, dataset: Any, trained: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.trained = trained

    def state_dict(self) -> dict[str, int]:
        return epoch_state(self.sampler, self.trained())

    def load_state_dict(self, state: dict[str, int]) -> None:
        load_epoch_state(self.sampler, state, int(self.batch_size or 1))


def epoch_state(sampler: Any, batches: int) -> dict[str, int]:
    """``{"epoch", "batches"}`` of an :class:`EpochSampler` ({} for any other sampler)."""
    if not isinstance(sampler, EpochSampler):
        return {}
    return {"epoch": max(sampler.last_epoch, 0), "batches": int(batches)}


def load_epoch_state(sampler: Any, state: dict[str, int], batch_size: int) -> None:
    """Make the next iteration of an :class:`EpochSampler` go on where :func:`epoch_state` was taken."""
    if isinstance(sampler, EpochSampler) and state:
        sampler.resume(int(state["epoch"]), int(state["batches"]) * batch_size)
