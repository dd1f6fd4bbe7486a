from pathlib import Path

import pytest

from helpers import FIXTURES, make_rec_split


@pytest.fixture(scope="session")
def mxnet_fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"MXNet fixtures not found at {FIXTURES}; set ROOST_FIXTURES to the folder that holds mxnet/")
    return FIXTURES


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    """train.rec / val.rec of 3 classes (12 images each, a quarter for validation) and the train count."""
    return make_rec_split(tmp_path_factory.mktemp("recs"), per_class=12)


# --------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of the test run's own, or a skip that says why there is none."""
    from postgres import Cluster, Unavailable

    try:
        cluster = Cluster().start()
    except Unavailable as err:
        yield err
        return
    yield cluster
    cluster.stop()


def _new_database(request, sqlite_folder) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{sqlite_folder / 'roost.db'}"
    cluster = request.getfixturevalue("postgres")
    if isinstance(cluster, Exception):
        pytest.skip(str(cluster))
    return cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each kind Roost supports."""
    return _new_database(request, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request, tmp_path_factory):
    """:func:`database_url` for a module's tests to share (a server they all talk to)."""
    return _new_database(request, tmp_path_factory.mktemp("db"))
