"""MXNet RecordIO, read and written byte for byte as dmlc-core and MXNet do.

Layout of one physical part on disk (all words little-endian uint32)::

    magic 0xCED7230A | lrecord = cflag << 29 | length | payload[length] | zero pad to 4

A logical record whose bytes contain the magic word at a 4-aligned offset is
split there (the magic word itself is dropped) so that a reader scanning for
record boundaries can never be fooled by payload bytes: the parts carry
cflag 1 (first), 2 (middle) and 3 (last); an unsplit record has cflag 0.

On top of that, MXNet's image records start with a 24-byte ``IRHeader``
(``struct 'IfQQ'``) followed, when ``flag > 0``, by ``flag`` float32 labels.
The ``.idx`` companion is text: ``"<key>\\t<byte offset>\\n"`` per record.

Files are streamed through a buffered handle and never loaded whole; offsets
are Python ints, so files beyond 4 GiB need nothing special.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Number
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from roost.errors import UserError
from roost.formats.classes import FILE as CLASS_NAMES_FILE
from roost.formats.text import numbered_lines

log = logging.getLogger(__name__)

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
_LENGTH_BITS = 29
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
#: dmlc-core refuses records of 2**29 bytes or more (the length field has 29 bits).
MAX_RECORD_BYTES = 1 << _LENGTH_BITS
_PART_HEADER = struct.Struct("<II")

_IR_HEADER = struct.Struct("<IfQQ")
IR_HEADER_SIZE = _IR_HEADER.size  # 24

_READ_BLOCK = 1 << 20


class RecordIOError(UserError):
    """A RecordIO file is not what it should be at a given byte offset."""

    def __init__(self, path: str | os.PathLike, offset: int, message: str) -> None:
        self.path = os.fspath(path)
        self.offset = offset
        self.reason = message
        super().__init__(f"{self.path}: at byte offset {offset}: {message}")


def _pad(length: int) -> int:
    return (-length) & 3


# --------------------------------------------------------------------------- encoding


def split_parts(data: bytes | bytearray | memoryview) -> list[memoryview]:
    """The pieces dmlc's ``RecordIOWriter::WriteRecord`` emits for one record.

    Only 4-aligned occurrences of the magic word below ``floor(len/4)*4`` split
    the record; unaligned ones stay inside a part.
    """
    view = memoryview(data)
    raw = bytes(view) if not isinstance(data, bytes) else data
    limit = len(raw) & ~3
    parts: list[memoryview] = []
    start = 0
    pos = raw.find(MAGIC_BYTES)
    while pos != -1 and pos < limit:
        if pos & 3 == 0:
            parts.append(view[start:pos])
            start = pos + 4
            pos = raw.find(MAGIC_BYTES, start)
        else:
            pos = raw.find(MAGIC_BYTES, pos + 1)
    parts.append(view[start:])
    return parts


def encode_record(data: bytes | bytearray | memoryview) -> bytes:
    """The exact bytes dmlc-core writes for one logical record."""
    if len(data) >= MAX_RECORD_BYTES:
        raise ValueError(
            f"a RecordIO record must be smaller than 2**29 bytes (512 MiB); this one has {len(data)} bytes"
        )
    parts = split_parts(data)
    out = bytearray()
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if last == 0:
            cflag = 0
        elif i == 0:
            cflag = 1
        elif i == last:
            cflag = 3
        else:
            cflag = 2
        out += MAGIC_BYTES
        out += struct.pack("<I", (cflag << _LENGTH_BITS) | len(part))
        out += part
    out += b"\0" * _pad(len(parts[-1]))
    return bytes(out)


# --------------------------------------------------------------------------- image records


class IRHeader(NamedTuple):
    """MXNet's ``recordio.IRHeader``: ``label`` is a float, or a float32 array when ``flag > 0``."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int


def pack(header: IRHeader | Sequence, data: bytes) -> bytes:
    """``mx.recordio.pack``: a number label goes in the header, a sequence after it (``flag = len``)."""
    flag, label, id_, id2 = header
    if isinstance(label, Number):
        return _IR_HEADER.pack(0, float(label), int(id_), int(id2)) + bytes(data)  # type: ignore[arg-type]
    labels = np.asarray(label, dtype=np.float32).ravel()
    return _IR_HEADER.pack(labels.size, 0.0, int(id_), int(id2)) + labels.astype("<f4").tobytes() + bytes(data)


class ImageRecordError(UserError):
    """A record that is not an image record (IRHeader, labels, image); callers add the file and offset."""


