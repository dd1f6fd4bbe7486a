from roost.storage.uri import download


def test_sharded_by_key_gives_each_host_every_nth_object_in_key_order(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("a.rec", "b.rec", "c.rec", "sub/d.rec", "e.rec"):
        (src / name).write_text(name)
    got = [
        sorted(
            p.relative_to(tmp_path / f"host{i}").as_posix()
            for p in download(str(src), tmp_path / f"host{i}", shard=(i, 2))
        )
        for i in range(2)
    ]
    assert got == [["a.rec", "c.rec", "sub/d.rec"], ["b.rec", "e.rec"]]
    assert download(str(src / "a.rec"), tmp_path / "x", shard=(1, 2)) == []  # fewer objects than hosts: idle
    assert len(download(str(src), tmp_path / "all")) == 5


def test_a_rec_file_brings_its_index_list_and_class_names(tmp_path):
    """A channel given as one .rec gets what its folder would give: the .idx, the .lst and classes.json beside it."""
    import json

    import pytest

    from roost.storage.uri import DataRoots, StorageError

    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.rec", "train.idx", "train.lst", "val.rec"):
        (data / name).write_bytes(b"x")
    (data / "classes.json").write_text(json.dumps(["bird", "cat"]))
    got = download(str(data / "train.rec"), tmp_path / "job" / "train")
    assert got == [tmp_path / "job" / "train" / "train.rec"]
    assert sorted(p.name for p in (tmp_path / "job" / "train").iterdir()) == [
        "classes.json",
        "train.idx",
        "train.lst",
        "train.rec",
    ]
    # on a server, the companions are held to the data roots like the file (a link may lead anywhere)
    (data / "classes.json").unlink()
    outside = tmp_path / "outside.json"
    outside.write_text("[]")
    (data / "classes.json").symlink_to(outside)
    with pytest.raises(StorageError, match="classes.json is outside the folders"):
        download(str(data / "train.rec"), tmp_path / "job2" / "train", DataRoots([data]))


def test_an_unreachable_s3_location_names_the_store_and_the_setting(monkeypatch):
    import pytest

    from roost.storage.uri import StorageError, exists

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    with pytest.raises(
        StorageError, match=r"s3://my-bucket/train/: cannot list objects in AWS S3 \(.*AWS_ENDPOINT_URL_S3"
    ):
        exists("s3://my-bucket/train/")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StorageError, match=r"cannot list objects in the S3-compatible store at http://127.0.0.1:9"):
        exists("s3://my-bucket/train/")
