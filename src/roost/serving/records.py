"""What SageMaker's serving resources share on Roost's server: their stored requests read safely, the one lookup
rule of every kind (models, endpoint configurations, endpoints, transform jobs), and models' artifacts fetched and
cached for the endpoints and transform jobs that load them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from roost.aws import Account, Service, ServiceError, validation
from roost.aws.shapes import conforming
from roost.storage.tables import Endpoint, EndpointConfig, Model, TransformJob
from roost.storage.uri import DataRoots, Location, download

if TYPE_CHECKING:
    from roost.serving.predictor import Predictor

Row = TypeVar("Row", Model, EndpointConfig, Endpoint, TransformJob)


def load_predictor(model_dir: Path) -> Predictor:
    """PyTorch loads with the first endpoint or transform job, not with the server: it is most of the import
    time of a process that otherwise only answers API calls (5.9 s to the first answer with it, 3.5 without)."""
    from roost.serving.predictor import Predictor

    return Predictor.load(model_dir)


#: the Create operation each stored kind of row was made by, and what a reader takes where a stored member no longer
#: fits its shape (a row an older Roost or a past bug left): one odd row never breaks a Describe or a page
_STORED: dict[type, tuple[str, dict[str, Any]]] = {
    Model: ("CreateModel", {}),
    EndpointConfig: ("CreateEndpointConfig", {"ProductionVariants": []}),
    TransformJob: (
        "CreateTransformJob",
        {
            "ModelName": "",
            "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": ""}}},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        },
    ),
}


def stored_request(row: Model | EndpointConfig | TransformJob) -> dict[str, Any]:
    operation, defaults = _STORED[type(row)]
    return {**defaults, **conforming("sagemaker", operation, row.request)}


def container_of(model: Model) -> dict[str, Any]:
    req = stored_request(model)
    return req.get("PrimaryContainer") or (req.get("Containers") or [{}])[0]


#: each kind's ARN resource type, and what SageMaker answers when one is not there
_KINDS: dict[type, tuple[str, Callable[[str, str], ServiceError]]] = {
    Model: ("model", lambda arn, name: validation(f'Could not find model "{arn}".')),
    EndpointConfig: (
        "endpoint-config",
        lambda arn, name: validation(f'Could not find endpoint configuration "{arn}".'),
    ),
    Endpoint: ("endpoint", lambda arn, name: validation(f'Could not find endpoint "{arn}".')),
    TransformJob: ("transform-job", lambda arn, name: validation(f"Could not find requested job with name {name}")),
}


class ServingService(Service):
    """The base of the endpoint and transform-job services: sessions, account, data roots, the model cache."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        data_dir: Path,
        account: Account | None = None,
        roots: DataRoots | None = None,
    ) -> None:
        self.sessions = sessions
        self.roots = roots  # the local folders models and batch data may come from and go to; None: any
        self.cache = Path(data_dir) / "models"
        self.account = account or Account()

    def arn(self, kind: str, name: str) -> str:
        return self.account.arn(kind, name)

    def find(
        self, s: Session, table: type[Row], name: Any, missing: Callable[[str, str], ServiceError] | None = None
    ) -> Row:
        """The row of ``table`` named ``name``, or the error SageMaker answers for that kind of resource (an
        operation that answers otherwise, as StopTransformJob's ResourceNotFound, gives its own ``missing``)."""
        row = s.get(table, name) if isinstance(name, str) else None
        if row is None:
            kind, not_found = _KINDS[table]
            raise (missing or not_found)(self.arn(kind, str(name)), str(name))
        return row

    def already(self, kind: str, what: str, name: str) -> ServiceError:
        return validation(f'Cannot create already existing {what} "{self.arn(kind, name)}".')

    def model_artifact(self, model_name: str, url: str) -> Path:
        # keyed by the URL too: a model deleted and created again under its name may point elsewhere
        digest = hashlib.sha1(url.encode()).hexdigest()[:12]
        target = self.cache / f"{model_name}-{digest}" / "model.tar.gz"
        if not target.is_file():
            loc = Location.parse(url)
            if loc.scheme == "file":
                return self.roots.check(loc.key, "the model") if self.roots else Path(loc.key)
            files = download(url, target.parent, self.roots)
            return files[0]
        return target