def unpack(record: bytes) -> tuple[IRHeader, bytes]:
    """``mx.recordio.unpack``: the header (labels as an array when ``flag > 0``) and the image bytes."""
    if len(record) < IR_HEADER_SIZE:
        raise ImageRecordError(
            f"an image record starts with a {IR_HEADER_SIZE}-byte IRHeader, but this record has only "
            f"{len(record)} bytes"
        )
    flag, label, id_, id2 = _IR_HEADER.unpack_from(record)
    body = record[IR_HEADER_SIZE:]
    if flag > 0:
        need = 4 * flag
        if len(body) < need:
            raise ImageRecordError(
                f"the IRHeader announces {flag} float32 labels ({need} bytes) but only {len(body)} bytes follow"
            )
        labels = np.frombuffer(body, dtype="<f4", count=flag).astype(np.float32)
        return IRHeader(flag, labels, id_, id2), body[need:]
    return IRHeader(flag, label, id_, id2), body


# --------------------------------------------------------------------------- writing


class RecordWriter:
    """Sequential writer (``mx.recordio.MXRecordIO(path, 'w')``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._f: BinaryIO = open(self.path, "wb")

    def tell(self) -> int:
        return self._f.tell()

    def write(self, data: bytes) -> int:
        """Append one record; returns the byte offset it starts at."""
        pos = self._f.tell()
        self._f.write(encode_record(data))
        return pos

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class IndexedRecordWriter:
    """``MXIndexedRecordIO(idx, rec, 'w')``: a ``.rec`` plus its ``.idx``.

    With ``atomic=True`` both files are written under temporary names and only
    renamed into place by a clean ``close()``: an interrupted or failed run never
    leaves a short file where a good one stood.
    """

    def __init__(self, idx_path: str | os.PathLike, rec_path: str | os.PathLike, *, atomic: bool = False) -> None:
        self.idx_path = os.fspath(idx_path)
        self.rec_path = os.fspath(rec_path)
        self._atomic = atomic
        suffix = f".partial-{os.getpid()}" if atomic else ""
        self._tmp_rec = self.rec_path + suffix
        self._tmp_idx = self.idx_path + suffix
        self._rec = RecordWriter(self._tmp_rec)
        self._idx = open(self._tmp_idx, "w", encoding="utf-8", newline="\n")
        self.count = 0

    def write_idx(self, key: int | str, data: bytes) -> int:
        pos = self._rec.write(data)
        self._idx.write(f"{key}\t{pos}\n")
        self.count += 1
        return pos

    def tell(self) -> int:
        """Bytes written to the ``.rec`` so far."""
        return self._rec.tell()

    def close(self) -> None:
        self._rec.close()
        self._idx.close()
        if self._atomic:
            os.replace(self._tmp_rec, self.rec_path)
            os.replace(self._tmp_idx, self.idx_path)

    def abort(self) -> None:
        """Close and, for atomic writers, delete the temporary files."""
        self._rec.close()
        self._idx.close()
        if self._atomic:
            for p in (self._tmp_rec, self._tmp_idx):
                try:
                    os.remove(p)
                except FileNotFoundError:
                    pass

    def __enter__(self) -> IndexedRecordWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Part:
    offset: int
    cflag: int
    length: int


class RecordReader:
    """Sequential and random-access reader (``MXRecordIO(path, 'r')``).

    With ``skip_corrupt=True`` a damaged record is logged, counted in
    ``skipped`` (and kept in ``errors``) and reading resumes at the next
    4-aligned magic word that starts a record, as dmlc's chunk reader
    resynchronises; otherwise a :class:`RecordIOError` names the file, the
    byte offset and what was expected there.
    """

    def __init__(self, path: str | os.PathLike, *, skip_corrupt: bool = False) -> None:
        self.path = os.fspath(path)
        self._f: BinaryIO = open(self.path, "rb", buffering=_READ_BLOCK)
        self.size = os.fstat(self._f.fileno()).st_size
        self.skip_corrupt = skip_corrupt
        self.skipped = 0
        self.errors: list[RecordIOError] = []
        #: where the record most recently returned by :meth:`read` starts
        self.last_offset = -1

    # -- low level
    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int) -> None:
        self._f.seek(offset)

    def _read_part(self) -> tuple[Part, bytes] | None:
        offset = self._f.tell()
        head = self._f.read(8)
        if not head:
            return None
        if len(head) < 8:
            raise RecordIOError(
                self.path,
                offset,
                f"expected an 8-byte part header (magic word + length), but the file ends after {len(head)} "
                "bytes (truncated file?)",
            )
        magic, lrec = _PART_HEADER.unpack(head)
        if magic != MAGIC:
            raise RecordIOError(
                self.path,
                offset,
                f"expected the RecordIO magic word 0x{MAGIC:08X}, found 0x{magic:08X} (not a RecordIO file, "
                "or a corrupt one)",
            )
        cflag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
        if cflag > 3:
            raise RecordIOError(self.path, offset + 4, f"expected a continuation flag 0-3, found {cflag}")
        stored = length + _pad(length)
        data = self._f.read(stored)
        if len(data) < stored:
            raise RecordIOError(
                self.path,
                offset + 8,
                f"expected {length} payload bytes (+{_pad(length)} padding), but the file ends after "
                f"{len(data)} (truncated file?)",
            )
        return Part(offset, cflag, length), data[:length]

    def read_parts(self) -> tuple[list[Part], bytes] | None:
        """The next logical record with the physical parts it was stored in."""
        start = self._f.tell()
        first = self._read_part()
        if first is None:
            return None
        part, data = first
        if part.cflag == 0:
            return [part], data
        if part.cflag != 1:
            raise RecordIOError(
                self.path,
                part.offset,
                f"expected the start of a record (cflag 0 or 1), found a continuation part (cflag {part.cflag})",
            )
        parts = [part]
        chunks = [data]
        while True:
            nxt = self._read_part()
            if nxt is None:
                raise RecordIOError(
                    self.path,
                    self._f.tell(),
                    f"the record that starts at byte {start} is split (cflag 1) but the file ends before its "
                    "last part (cflag 3)",
                )
            part, data = nxt
            if part.cflag not in (2, 3):
                raise RecordIOError(
                    self.path,
                    part.offset,
                    f"expected a continuation part (cflag 2 or 3) of the record at byte {start}, found cflag "
                    f"{part.cflag}",
                )
            parts.append(part)
            chunks.append(MAGIC_BYTES)
            chunks.append(data)
            if part.cflag == 3:
                return parts, b"".join(chunks)

    def read(self) -> bytes | None:
        """The next record's bytes, or ``None`` at the end of the file."""
        while True:
            start = self._f.tell()
            try:
                got = self.read_parts()
            except RecordIOError as err:
                if not self.skip_corrupt:
                    raise
                self.skipped += 1
                self.errors.append(err)
                log.warning("skipping a damaged record: %s", err)
                nxt = self._resync(start + 4)
                if nxt is None:
                    self._f.seek(self.size)
                    return None
                self._f.seek(nxt)
                continue
            if got is None:
                return None
            self.last_offset = start
            return got[1]

    def read_at(self, offset: int) -> bytes:
        """The record that starts exactly at ``offset``. Never resynchronises, even with ``skip_corrupt``: a
        damaged record read by position (or by key) is an error, not the next record in the file."""
        if offset < 0 or offset >= self.size:
            raise RecordIOError(
                self.path, offset, f"expected a record here, but the file has only {self.size} bytes (stale .idx?)"
            )
        self._f.seek(offset)
        got = self.read_parts()
        if got is None:
            raise RecordIOError(self.path, offset, "expected a record, found the end of the file")
        self.last_offset = offset
        return got[1]

    def read_header_at(self, offset: int) -> IRHeader:
        """The IRHeader (and labels) of the record at ``offset``, reading only those bytes.

        Indexing a channel needs every record's label, not its image: this reads a few
        dozen bytes per record instead of the whole file. A record split inside its
        header (rare: the magic word in the header or labels) is read whole.
        """
        try:
            return self._read_header_at(offset)
        except ImageRecordError as err:
            raise RecordIOError(self.path, offset, str(err)) from None

    def _read_header_at(self, offset: int) -> IRHeader:
        if offset < 0 or offset >= self.size:
            raise RecordIOError(
                self.path, offset, f"expected a record here, but the file has only {self.size} bytes (stale .idx?)"
            )
        self._f.seek(offset)
        head = self._f.read(8)
        magic, lrec = _PART_HEADER.unpack(head) if len(head) == 8 else (None, 0)
        if magic != MAGIC:
            return unpack(self.read_at(offset))[0]  # let the full reader name the problem
        cflag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
        if cflag == 0 and offset + 8 + length + _pad(length) > self.size:
            raise RecordIOError(
                self.path,
                offset + 8,
                f"expected {length} payload bytes (+{_pad(length)} padding), "
                "but the file ends before them (truncated file?)",
            )
        prefix = self._f.read(min(length, IR_HEADER_SIZE))
        if len(prefix) == IR_HEADER_SIZE:
            flag = _IR_HEADER.unpack_from(prefix)[0]
            need = IR_HEADER_SIZE + 4 * flag
            if need <= length:
                return unpack(prefix + self._f.read(need - IR_HEADER_SIZE))[0]
        return unpack(self.read_at(offset))[0]

    def _resync(self, offset: int) -> int | None:
        """Offset of the next aligned magic word that begins a record (cflag 0 or 1)."""
        pos = (offset + 3) & ~3
        while pos < self.size:
            self._f.seek(pos)
            block = self._f.read(_READ_BLOCK + 8)
            if len(block) < 8:
                return None
            i = block.find(MAGIC_BYTES)
            while i != -1 and i + 8 <= len(block):
                if i & 3 == 0 and (struct.unpack_from("<I", block, i + 4)[0] >> _LENGTH_BITS) in (0, 1):
                    return pos + i
                i = block.find(MAGIC_BYTES, i + 1)
            pos += _READ_BLOCK
        return None

    def __iter__(self) -> Iterator[bytes]:
        while (data := self.read()) is not None:
            yield data

    def iter_with_offsets(self) -> Iterator[tuple[int, bytes]]:
        while (data := self.read()) is not None:
            yield self.last_offset, data

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class IndexFileError(UserError):
    """An ``.idx`` file that cannot be used: a malformed line, or one key for two records."""


