"""Samples to tensors: the dataset and loader every input format shares.

Images are decoded and augmented in worker processes and leave them as uint8
CHW tensors (a quarter of the bytes of float32); the training step converts
them on the device. Records are read at random by byte offset, image files by
path; nothing is loaded whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, default_collate

from roost.data.augment import Preprocess
from roost.data.channels import ChannelError, Sample
from roost.data.images import decode_rgb, limit_threads, read_rgb
from roost.data.parallel import arm_worker, worker_context
from roost.errors import UserError
from roost.formats import recordio


class ImageDataset(Dataset):
    """``(uint8 CHW image, target)``: a class id, or a float multi-hot vector when ``multi_label``."""

    def __init__(
        self,
        samples: list[Sample],
        rec_files: list[Path],
        preprocess: Preprocess,
        channels: int,
        num_classes: int,
        multi_label: bool = False,
        seed: int = 0,
    ) -> None:
        self.samples = samples
        self.rec_files = [Path(f) for f in rec_files]
        self.preprocess = preprocess
        self.channels = channels
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.seed = seed
        self._readers: dict[int, recordio.RecordReader] = {}
        self._rng: np.random.Generator | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.samples)

    def label_matrix(self) -> np.ndarray:
        """Targets of every sample: ``[N]`` class ids, or ``[N, num_classes]`` multi-hot."""
        if self.multi_label:
            return np.array([s.labels for s in self.samples], dtype=np.float32).reshape(-1, self.num_classes)
        return np.array([s.labels[0] for s in self.samples], dtype=np.int64)

    def _per_process(self) -> None:
        # file handles and random streams must not be shared across processes:
        # each worker opens its own, and seeds its stream from its torch seed,
        # which DataLoader makes distinct per worker (and per run)
        if self._pid != os.getpid():
            self._readers = {}
            self._rng = np.random.default_rng([self.seed, torch.initial_seed() % (2**63)])
            self._pid = os.getpid()

    def _decode(self, s: Sample) -> np.ndarray:
        if s.rec >= 0:
            if s.rec not in self._readers:
                self._readers[s.rec] = recordio.RecordReader(self.rec_files[s.rec])
            try:
                _, data = recordio.unpack(self._readers[s.rec].read_at(int(s.where)))
            except recordio.ImageRecordError as err:
                raise ChannelError(f"{s.describe(self.rec_files)}: {err}") from None
            img = decode_rgb(data, self.channels)
        else:
            img = read_rgb(str(s.where), self.channels)
        if img is None:
            raise ChannelError(f"{s.describe(self.rec_files)}: the image cannot be decoded")
        return img

    def __getitem__(self, i: int):
        try:
            return self._item(i)
        except UserError as err:
            # raised in a worker, it would reach the training loop as a traceback text; as data it arrives whole
            return BadSample(str(err))

    def _item(self, i: int):
        self._per_process()
        s = self.samples[i]
        assert self._rng is not None  # set by _per_process
        img = self.preprocess(self._decode(s), self._rng)
        tensor = torch.from_numpy(img).unsqueeze(0) if img.ndim == 2 else torch.from_numpy(img).permute(2, 0, 1)
        target = torch.tensor(s.labels, dtype=torch.float32) if self.multi_label else int(s.labels[0])
        return tensor.contiguous(), target


@dataclass(frozen=True)
class BadSample:
    """A sample that could not be read: what the user's error said."""

    message: str


def _collate(items: list):
    bad = next((item for item in items if isinstance(item, BadSample)), None)
    return bad if bad is not None else default_collate(items)


class Loader:
    """A ``DataLoader`` whose samples' errors come out as :class:`ChannelError` with their own message, whether
    they happened in this process or in a worker."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    @property
    def batch_sampler(self):
        return self.loader.batch_sampler

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        for batch in self.loader:
            if isinstance(batch, BadSample):
                raise ChannelError(batch.message)
            yield batch


class RoundBatchSampler(Sampler[list[int]]):
    """Shuffled full batches; the last one is topped up from the start of the order (MXNet's round_batch).

    With ``share=(rank, processes)`` every process draws the same shuffled order, padded so that it splits into
    the same number of full batches for each, and takes every ``processes``-th image from ``rank`` on: the
    shares are disjoint (but for the padding) and nobody waits at the end of an epoch (MXNet's ResizeIter).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, share: tuple[int, int] = (0, 1)) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0
        self.rank, self.processes = share

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // (self.batch_size * self.processes))

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        short = len(self) * self.batch_size * self.processes - self.n
        order += (order * (short // self.n + 1))[:short]
        mine = order[self.rank :: self.processes]
        for i in range(0, len(mine), self.batch_size):
            yield mine[i : i + self.batch_size]


def _worker_init(_: int) -> None:
    arm_worker()
    limit_threads()


def make_loader(
    dataset: ImageDataset,
    batch_size: int,
    *,
    train: bool,
    workers: int,
    seed: int = 0,
    pin_memory: bool = False,
    share: tuple[int, int] = (0, 1),
) -> Loader:
    """Batches of ``dataset``; with ``share=(rank, processes)`` only this process's share (distributed training):
    equal full batches for training, each validation image in exactly one share."""
    common: dict[str, Any] = dict(
        collate_fn=_collate,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if workers else None,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )
    if workers:
        # not the default fork, which would copy OpenCV/OpenMP thread pools (see roost.data.parallel)
        common["multiprocessing_context"] = worker_context(["roost.data.dataset"])
    if train:
        sampler = RoundBatchSampler(len(dataset), batch_size, seed, share)
        return Loader(DataLoader(dataset, batch_sampler=sampler, **common))
    rank, processes = share
    part = dataset if processes == 1 else Subset(dataset, range(rank, len(dataset), processes))
    return Loader(DataLoader(part, batch_size=batch_size, shuffle=False, **common))
