"""MXNet RecordIO against the files MXNet wrote: reading, writing byte for byte, corrupt and huge files."""

import json
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.formats import recordio as rio
from roost.formats.recordio import (
    MAGIC_BYTES,
    IndexedRecordReader,
    IndexedRecordWriter,
    IRHeader,
    RecordIOError,
    RecordReader,
    RecordWriter,
)


@pytest.fixture(scope="module")
def expected(mxnet_fixtures):
    return json.loads((mxnet_fixtures / "recordio" / "expected.json").read_text())


def _header_tuple(rec):
    h = rec["header"]
    return h["flag"], h["label"], h["id"], h["id2"]


@pytest.mark.parametrize("name", ["edge.rec", "seq.rec"])
def test_reads_every_fixture_exactly(mxnet_fixtures, expected, name):
    want = expected["files"][name]
    path = mxnet_fixtures / "recordio" / name
    assert path.stat().st_size == want["size"]
    with RecordReader(path) as r:
        got = []
        while True:
            pos = r.tell()
            res = r.read_parts()
            if res is None:
                break
            got.append((pos, *res))
    assert len(got) == len(want["records"])
    for (offset, parts, record), rec in zip(got, want["records"], strict=True):
        assert offset == rec["offset"]
        assert [(p.offset, p.cflag, p.length) for p in parts] == [
            (p["offset"], p["cflag"], p["length"]) for p in rec["parts"]
        ]
        assert record.hex() == rec["record_hex"]
        header, payload = rio.unpack(record)
        assert header.flag == rec["header"]["flag"]
        assert header.id == rec["header"]["id"] and header.id2 == rec["header"]["id2"]
        if header.flag:
            assert rec["header"]["label"] == 0.0
            assert header.label.tolist() == rec["labels"]
        else:
            assert header.label == rec["header"]["label"]
            assert rec["labels"] is None
        assert payload.hex() == rec["payload_hex"]


def test_random_access_by_key(mxnet_fixtures, expected):
    want = expected["files"]["edge.rec"]
    d = mxnet_fixtures / "recordio"
    with IndexedRecordReader(d / "edge.idx", d / "edge.rec") as r:
        assert [f"{k}\t{v}" for k, v in r.idx.items()] == want["idx_lines"]
        # read in reverse to prove it seeks rather than streams
        for rec in reversed(want["records"]):
            assert r.read_idx(rec["key"]).hex() == rec["record_hex"]
        with pytest.raises(KeyError, match="no record with key 99999"):
            r.read_idx(99999)


def _rewrite(want, path_rec, path_idx=None):
    w = IndexedRecordWriter(path_idx, path_rec) if path_idx else RecordWriter(path_rec)
    for rec in want["records"]:
        header = IRHeader(
            rec["header"]["flag"],
            rec["labels"] if rec["labels"] is not None else rec["header"]["label"],
            rec["header"]["id"],
            rec["header"]["id2"],
        )
        # MXNet's pack() turns a list label into flag=len(list), a number into flag=0
        if rec["labels"] is not None:
            header = header._replace(label=list(rec["labels"]))
        data = rio.pack(header, bytes.fromhex(rec["payload_hex"]))
        assert data.hex() == rec["record_hex"]
        if path_idx:
            w.write_idx(rec["key"], data)
        else:
            w.write(data)
    w.close()


def test_writes_byte_identical_files(mxnet_fixtures, expected, tmp_path):
    src = mxnet_fixtures / "recordio"
    _rewrite(expected["files"]["edge.rec"], tmp_path / "edge.rec", tmp_path / "edge.idx")
    assert (tmp_path / "edge.rec").read_bytes() == (src / "edge.rec").read_bytes()
    assert (tmp_path / "edge.idx").read_bytes() == (src / "edge.idx").read_bytes()
    _rewrite(expected["files"]["seq.rec"], tmp_path / "seq.rec")
    assert (tmp_path / "seq.rec").read_bytes() == (src / "seq.rec").read_bytes()


payloads = st.one_of(
    st.binary(max_size=300),
    # payloads built around the magic word, at every alignment
    st.lists(st.one_of(st.just(MAGIC_BYTES), st.binary(max_size=9)), max_size=12).map(b"".join),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(payloads, max_size=8))