class DuplicateKeys(IndexFileError):
    pass


def read_index(idx_path: str | os.PathLike, key_type=int) -> dict:
    """Parse an ``.idx`` file into ``{key: offset}`` in file order; :class:`DuplicateKeys` when a key repeats
    (MXNet's im2rec writes one key per ``.lst`` index, so a list with repeated indices leaves such files)."""
    path = os.fspath(idx_path)
    idx: dict = {}
    repeated: dict = {}

    def error(lineno: int, message: str) -> IndexFileError:
        return IndexFileError(f"{path}: line {lineno}: {message}")

    for lineno, raw in numbered_lines(path, error):
        line = raw.strip()
        if not line:
            continue
        fields = line.split("\t")
        try:
            if len(fields) != 2:
                raise ValueError
            key, offset = key_type(fields[0]), int(fields[1])
        except ValueError:
            raise error(lineno, f"expected '<key><TAB><byte offset>', found {line!r}") from None
        if key in idx:
            repeated.setdefault(key, lineno)
        idx[key] = offset
    if repeated:
        key, lineno = next(iter(repeated.items()))
        raise DuplicateKeys(
            f"{path}: {len(repeated)} key(s) name more than one record, e.g. key {key!r} again at "
            f"line {lineno}; every record needs a key of its own"
        )
    return idx


