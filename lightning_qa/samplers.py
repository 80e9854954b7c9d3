"""Samplers and the resumable training loader.

Training samplers shard windows over the ranks themselves (Lightning's injected sampler would always
shuffle and undo length grouping); evaluation shards whole examples, so each example's windows meet on
one device and are scored once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

from torch.utils.data import DataLoader, DistributedSampler


class ExampleShardSampler(DistributedSampler):
    """Evaluation sampler: each rank gets whole examples (all their windows), each example exactly once,
    in order of decreasing length so that dynamic padding wastes little.

    Being a `DistributedSampler`, Lightning keeps it instead of injecting its own, which would duplicate
    features to even out ranks and split an example's windows across devices.
    """

    def __init__(
        self, example_index: Sequence[int], lengths: Sequence[int], num_replicas: int = 1, rank: int = 0
    ) -> None:
        self.num_replicas, self.rank = num_replicas, rank
        n_examples = (max(example_index) + 1) if len(example_index) else 0
        lo, hi = n_examples * rank // num_replicas, n_examples * (rank + 1) // num_replicas
        mine = [i for i, e in enumerate(example_index) if lo <= e < hi]
        self.indices = sorted(mine, key=lambda i: -lengths[i])

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)

    def set_epoch(self, epoch: int) -> None:
        pass


def resume_order(sampler: DistributedSampler, order: list[int]) -> Iterator[int]:
    """The epoch's order, less the windows this rank already trained on when a run resumes mid-epoch
    (`ResumableLoader.load_state_dict` sets `resume_at` once; later epochs are whole again)."""
    epoch, done = getattr(sampler, "resume_at", None) or (-1, 0)
    sampler.resume_at = None
    return iter(order[done:] if epoch == sampler.epoch else order)


class ShuffledSampler(DistributedSampler):
    """torch's `DistributedSampler` (per-epoch seeded shuffle, even shards) that can resume mid-epoch."""

    def __iter__(self) -> Iterator[int]:
        return resume_order(self, list(super().__iter__()))


class ResumableLoader(DataLoader):
    """The training DataLoader, resumable at the exact batch. Lightning saves its `state_dict` (the epoch and
    the batches handed out in it) in every checkpoint, mid-epoch ones included, and restores it on resume;
    the sampler, whose order is a function of (seed, epoch), then skips those batches instead of replaying
    the epoch from its start. (Lightning iterates sized loaders without prefetching, so the count is exact.)"""

    _served = 0

    def __iter__(self) -> Iterator[Any]:
        epoch, done = getattr(self.sampler, "resume_at", None) or (-1, 0)
        self._served = done // self.batch_size if epoch == self.sampler.epoch else 0
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.resume_at = (state["epoch"], state["batches"] * self.batch_size)


class LengthGroupedSampler(DistributedSampler):
    """Training sampler: shuffled buckets of similar length, so batches carry little padding while the
    epoch order stays random. Seeded by (seed, epoch), so a resumed run draws the same order.

    With several ranks, global batches (batch_size x num_replicas windows of similar length) are split
    between the ranks, which all get the same number of windows. Being a `DistributedSampler`, Lightning
    keeps it rather than wrapping it in a shuffling sampler that would undo the grouping.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 42,
        num_replicas: int = 1,
        rank: int = 0,
        bucket_batches: int = 50,
    ) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.num_replicas, self.rank, self.bucket_batches = num_replicas, rank, bucket_batches
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        order += order[: len(self) * self.num_replicas - len(order)]  # every rank gets as many windows
        step = self.batch_size * self.num_replicas
        batches = []
        for b in range(0, len(order), step * self.bucket_batches):
            bucket = sorted(order[b : b + step * self.bucket_batches], key=lambda i: self.lengths[i])
            batches += [bucket[j : j + step] for j in range(0, len(bucket), step)]
        # only the final bucket can end in a short batch: keep it last so the DataLoader's chunks of
        # batch_size line up with these batches
        full = [b for b in batches if len(b) == step]
        rng.shuffle(full)
        mine = []
        for batch in full + [b for b in batches if len(b) < step]:
            share = len(batch) // self.num_replicas
            mine += batch[self.rank * share : (self.rank + 1) * share]
        return resume_order(self, mine)