def test_roundtrip_property(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("rt") / "x.rec"
    with RecordWriter(path) as w:
        offsets = [w.write(r) for r in records]
    assert path.stat().st_size % 4 == 0
    with RecordReader(path) as r:
        assert list(r) == records
        for off, rec in zip(offsets, records, strict=True):
            assert r.read_at(off) == rec
    assert rio.scan_offsets(path) == offsets


@given(st.binary(max_size=64), st.integers(0, 16))
def test_magic_anywhere_is_split_only_when_aligned(prefix, shift):
    data = prefix[:shift] + MAGIC_BYTES + prefix[shift:]
    encoded = rio.encode_record(data)
    # no aligned magic word may survive inside a part: only part headers carry it
    words = [encoded[i : i + 4] for i in range(0, len(encoded), 4)]
    starts = [i for i, w in enumerate(words) if w == MAGIC_BYTES]
    pos = 0
    for i in starts:
        assert i * 4 >= pos
        (lrec,) = struct.unpack_from("<I", encoded, i * 4 + 4)
        pos = i * 4 + 8 + (lrec & ((1 << 29) - 1))


def test_pack_unpack_labels():
    rec = rio.pack(IRHeader(0, [1, 0.5, 7], 3, 0), b"img")
    header, body = rio.unpack(rec)
    assert header.flag == 3 and header.label.dtype == np.float32 and header.label.tolist() == [1, 0.5, 7]
    assert body == b"img"
    header, body = rio.unpack(rio.pack(IRHeader(9, 2.0, 5, 1), b""))
    assert header == IRHeader(0, 2.0, 5, 1) and body == b""
    with pytest.raises(ValueError, match="24-byte IRHeader"):
        rio.unpack(b"short")
    with pytest.raises(ValueError, match="announces 4 float32 labels"):
        rio.unpack(struct.pack("<IfQQ", 4, 0, 0, 0) + b"1234")


def _three_records(path):
    with RecordWriter(path) as w:
        return [w.write(b"first record"), w.write(b"second" * 10), w.write(b"third")]


def test_truncated_file_names_file_offset_and_expectation(tmp_path):
    path = tmp_path / "t.rec"
    offsets = _three_records(path)
    data = path.read_bytes()
    path.write_bytes(data[: offsets[2] + 10])
    with RecordReader(path) as r:
        assert r.read() == b"first record"
        assert r.read() == b"second" * 10
        with pytest.raises(RecordIOError) as err:
            r.read()
    msg = str(err.value)
    assert str(path) in msg and f"byte offset {offsets[2] + 8}" in msg and "expected 5 payload bytes" in msg


def test_corrupt_magic_and_skip_mode(tmp_path):
    path = tmp_path / "c.rec"
    offsets = _three_records(path)
    data = bytearray(path.read_bytes())
    data[offsets[1]] ^= 0xFF  # break the second record's magic word
    path.write_bytes(bytes(data))
    with RecordReader(path) as r:
        r.read()
        with pytest.raises(
            RecordIOError, match=rf"byte offset {offsets[1]}: expected the RecordIO magic word 0xCED7230A"
        ):
            r.read()
    with RecordReader(path, skip_corrupt=True) as r:
        got = list(r.iter_with_offsets())
        assert got == [(offsets[0], b"first record"), (offsets[2], b"third")]
        assert r.skipped == 1 and r.errors[0].offset == offsets[1]


def test_not_a_recordio_file(tmp_path):
    path = tmp_path / "photo.rec"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"JFIF" * 10)
    with pytest.raises(RecordIOError, match="not a RecordIO file"), RecordReader(path) as r:
        r.read()


def test_split_record_missing_its_end(tmp_path):
    path = tmp_path / "s.rec"
    with RecordWriter(path) as w:
        w.write(b"abcd" + MAGIC_BYTES + b"efgh")
    data = path.read_bytes()
    path.write_bytes(data[:12])  # keep only the cflag-1 part (8-byte header + "abcd")
    with pytest.raises(RecordIOError, match="ends before its last part"), RecordReader(path) as r:
        r.read()


def test_atomic_writer_keeps_old_file_on_failure(tmp_path):
    rec, idx = tmp_path / "a.rec", tmp_path / "a.idx"
    with IndexedRecordWriter(idx, rec, atomic=True) as w:
        w.write_idx(0, b"good")
    before = rec.read_bytes()
    with pytest.raises(RuntimeError):
        with IndexedRecordWriter(idx, rec, atomic=True) as w:
            w.write_idx(0, b"half")
            raise RuntimeError("interrupted")
    assert rec.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.idx", "a.rec"]


def test_offsets_beyond_4gib(tmp_path):
    """64-bit offsets: a record placed past 4 GiB in a sparse file is found through the index."""
    rec, idx = tmp_path / "big.rec", tmp_path / "big.idx"
    far = (5 << 30) + 12
    with open(rec, "wb") as f:
        f.write(rio.encode_record(b"near"))
        f.seek(far)
        f.write(rio.encode_record(b"far away"))
    idx.write_text(f"0\t0\n1\t{far}\n")
    if os.stat(rec).st_blocks * 512 > (1 << 30):
        pytest.skip("filesystem does not support sparse files")
    with IndexedRecordReader(idx, rec) as r:
        assert r.read_idx(1) == b"far away"
        assert r.read_idx(0) == b"near"


