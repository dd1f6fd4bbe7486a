import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
#: MXNet-made ground truth lives beside the checkout (``../shared/fixtures``);
#: ROOST_FIXTURES points elsewhere when the layout differs.
FIXTURES = Path(os.environ.get("ROOST_FIXTURES", _REPO.parent / "shared" / "fixtures")) / "mxnet"


@pytest.fixture(scope="session")
def mxnet_fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"MXNet fixtures not found at {FIXTURES}; set ROOST_FIXTURES to the folder that holds mxnet/")
    return FIXTURES