class IndexedRecordReader(RecordReader):
    """``MXIndexedRecordIO(idx, rec, 'r')``: random access by key through the ``.idx``."""

    def __init__(
        self, idx_path: str | os.PathLike, rec_path: str | os.PathLike, *, key_type=int, skip_corrupt: bool = False
    ) -> None:
        super().__init__(rec_path, skip_corrupt=skip_corrupt)
        self.idx_path = os.fspath(idx_path)
        self.idx = read_index(idx_path, key_type)
        self.keys = list(self.idx)

    def __len__(self) -> int:
        return len(self.keys)

    def read_idx(self, key) -> bytes:
        try:
            offset = self.idx[key]
        except KeyError:
            raise KeyError(f"{self.idx_path}: no record with key {key!r}") from None
        return self.read_at(offset)


def index_path_for(rec_path: str | os.PathLike) -> Path:
    """``x.rec`` -> ``x.idx`` (the name im2rec gives it)."""
    return Path(rec_path).with_suffix(".idx")


def companion_names(rec_name: str) -> list[str]:
    """The names of the files that travel with a ``.rec`` named so, beside it: its ``.idx``, the ``.lst`` im2rec
    packed it from (its paths name the classes) and ``classes.json`` (``roost pack``'s class names). A channel
    given as one ``.rec`` file takes them along - in ``roost train`` and on a server alike - so the classes are
    named exactly as they are for a channel given as the folder."""
    stem, dot, suffix = rec_name.rpartition(".")
    if not dot or suffix != "rec":
        return []
    return [f"{stem}.idx", f"{stem}.lst", CLASS_NAMES_FILE]


def companions(rec_path: str | os.PathLike) -> list[Path]:
    """The companions (:func:`companion_names`) that exist beside ``rec_path``."""
    p = Path(rec_path)
    return [f for f in (p.with_name(n) for n in companion_names(p.name)) if f.is_file()]


def scan_offsets(rec_path: str | os.PathLike) -> list[int]:
    """Byte offsets of every record, for ``.rec`` files that came without an ``.idx``."""
    offsets: list[int] = []
    with RecordReader(rec_path) as r:
        while True:
            pos = r.tell()
            if r.read_parts() is None:
                return offsets
            offsets.append(pos)