def test_bad_index_line(tmp_path):
    (tmp_path / "x.idx").write_text("0\t0\nbroken line\n")
    (tmp_path / "x.rec").write_bytes(b"")
    with pytest.raises(ValueError, match=r"x.idx: line 2: expected '<key><TAB><byte offset>'"):
        IndexedRecordReader(tmp_path / "x.idx", tmp_path / "x.rec")


def test_record_size_limit():
    with pytest.raises(ValueError, match="smaller than 2\\*\\*29"):
        rio.encode_record(memoryview(bytearray(1 << 29)))


def test_read_header_at_matches_full_unpack(mxnet_fixtures, expected):
    """Headers read alone (split records included) equal those of the full records."""
    d = mxnet_fixtures / "recordio"
    with IndexedRecordReader(d / "edge.idx", d / "edge.rec") as r:
        for rec in expected["files"]["edge.rec"]["records"]:
            if rec["record_length"] < 24:
                continue
            head = r.read_header_at(rec["offset"])
            full, _ = rio.unpack(r.read_at(rec["offset"]))
            assert (head.flag, head.id, head.id2) == (full.flag, full.id, full.id2)
            assert np.array_equal(np.atleast_1d(head.label), np.atleast_1d(full.label))


def test_read_header_at_reports_truncation(tmp_path):
    path = tmp_path / "t.rec"
    with RecordWriter(path) as w:
        w.write(rio.pack(IRHeader(0, 1.0, 0, 0), b"x" * 100))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(RecordIOError, match="truncated file"), RecordReader(path) as r:
        r.read_header_at(0)


# --------------------------------------------------------------------------- hostile files


def test_reading_by_key_never_returns_another_keys_record(tmp_path):
    """skip_corrupt resynchronises a sequential read; a read by key must fail instead of landing on the next record."""
    idx, rec = tmp_path / "k.idx", tmp_path / "k.rec"
    with IndexedRecordWriter(idx, rec) as w:
        for key in range(3):
            w.write_idx(key, f"record {key}".encode())
    offsets = rio.read_index(idx)
    data = bytearray(rec.read_bytes())
    data[offsets[1]] ^= 0xFF
    rec.write_bytes(bytes(data))
    with IndexedRecordReader(idx, rec, skip_corrupt=True) as r:
        assert r.read_idx(0) == b"record 0" and r.read_idx(2) == b"record 2"
        with pytest.raises(RecordIOError, match=f"byte offset {offsets[1]}: expected the RecordIO magic word"):
            r.read_idx(1)


def test_index_files_name_their_problems(tmp_path):
    (tmp_path / "x.rec").write_bytes(b"")
    (tmp_path / "x.idx").write_bytes(b"0\t0\n1\t\xff\xfe\n")
    with pytest.raises(rio.IndexFileError, match=r"x.idx: line 2: not UTF-8 text \(byte 0xff at column 3\)"):
        rio.read_index(tmp_path / "x.idx")
    (tmp_path / "x.idx").write_text("0\t0\n1\t24\n0\t48\n")
    with pytest.raises(rio.DuplicateKeys, match="key 0 again at line 3"):
        rio.read_index(tmp_path / "x.idx")


def test_fuzzed_records_raise_only_recordio_errors_that_name_the_file(mxnet_fixtures, tmp_path):
    """Seeded mutations of a real .rec: reading never crashes, hangs or returns garbage silently past an error."""
    original = (mxnet_fixtures / "recordio" / "edge.rec").read_bytes()
    rng = np.random.default_rng(2026)
    path = tmp_path / "fuzz.rec"
    kinds = {"flip": 0, "truncate": 0, "insert": 0}
    for i in range(300):
        data = bytearray(original)
        kind = ("flip", "truncate", "insert")[i % 3]
        kinds[kind] += 1
        if kind == "flip":
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(0, 256))
        elif kind == "truncate":
            del data[int(rng.integers(0, len(data))) :]
        else:
            pos = int(rng.integers(0, len(data)))
            data[pos:pos] = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        path.write_bytes(bytes(data))
        for skip in (False, True):
            try:
                with RecordReader(path, skip_corrupt=skip) as r:
                    records = list(r.iter_with_offsets())
                    for offset, _ in records[:5]:
                        r.read_header_at(offset) if len(_) >= rio.IR_HEADER_SIZE else None
            except RecordIOError as err:
                assert str(path) in str(err), err
    assert min(kinds.values()) == 100
