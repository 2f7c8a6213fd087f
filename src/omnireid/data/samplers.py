"""Training samplers: identity-balanced P x K, camera- and dataset-balanced, plain shuffling.

Every sampler takes only the labels it needs (a list of ints, one per training sample), draws from
its own generator seeded with ``(seed, epoch)`` -- so the same seed gives the same order -- and
works under DistributedDataParallel: all ranks build the same epoch, cut it into batches of
``batch_size`` and rank ``r`` takes batches ``r, r + world_size, ...`` (the epoch is trimmed so
every rank gets the same number). Call ``set_epoch(epoch)`` before each epoch. Use the sampler
with ``DataLoader(batch_size=batch_size, drop_last=True)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from omnireid.errors import UsageError


class _EpochSampler(Sampler[int]):
    """Shared machinery: per-epoch generation, caching and the split across ranks."""

    def __init__(self, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise UsageError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._cache: tuple[int, list[int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Use a different (but reproducible) order for ``epoch``."""
        self.epoch = epoch

    def _generate(self, rng: np.random.Generator) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError

    def epoch_indices(self) -> list[int]:
        """This rank's indices for the current epoch."""
        if self._cache is None or self._cache[0] != self.epoch:
            rng = np.random.default_rng([self.seed, self.epoch])
            full = self._generate(rng)
            self._cache = (self.epoch, self._shard(full))
        return self._cache[1]

    def _shard(self, indices: list[int]) -> list[int]:
        if self.world_size == 1:
            return indices
        b = self.batch_size
        num_batches = len(indices) // b
        per_rank = num_batches // self.world_size
        mine = range(self.rank, per_rank * self.world_size, self.world_size)
        return [i for k in mine for i in indices[k * b:(k + 1) * b]]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices())

    def __len__(self) -> int:
        return len(self.epoch_indices())


def _group(labels: Sequence[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        groups[int(label)].append(index)
    return dict(sorted(groups.items()))


class RandomIdentitySampler(_EpochSampler):
    """P identities x K images per batch (torchreid's ``RandomIdentitySampler`` semantics).

    Each identity's images are shuffled and cut into chunks of K (an identity with fewer than K
    images is filled up by drawing with replacement; a last incomplete chunk is dropped). Then,
    while at least P identities have chunks left, P of them are drawn at random and one chunk of
    each is emitted. Batches are consecutive runs of ``batch_size = P * K`` indices.

    Args:
        pids: identity label of every training sample.
        batch_size: P * K.
        num_instances: K.
    """

    def __init__(
        self, pids: Sequence[int], batch_size: int, num_instances: int, *,
        seed: int = 0, rank: int = 0, world_size: int = 1,
    ) -> None:
        super().__init__(batch_size, seed, rank, world_size)
        if num_instances < 1 or batch_size < num_instances:
            raise UsageError(f"need 1 <= num_instances <= batch_size, got {num_instances} and {batch_size}")
        if batch_size % num_instances:
            raise UsageError(f"batch_size ({batch_size}) must be a multiple of num_instances ({num_instances})")
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        self.index_by_pid = _group(pids)
        if len(self.index_by_pid) < self.num_pids_per_batch:
            raise UsageError(f"{len(self.index_by_pid)} identities cannot fill batches of "
                             f"{self.num_pids_per_batch} identities x {num_instances} images")

    def _generate(self, rng: np.random.Generator) -> list[int]:
        K = self.num_instances
        chunks: dict[int, list[list[int]]] = {}
        for pid, idxs in self.index_by_pid.items():
            pool = np.asarray(idxs)
            if len(pool) < K:
                pool = rng.choice(pool, size=K, replace=True)
            pool = rng.permutation(pool)
            n = len(pool) // K
            chunks[pid] = [pool[i * K:(i + 1) * K].tolist() for i in range(n)]
        available = sorted(chunks)
        out: list[int] = []
        while len(available) >= self.num_pids_per_batch:
            chosen = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            picked = [available[i] for i in chosen]
            for pid in picked:
                out.extend(chunks[pid].pop(0))
            available = [pid for pid in available if chunks[pid]]
        return out


class _BalancedSampler(_EpochSampler):
    """Batches made of equal shares from several groups (cameras or datasets)."""

    def __init__(
        self, labels: Sequence[int], batch_size: int, groups_per_batch: int | None,
        seed: int, rank: int, world_size: int, what: str,
    ) -> None:
        super().__init__(batch_size, seed, rank, world_size)
        self.index_by_group = _group(labels)
        n = len(self.index_by_group) if not groups_per_batch else groups_per_batch
        if n > len(self.index_by_group):
            raise UsageError(f"{n} {what}s per batch requested but the data has {len(self.index_by_group)}")
        if batch_size % n:
            raise UsageError(f"batch_size ({batch_size}) must be a multiple of the {what}s per batch ({n})")
        self.groups_per_batch = n
        self.per_group = batch_size // n
        small = [g for g, idx in self.index_by_group.items() if len(idx) < self.per_group]
        if small:
            raise UsageError(f"{what}(s) {small} have fewer than {self.per_group} images for one batch")

    def _generate(self, rng: np.random.Generator) -> list[int]:
        remaining = {g: list(rng.permutation(idx)) for g, idx in self.index_by_group.items()}
        groups = sorted(remaining)
        out: list[int] = []
        while True:
            chosen = [groups[i] for i in rng.choice(len(groups), size=self.groups_per_batch, replace=False)]
            stop = False
            for g in chosen:
                out.extend(int(i) for i in remaining[g][: self.per_group])
                del remaining[g][: self.per_group]
                if len(remaining[g]) < self.per_group:
                    stop = True
            if stop:
                return out


class CameraBalancedSampler(_BalancedSampler):
    """Each batch draws ``batch_size / cameras_per_batch`` images from each of
    ``cameras_per_batch`` random cameras (torchreid's ``RandomDomainSampler``); the epoch ends when a
    chosen camera runs out of images. ``cameras_per_batch=None`` uses every camera in every batch.
    """

    def __init__(
        self, camids: Sequence[int], batch_size: int, cameras_per_batch: int | None = None, *,
        seed: int = 0, rank: int = 0, world_size: int = 1,
    ) -> None:
        super().__init__(camids, batch_size, cameras_per_batch, seed, rank, world_size, "camera")


class DatasetBalancedSampler(_BalancedSampler):
    """Each batch has ``batch_size / num_datasets`` images of every source dataset (torchreid's
    ``RandomDatasetSampler``); the epoch ends when one source runs out.
    """

    def __init__(
        self, dsetids: Sequence[int], batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
    ) -> None:
        super().__init__(dsetids, batch_size, None, seed, rank, world_size, "dataset")


class ShuffleSampler(_EpochSampler):
    """A seeded random permutation of ``range(num_samples)`` per epoch."""

    def __init__(
        self, num_samples: int, batch_size: int = 1, *, seed: int = 0, rank: int = 0, world_size: int = 1,
    ) -> None:
        super().__init__(batch_size, seed, rank, world_size)
        self.num_samples = num_samples

    def _generate(self, rng: np.random.Generator) -> list[int]:
        return rng.permutation(self.num_samples).tolist()
