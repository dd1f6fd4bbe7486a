"""The embedded S3 store without HTTP: atomic writes, checks before anything is kept, any key safe on disk, byte
ordered listings, multipart uploads with S3's rules, and what a crash leaves swept at the next start."""

from __future__ import annotations

import base64
import hashlib
import zlib

import pytest

from roost.aws import ServiceError
from roost.storage.database import open_database
from roost.storage.objects import LIMITS, Expected, ObjectStore


@pytest.fixture()
def store(database_url, tmp_path):
    s = ObjectStore(open_database(database_url), tmp_path / "s3")
    s.create_bucket("birds")
    return s


def _code(fn, *args, **kwargs) -> str:
    with pytest.raises(ServiceError) as err:
        fn(*args, **kwargs)
    return err.value.code


def test_put_get_overwrite_and_what_a_failed_write_leaves(store):
    info = store.put("birds", "train/a.rec", [b"hello ", b"world"], Expected(length=11))
    assert info.etag == hashlib.md5(b"hello world").hexdigest() and info.size == 11
    assert store.head("birds", "train/a.rec").path.read_bytes() == b"hello world"
    crc = base64.b64encode(zlib.crc32(b"new").to_bytes(4, "big")).decode()
    store.put("birds", "train/a.rec", [b"new"], Expected(checksums={"crc32": crc}), meta={"who": "me"})
    head = store.head("birds", "train/a.rec")
    assert head.path.read_bytes() == b"new" and head.checksums == {"crc32": crc} and head.meta == {"who": "me"}
    # a body that does not match what the client said stores nothing, and the previous version stays
    assert _code(store.put, "birds", "train/a.rec", [b"bad"], Expected(checksums={"crc32": crc})) == "BadDigest"
    wrong_sha = hashlib.sha256(b"other").hexdigest()
    assert _code(store.put, "birds", "train/a.rec", [b"bad"], Expected(sha256_hex=wrong_sha)) == (
        "XAmzContentSHA256Mismatch"
    )
    assert _code(store.put, "birds", "train/a.rec", [b"ba"], Expected(length=3)) == "IncompleteBody"
    md5 = base64.b64encode(hashlib.md5(b"x").digest()).decode()
    assert _code(store.put, "birds", "train/a.rec", [b"bad"], Expected(md5_b64=md5)) == "BadDigest"
    assert store.head("birds", "train/a.rec").path.read_bytes() == b"new"
    assert list(store.tmp.iterdir()) == [] and sum(1 for _ in store.blobs.rglob("*") if _.is_file()) == 1
    assert _code(store.put, "nobody", "k", [b""], Expected()) == "NoSuchBucket"
    assert _code(store.head, "birds", "missing") == "NoSuchKey"


def test_any_legal_key_is_safe_and_distinct(store, tmp_path):
    keys = ["../../escape", "/leading", "a//b", "dir/", "%2F", "é x+y", "a" * LIMITS.key_bytes, "..", "."]
    for i, key in enumerate(keys):
        store.put("birds", key, [str(i).encode()], Expected())
    for i, key in enumerate(keys):
        assert store.head("birds", key).path.read_bytes() == str(i).encode()
    assert not (tmp_path / "escape").exists() and not list((tmp_path / "s3").glob("*escape*"))
    assert _code(store.put, "birds", "a" * (LIMITS.key_bytes + 1), [b""], Expected()) == "KeyTooLongError"
    for bad in ("ab", "Bad_Name", "a..b", "192.168.1.1", "xn--bucket", "bucket-s3alias", "-bucket"):
        assert _code(store.create_bucket, bad) == "InvalidBucketName", bad
    assert store.create_bucket("birds") is False  # already ours


def test_listing_in_byte_order_with_prefixes_and_pages(store):
    for key in ["b/1", "b/2", "a", "b/c/3", "c", "b+", "é"]:
        store.put("birds", key, [b"x"], Expected())
    page = store.list_objects("birds")
    assert [o.key for o in page.objects] == ["a", "b+", "b/1", "b/2", "b/c/3", "c", "é"]
    page = store.list_objects("birds", delimiter="/")
    assert [o.key for o in page.objects] == ["a", "b+", "c", "é"] and page.prefixes == ["b/"]
    page = store.list_objects("birds", prefix="b/", delimiter="/")
    assert [o.key for o in page.objects] == ["b/1", "b/2"] and page.prefixes == ["b/c/"]
    seen, after = [], ""
    while True:  # pages of two, a common prefix counting as one
        page = store.list_objects("birds", delimiter="/", after=after, max_keys=2)
        seen += sorted([o.key for o in page.objects] + page.prefixes)
        if not page.truncated:
            break
        after = page.next_after
    assert seen == ["a", "b+", "b/", "c", "é"]
    store.delete("birds", "a")
    store.delete("birds", "a")  # deleting what is not there succeeds
    assert _code(store.delete_bucket, "birds") == "BucketNotEmpty"


def test_multipart_with_s3s_rules(store):
    part = b"x" * LIMITS.min_part_bytes
    upload = store.create_upload("birds", "big.rec", checksum_algorithm="CRC32")
    p1 = store.upload_part("birds", "big.rec", upload, 1, [part], Expected())
    p2 = store.upload_part("birds", "big.rec", upload, 2, [b"tail"], Expected())
    assert _code(store.complete, "birds", "big.rec", upload, [(2, p2.etag, {}), (1, p1.etag, {})]) == (
        "InvalidPartOrder"
    )
    assert _code(store.complete, "birds", "big.rec", upload, [(1, "0" * 32, {})]) == "InvalidPart"
    info = store.complete("birds", "big.rec", upload, [(1, f'"{p1.etag}"', {}), (2, p2.etag, {})])
    expected_etag = hashlib.md5(bytes.fromhex(p1.etag) + bytes.fromhex(p2.etag)).hexdigest() + "-2"
    assert info.etag == expected_etag and info.size == len(part) + 4 and info.checksum_type == "COMPOSITE"
    assert info.checksums["crc32"].endswith("-2") and store.head("birds", "big.rec").path.read_bytes()[-4:] == b"tail"
    assert _code(store.upload_part, "birds", "big.rec", upload, 3, [b"x"], Expected()) == "NoSuchUpload"
    small = store.create_upload("birds", "small")
    s1 = store.upload_part("birds", "small", small, 1, [b"a"], Expected())
    s2 = store.upload_part("birds", "small", small, 2, [b"b"], Expected())
    assert _code(store.complete, "birds", "small", small, [(1, s1.etag, {}), (2, s2.etag, {})]) == "EntityTooSmall"
    store.abort("birds", "small", small)
    assert _code(store.parts, "birds", "small", small) == "NoSuchUpload"
    assert store.sweep() == 0 and list(store.tmp.iterdir()) == []


def test_a_crash_leaves_nothing_the_next_start_keeps(store):
    (store.tmp / "half-written").write_bytes(b"partial")
    orphan = store.blob_path("ab" + "0" * 30)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"renamed, never committed")
    kept = store.put("birds", "k", [b"kept"], Expected())
    assert store.sweep() == 2
    assert store.head("birds", "k").path.read_bytes() == b"kept" and kept.path.is_file()
