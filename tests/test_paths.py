"""The one "inside the root" rule: links resolved, refused on a server, skipped with a warning by the tools."""

import os

import pytest

from roost.paths import Confinement, OutsideRoot, inside, walk_files


def _tree(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"x")
    (root / "a" / "deep" / "y.png").write_bytes(b"y")
    (root / "a" / ".hidden.png").write_bytes(b"h")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"s")
    return root, outside


def test_inside_resolves_dots_and_links(tmp_path):
    root, outside = _tree(tmp_path)
    assert inside(root / "a" / "x.png", root) and inside(root, root)
    assert not inside(root / ".." / "outside" / "secret.png", root)
    assert not inside(tmp_path / "root2", root)  # a sibling whose name starts with the root's is not inside
    os.symlink(outside / "secret.png", root / "a" / "link.png")
    assert not inside(root / "a" / "link.png", root)


def test_a_server_refuses_and_a_tool_skips(tmp_path, caplog):
    root, outside = _tree(tmp_path)
    entries = ["a/x.png", "../outside/secret.png", str(outside / "secret.png")]
    server = Confinement([root], refuse=True, where=f"the channel {root}", fix="keep lists inside it")
    with pytest.raises(OutsideRoot, match=r"list.lst: line 2: .*secret.png is outside the channel .*keep lists"):
        server.keep(enumerate(entries, 1), lambda e: root / e[1], "list.lst", lambda e: e[0])
    tool = Confinement([root], refuse=False, where="the root")
    assert tool.keep(entries, lambda e: root / e, "list.lst") == ["a/x.png"]
    assert "list.lst: skipped 2 entries outside the root" in caplog.text
    assert tool.skipped == [str(root / "../outside/secret.png"), str(outside / "secret.png")]
    with pytest.raises(OutsideRoot, match="the location /etc is outside the root"):
        tool.check("/etc", "the location")  # a path the reader cannot do without is refused either way


def test_walk_follows_links_inside_once_and_never_out(tmp_path, caplog):
    root, outside = _tree(tmp_path)
    os.symlink(root / "a", root / "a" / "deep" / "loop")  # a cycle
    os.symlink(outside, root / "a" / "out")  # a folder outside
    os.symlink(outside / "secret.png", root / "a" / "secret.png")  # a file outside
    os.symlink(root / "a" / "x.png", root / "a" / "z.png")  # a link that stays inside
    found = [p.relative_to(root).as_posix() for p in walk_files(root)]
    assert found == ["a/deep/y.png", "a/x.png", "a/z.png"]
    assert "skipped 2 entries outside the folder" in caplog.text
    with pytest.raises(OutsideRoot, match="a/out leads outside"):
        list(walk_files(root, Confinement([root], refuse=True)))
