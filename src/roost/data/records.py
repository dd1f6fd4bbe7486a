"""RecordIO channels as PyTorch datasets and loaders.

A channel is one or more ``.rec`` files. Records are addressed by (file,
byte offset), from the ``.idx`` when there is one and by a scan otherwise, so
worker processes read them at random without loading a file. Images leave the
workers as uint8 CHW tensors (a quarter of the bytes of float32); the
training step converts them on the device.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from roost.data.augment import Preprocess
from roost.formats import recordio

log = logging.getLogger(__name__)


class ChannelError(ValueError):
    """A data channel cannot be used as given (the user's mistake: a ClientError in SageMaker terms)."""


def find_rec_files(channel: str | os.PathLike) -> list[Path]:
    """``.rec`` files of a channel: the file itself, or every ``.rec`` below a folder (sorted)."""
    p = Path(channel)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.rglob("*.rec") if f.is_file())
        if files:
            return files
        raise ChannelError(f"no .rec files found in {p}; a RecordIO channel holds one or more .rec files")
    raise ChannelError(f"{p}: no such file or folder")


@dataclass(frozen=True)
class RecordRef:
    file: int
    offset: int
    label: float | tuple[float, ...]


def index_records(files: list[Path]) -> list[RecordRef]:
    """Every record's location and label, reading only headers."""
    refs: list[RecordRef] = []
    for fi, path in enumerate(files):
        idx_path = recordio.index_path_for(path)
        if idx_path.is_file():
            offsets = list(recordio.read_index(idx_path).values())
        else:
            offsets = recordio.scan_offsets(path)
        with recordio.RecordReader(path) as reader:
            for off in offsets:
                try:
                    header, _ = recordio.unpack(reader.read_at(off))
                except ValueError as err:
                    raise ChannelError(f"{path}: record at byte {off}: {err}") from None
                label = tuple(float(x) for x in header.label) if header.flag > 0 else float(header.label)
                refs.append(RecordRef(fi, off, label))
    return refs


class RecordImageDataset(Dataset):
    """Decoded, preprocessed images with their labels; safe to use from DataLoader workers."""

    def __init__(self, files: list[Path], preprocess: Preprocess, channels: int, num_classes: int,
                 multi_label: bool = False, seed: int = 0) -> None:
        self.files = [Path(f) for f in files]
        self.refs = index_records(self.files)
        self.preprocess = preprocess
        self.color = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.seed = seed
        self._readers: dict[int, recordio.RecordReader] = {}
        self._rng: np.random.Generator | None = None
        self._pid = -1
        self._check_labels()

    def _check_labels(self) -> None:
        for ref in self.refs:
            if isinstance(ref.label, tuple) and not self.multi_label:
                label = ref.label[0]
            else:
                label = ref.label
            if not self.multi_label:
                if not float(label).is_integer() or not 0 <= label < self.num_classes:
                    raise ChannelError(
                        f"{self.files[ref.file]}: record at byte {ref.offset} has label {label:g}, outside "
                        f"0..{self.num_classes - 1} (num_classes={self.num_classes}); labels must be class ids from 0"
                    )

    def __len__(self) -> int:
        return len(self.refs)

    def labels(self) -> np.ndarray:
        return np.array([r.label if not isinstance(r.label, tuple) else r.label[0] for r in self.refs], dtype=np.int64)

    def _per_process(self) -> None:
        # file handles and random streams must not be shared across processes:
        # each worker opens its own, and seeds its stream from its torch seed,
        # which DataLoader makes distinct per worker (and per run)
        if self._pid != os.getpid():
            self._readers = {}
            self._rng = np.random.default_rng([self.seed, torch.initial_seed() % (2**63)])
            self._pid = os.getpid()

    def _reader(self, fi: int) -> recordio.RecordReader:
        self._per_process()
        if fi not in self._readers:
            self._readers[fi] = recordio.RecordReader(self.files[fi])
        return self._readers[fi]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        ref = self.refs[i]
        _, data = recordio.unpack(self._reader(ref.file).read_at(ref.offset))
        img = cv2.imdecode(np.frombuffer(data, np.uint8), self.color)
        if img is None:
            raise ChannelError(f"{self.files[ref.file]}: the image in the record at byte {ref.offset} cannot be decoded")
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        img = self.preprocess(img, self._rng)
        tensor = torch.from_numpy(img).unsqueeze(0) if img.ndim == 2 else torch.from_numpy(img).permute(2, 0, 1)
        label = ref.label if not isinstance(ref.label, tuple) else ref.label[0]
        return tensor.contiguous(), int(label)


class RoundBatchSampler(Sampler[list[int]]):
    """Shuffled full batches; the last one is topped up from the start of the order (MXNet's round_batch)."""

    def __init__(self, n: int, batch_size: int, seed: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        short = (-self.n) % self.batch_size
        order += (order * (short // self.n + 1))[:short]
        for i in range(0, len(order), self.batch_size):
            yield order[i : i + self.batch_size]


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)


def make_loader(dataset: RecordImageDataset, batch_size: int, *, train: bool, workers: int, seed: int = 0,
                pin_memory: bool = False) -> DataLoader:
    common = dict(num_workers=workers, pin_memory=pin_memory, worker_init_fn=_worker_init if workers else None,
                  persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    if workers:
        # the default fork would copy OpenCV/OpenMP thread pools into the workers (see roost.data.parallel)
        common["multiprocessing_context"] = "forkserver" if "forkserver" in torch.multiprocessing.get_all_start_methods() else "spawn"
    if train:
        return DataLoader(dataset, batch_sampler=RoundBatchSampler(len(dataset), batch_size, seed), **common)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **common)
