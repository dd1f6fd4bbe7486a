"""MXNet's ``.params`` files (``mx.nd.save`` of a name -> NDArray dict), read without MXNet.

Layout (little-endian, MXNet 1.x ``NDArray::Save`` through ``dmlc::Stream``)::

    uint64 0x112 (list magic) | uint64 reserved | uint64 count | count x NDArray | uint64 count | count x name
    NDArray (V2/V3): uint32 magic 0xF993FAC9/0xF993FACA | int32 storage type (0 dense)
                     | uint32 ndim | int64 dims[ndim] | int32 dev_type | int32 dev_id | int32 dtype | data
    NDArray (V1):    uint32 magic 0xF993FAC8 | uint32 ndim | int64 dims[ndim] | context | dtype | data
    NDArray (legacy, no magic): uint32 ndim | uint32 dims[ndim] | context | dtype | data
    name:            uint64 length | bytes (``arg:<name>`` or ``aux:<name>``)

SageMaker's image-classification artifacts and MXNet's model zoo store weights this way.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from roost.errors import UserError

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
V3_MAGIC = 0xF993FACA
DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}


class ParamsError(UserError):
    def __init__(self, source: str, offset: int, message: str) -> None:
        super().__init__(f"{source}: at byte offset {offset}: {message}")


class _Reader:
    def __init__(self, data: bytes, source: str) -> None:
        self.data, self.pos, self.source = data, 0, source

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ParamsError(self.source, self.pos, f"expected {size} more bytes, the file ends (truncated?)")
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ParamsError(self.source, self.pos, f"expected {size} bytes of array data, the file ends (truncated?)")
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out


def _read_array(r: _Reader) -> np.ndarray:
    start = r.pos
    (first,) = r.take("<I")
    if first in (V2_MAGIC, V3_MAGIC):
        (stype,) = r.take("<i")
        if stype != 0:
            raise ParamsError(r.source, start, f"sparse NDArray (storage type {stype}) is not supported")
        (ndim,) = r.take("<I")
        shape = r.take(f"<{ndim}q") if ndim else ()
    elif first == V1_MAGIC:
        (ndim,) = r.take("<I")
        shape = r.take(f"<{ndim}q") if ndim else ()
    else:  # legacy: the first word is ndim, dims are uint32
        ndim = first
        if ndim > 32:
            raise ParamsError(r.source, start, f"expected an NDArray header, found 0x{first:08X}")
        shape = r.take(f"<{ndim}I") if ndim else ()
    if ndim == 0:
        return np.zeros((0,), np.float32)
    r.take("<ii")  # context: device type and id
    (type_flag,) = r.take("<i")
    if type_flag not in DTYPES:
        raise ParamsError(r.source, r.pos - 4, f"unknown NDArray dtype flag {type_flag}")
    dtype = np.dtype(DTYPES[type_flag]).newbyteorder("<")
    count = int(np.prod(shape))
    return np.frombuffer(r.raw(count * dtype.itemsize), dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def load_params(source: str | os.PathLike | bytes, name: str = "params") -> dict[str, np.ndarray]:
    """``{"arg:conv0_weight": array, "aux:bn0_moving_mean": array, ...}`` from a ``.params`` file or its bytes."""
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        name = os.fspath(source)
        data = Path(source).read_bytes()
    r = _Reader(data, name)
    magic, _reserved = r.take("<QQ")
    if magic != LIST_MAGIC:
        raise ParamsError(
            name, 0, f"expected the MXNet NDArray-list magic 0x112, found 0x{magic:X} (not a .params file?)"
        )
    (count,) = r.take("<Q")
    arrays = [_read_array(r) for _ in range(count)]
    (n_names,) = r.take("<Q")
    names = []
    for _ in range(n_names):
        (length,) = r.take("<Q")
        names.append(r.raw(length).decode("utf-8"))
    if n_names != count:
        raise ParamsError(name, r.pos, f"{count} arrays but {n_names} names")
    return dict(zip(names, arrays, strict=True))


def save_params(params: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Write ``params`` as MXNet 1.x does (V2 arrays on CPU), so MXNet can load Roost's weights."""
    codes = {np.dtype(v): k for k, v in DTYPES.items()}
    out = bytearray(struct.pack("<QQQ", LIST_MAGIC, 0, len(params)))
    for arr in params.values():
        a = np.ascontiguousarray(arr)
        out += struct.pack("<IiI", V2_MAGIC, 0, a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape)
        out += struct.pack("<iii", 1, 0, codes[a.dtype]) + a.astype(a.dtype.newbyteorder("<")).tobytes()
    out += struct.pack("<Q", len(params))
    for key in params:
        b = key.encode("utf-8")
        out += struct.pack("<Q", len(b)) + b
    Path(path).write_bytes(bytes(out))
