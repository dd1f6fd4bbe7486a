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
