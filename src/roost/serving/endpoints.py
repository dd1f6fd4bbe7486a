"""SageMaker hosting on Roost's server: models, endpoint configurations, endpoints and their invocations.

``CreateModel`` records a ``ModelDataUrl`` (Roost's or SageMaker's own
``model.tar.gz``); ``CreateEndpoint`` loads it in the background (Creating, then
InService or Failed with a reason) with ``InitialInstanceCount`` serving workers;
``InvokeEndpoint`` answers exactly as ``/invocations`` does. Endpoints come back
after a server restart. Batch transform is ``roost.serving.transform``.

Each serving worker stands for one of the variant's instances and logs, as
SageMaker's do, to ``/aws/sagemaker/Endpoints/<endpoint>``, stream
``<variant>/i-<id>``: the model it loaded (or why it could not), the requests it
refused or failed, and its stop. A request is put down to the instances in turn,
as SageMaker's load balancer spreads requests over them.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import Account, ServiceError, operation, validation
from roost.aws.shapes import echoed
from roost.cloudwatch.logs import LogSink, endpoint_group
from roost.errors import UserError
from roost.serving.batching import DynamicBatcher
from roost.serving.invocations import InputError, RequestTooLarge, answer
from roost.serving.records import ServingService, container_of, load_predictor, stored_request
from roost.storage.database import inserting
from roost.storage.listing import list_page, with_token
from roost.storage.tables import Endpoint, EndpointConfig, EndpointStatus, Model
from roost.storage.tags import drop_tags, set_tags
from roost.storage.uri import DataRoots, Location, StorageError, exists

log = logging.getLogger(__name__)

#: images that concurrent requests to one endpoint may share in a forward pass
MAX_BATCH = 8
TOO_LARGE_MESSAGE = "Request payload exceeds the 6 MB (6291456 bytes) limit."


@dataclass
class Hosted:
    model: DynamicBatcher
    variant: str
    log_group: str
    instances: list[str]  # their log streams

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(self.instances)

    def next_instance(self) -> str:
        return next(self._turn)


def instance_streams(variant: str, count: int) -> list[str]:
    # SageMaker's instance ids: "i-" and 17 hex digits; new ones each time an endpoint is (re)started
    return [f"{variant}/i-{secrets.token_hex(9)[:17]}" for _ in range(max(1, count))]


class EndpointService(ServingService):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        data_dir: Path,
        account: Account | None = None,
        roots: DataRoots | None = None,
        max_instances: int = 8,
    ) -> None:
        super().__init__(sessions, data_dir, account, roots)
        self.max_instances = max_instances  # an endpoint's serving workers (InitialInstanceCount)
        self.hosted: dict[str, Hosted] = {}
        self._lock = threading.Lock()
        self.logs = LogSink(sessions)

    def close(self) -> None:
        """On shutdown: workers stop and the endpoints' logs are written out."""
        with self._lock:
            hosted, self.hosted = list(self.hosted.values()), {}
        for h in hosted:
            self._stop(h, "the server is shutting down")
        self.logs.close()

    def _log(self, hosted: Hosted, stream: str, message: str) -> None:
        self.logs.write(hosted.log_group, stream, message)

    def _stop(self, hosted: Hosted, why: str) -> None:
        hosted.model.close()
        for stream in hosted.instances:
            self._log(hosted, stream, f"Stopping the serving worker: {why}")

    # ------------------------------------------------------------------ models

    @operation("CreateModel")
    def create_model(self, req: dict) -> dict:
        name = req["ModelName"]
        container = req.get("PrimaryContainer") or (req.get("Containers") or [None])[0]
        url = (container or {}).get("ModelDataUrl")
        if not url:
            raise validation("PrimaryContainer.ModelDataUrl is required: the model.tar.gz of a training job")
        try:
            # the name the data is stored under must end so, not a query or fragment after it
            if not Location.parse(str(url)).key.endswith((".tar.gz", ".tgz")):
                raise validation(f"Could not access model data at {url}. ModelDataUrl must point to a tar.gz file.")
            if not exists(url, self.roots):
                raise validation(f"Could not find model data at {url}.")
        except StorageError as err:
            raise validation(str(err)) from None
        with inserting(self.sessions, lambda: self.already("model", "model", name)) as s:
            if s.get(Model, name) is not None:
                raise self.already("model", "model", name)
            s.add(Model(name=name, arn=self.arn("model", name), request=req, creation_time=time.time()))
            set_tags(s, self.arn("model", name), req.get("Tags"))
        return {"ModelArn": self.arn("model", name)}

    @operation("DescribeModel")
    def describe_model(self, req: dict) -> dict:
        with self.sessions() as s:
            m = self.find(s, Model, req.get("ModelName"))
            return {
                **echoed("sagemaker", "CreateModel", "DescribeModel", stored_request(m)),
                "ModelName": m.name,
                "ModelArn": m.arn,
                "CreationTime": m.creation_time,
                "EnableNetworkIsolation": stored_request(m).get("EnableNetworkIsolation", False),
            }

    @operation("ListModels")
    def list_models(self, req: dict) -> dict:
        rows, token = list_page(
            self.sessions,
            Model,
            req,
            name=Model.name,
            created=Model.creation_time,
        )
        summaries = [{"ModelName": m.name, "ModelArn": m.arn, "CreationTime": m.creation_time} for m in rows]
        return with_token({"Models": summaries}, token)

    @operation("DeleteModel")
    def delete_model(self, req: dict) -> dict:
        with self.sessions.begin() as s:
            model = self.find(s, Model, req.get("ModelName"))
            drop_tags(s, model.arn)
            s.delete(model)
        return {}

    # ------------------------------------------------------------------ endpoint configs

    @operation("CreateEndpointConfig")
    def create_endpoint_config(self, req: dict) -> dict:
        name = req["EndpointConfigName"]
        variants = req.get("ProductionVariants") or []
        if len(variants) != 1:
            # SageMaker splits traffic between up to 10; Roost would serve only one of them, so it says so instead
            raise validation(
                f"Roost serves one production variant per endpoint; this configuration has {len(variants)} "
                f"({', '.join(v.get('VariantName', '?') for v in variants)}). Create an endpoint per variant."
            )
        count = variants[0].get("InitialInstanceCount", 1)
        if count > self.max_instances:
            raise ServiceError(
                "ResourceLimitExceeded",
                f"InitialInstanceCount is {count}; this server runs an endpoint on at most {self.max_instances} "
                "instances (serving workers). The operator raises it with roost server --max-instances-per-job.",
            )
        with inserting(self.sessions, lambda: self.already("endpoint-config", "endpoint configuration", name)) as s:
            for v in variants:
                self.find(s, Model, v.get("ModelName"))
            if s.get(EndpointConfig, name) is not None:
                raise self.already("endpoint-config", "endpoint configuration", name)
            s.add(
                EndpointConfig(name=name, arn=self.arn("endpoint-config", name), request=req, creation_time=time.time())
            )
            set_tags(s, self.arn("endpoint-config", name), req.get("Tags"))
        return {"EndpointConfigArn": self.arn("endpoint-config", name)}

    @operation("DescribeEndpointConfig")
    def describe_endpoint_config(self, req: dict) -> dict:
        with self.sessions() as s:
            c = self.find(s, EndpointConfig, req.get("EndpointConfigName"))
            return {
                "ProductionVariants": [],
                **echoed("sagemaker", "CreateEndpointConfig", "DescribeEndpointConfig", stored_request(c)),
                "EndpointConfigName": c.name,
                "EndpointConfigArn": c.arn,
                "CreationTime": c.creation_time,
            }

    @operation("ListEndpointConfigs")
    def list_endpoint_configs(self, req: dict) -> dict:
        rows, token = list_page(
            self.sessions,
            EndpointConfig,
            req,
            name=EndpointConfig.name,
            created=EndpointConfig.creation_time,
        )
        summaries = [
            {"EndpointConfigName": c.name, "EndpointConfigArn": c.arn, "CreationTime": c.creation_time} for c in rows
        ]
        return with_token({"EndpointConfigs": summaries}, token)

    @operation("DeleteEndpointConfig")
    def delete_endpoint_config(self, req: dict) -> dict:
        with self.sessions.begin() as s:
            config = self.find(s, EndpointConfig, req.get("EndpointConfigName"))
            drop_tags(s, config.arn)
            s.delete(config)
        return {}

    # ------------------------------------------------------------------ endpoints

    @operation("CreateEndpoint")
    def create_endpoint(self, req: dict) -> dict:
        name = req["EndpointName"]
        with inserting(self.sessions, lambda: self.already("endpoint", "endpoint", name)) as s:
            self.find(s, EndpointConfig, req.get("EndpointConfigName"))
            if s.get(Endpoint, name) is not None:
                raise self.already("endpoint", "endpoint", name)
            now = time.time()
            s.add(
                Endpoint(
                    name=name,
                    arn=self.arn("endpoint", name),
                    config_name=req["EndpointConfigName"],
                    status=EndpointStatus.CREATING,
                    creation_time=now,
                    last_modified_time=now,
                )
            )
            set_tags(s, self.arn("endpoint", name), req.get("Tags"))
        self._start_loading(name)
        return {"EndpointArn": self.arn("endpoint", name)}

    @operation("UpdateEndpoint")
    def update_endpoint(self, req: dict) -> dict:
        with self.sessions.begin() as s:
            e = self.find(s, Endpoint, req.get("EndpointName"))
            self.find(s, EndpointConfig, req.get("EndpointConfigName"))
            if e.status not in (EndpointStatus.IN_SERVICE, EndpointStatus.FAILED):
                raise validation(f'Cannot update in-progress endpoint "{e.arn}".')
            e.config_name, e.status, e.last_modified_time = (
                req["EndpointConfigName"],
                EndpointStatus.UPDATING,
                time.time(),
            )
        self._start_loading(req["EndpointName"])
        return {"EndpointArn": self.arn("endpoint", req["EndpointName"])}

    @operation("DescribeEndpoint")
    def describe_endpoint(self, req: dict) -> dict:
        with self.sessions() as s:
            e = self.find(s, Endpoint, req.get("EndpointName"))
            config = s.get(EndpointConfig, e.config_name)
            variants = stored_request(config)["ProductionVariants"] if config else []
        out = {
            "EndpointName": e.name,
            "EndpointArn": e.arn,
            "EndpointConfigName": e.config_name,
            "EndpointStatus": e.status,
            "CreationTime": e.creation_time,
            "LastModifiedTime": e.last_modified_time,
            "ProductionVariants": [
                {
                    "VariantName": v.get("VariantName", "AllTraffic"),
                    "CurrentWeight": 1.0,
                    "DesiredWeight": 1.0,
                    "CurrentInstanceCount": v.get("InitialInstanceCount", 1),
                    "DesiredInstanceCount": v.get("InitialInstanceCount", 1),
                }
                for v in variants
            ],
        }
        if e.failure_reason:
            out["FailureReason"] = e.failure_reason
        return out

    @operation("ListEndpoints")
    def list_endpoints(self, req: dict) -> dict:
        rows, token = list_page(
            self.sessions,
            Endpoint,
            req,
            name=Endpoint.name,
            created=Endpoint.creation_time,
            modified=Endpoint.last_modified_time,
            status=Endpoint.status,
        )
        summaries = [
            {
                "EndpointName": e.name,
                "EndpointArn": e.arn,
                "CreationTime": e.creation_time,
                "LastModifiedTime": e.last_modified_time,
                "EndpointStatus": e.status,
            }
            for e in rows
        ]
        return with_token({"Endpoints": summaries}, token)

    @operation("DeleteEndpoint")
    def delete_endpoint(self, req: dict) -> dict:
        with self.sessions.begin() as s:
            endpoint = self.find(s, Endpoint, req.get("EndpointName"))
            drop_tags(s, endpoint.arn)
            s.delete(endpoint)
        with self._lock:
            hosted = self.hosted.pop(req["EndpointName"], None)
        if hosted:
            self._stop(hosted, "the endpoint was deleted")
        return {}

    def restore(self) -> None:
        """After a restart: every endpoint that was serving (or on its way) is loaded again."""
        with self.sessions.begin() as s:
            serving = (EndpointStatus.IN_SERVICE, EndpointStatus.CREATING, EndpointStatus.UPDATING)
            endpoints = s.scalars(select(Endpoint).where(Endpoint.status.in_(serving))).all()
            for e in endpoints:
                if e.status == EndpointStatus.IN_SERVICE:
                    e.status = EndpointStatus.CREATING
            names = [e.name for e in endpoints]
        for name in names:
            self._start_loading(name)

    def _start_loading(self, name: str) -> None:
        threading.Thread(target=self._load, args=(name,), name=f"endpoint-{name}", daemon=True).start()

    def _load(self, name: str) -> None:
        streams: list[str] = []
        group = endpoint_group(name)
        try:
            with self.sessions() as s:
                e = self.find(s, Endpoint, name)
                config = s.get(EndpointConfig, e.config_name)
                if config is None:
                    raise UserError(f"the endpoint configuration {e.config_name!r} no longer exists")
                variants = stored_request(config)["ProductionVariants"]
                if not variants:
                    raise UserError(f"the endpoint configuration {e.config_name!r} has no production variant")
                variant = variants[0]
                variant_name = variant.get("VariantName", "AllTraffic")
                workers = max(1, int(variant.get("InitialInstanceCount") or 1))
                streams = instance_streams(variant_name, workers)
                model = s.get(Model, variant["ModelName"])
                if model is None:
                    raise UserError(
                        f"the endpoint configuration names model {variant['ModelName']!r}, which no longer exists"
                    )
                url = container_of(model)["ModelDataUrl"]
            for stream in streams:
                self.logs.write(group, stream, f"Loading model {model.name} from {url}")
            predictor = load_predictor(self.model_artifact(model.name, url))
            hosted = Hosted(
                DynamicBatcher(predictor, MAX_BATCH, workers, name=f"{name}-worker"),
                variant_name,
                group,
                streams,
            )
            with self.sessions() as s:
                if s.get(Endpoint, name) is None:  # deleted while it was loading
                    self._stop(hosted, "the endpoint was deleted while its model loaded")
                    return
            meta = predictor.meta
            for i, stream in enumerate(streams):
                self._log(
                    hosted,
                    stream,
                    f"Model loaded: ResNet-{meta.num_layers}, {meta.num_classes} classes, image shape "
                    f"{','.join(map(str, meta.image_shape))}, {'multi-label' if meta.multi_label else 'single-label'}"
                    f", on {predictor.device}; serving worker {i + 1} of {workers} is ready "
                    f"(up to {MAX_BATCH} images per forward pass)",
                )
            with self._lock:
                old = self.hosted.get(name)
                self.hosted[name] = hosted
            if old:
                self._stop(old, "the endpoint was updated; new instances serve it")
            self._set_status(name, EndpointStatus.IN_SERVICE)
        except Exception as err:  # noqa: BLE001 - the endpoint must end Failed with a reason
            log.exception("endpoint %s failed to load", name)
            for stream in streams or instance_streams("AllTraffic", 1):
                self.logs.write(group, stream, f"Failed to load the model: {err}")
            self._set_status(name, EndpointStatus.FAILED, f"Failed to load the model: {err}")

    def _set_status(self, name: str, status: EndpointStatus, reason: str | None = None) -> None:
        with self.sessions.begin() as s:
            e = s.get(Endpoint, name)
            if e is not None:
                e.status, e.failure_reason, e.last_modified_time = status, reason, time.time()

    # ------------------------------------------------------------------ invocations

    def invoke(self, name: str, body: bytes, content_type: str, accept: str, custom_attributes: str | None):
        """``(payload, media type, variant)``; ``ServiceError`` shaped as the runtime API answers."""
        with self._lock:
            hosted = self.hosted.get(name)
        if hosted is None:
            with self.sessions() as s:
                e = s.get(Endpoint, name)
            if e is None:
                raise ServiceError(
                    "ValidationError", f"Endpoint {name} of account {self.account.account_id} not found."
                )
            raise ServiceError("ValidationError", f"Endpoint {name} is not in service (status {e.status}).")
        instance = hosted.next_instance()
        try:
            payload, media = answer(hosted.model, body, content_type, accept, custom_attributes)
        except RequestTooLarge:
            self._log(hosted, instance, f"Refused an invocation: {TOO_LARGE_MESSAGE}")
            raise ServiceError("ValidationError", TOO_LARGE_MESSAGE) from None
        except InputError as err:
            self._log(hosted, instance, f"Refused an invocation ({err.status}): {err}")
            message = (
                f'Received client error ({err.status}) from primary with message "{json.dumps({"error": str(err)})}".'
            )
            raise ServiceError(
                "ModelError",
                message,
                424,
                OriginalStatusCode=err.status,
                OriginalMessage=message,
                ErrorCode="CLIENT_ERROR_FROM_MODEL",
            ) from None
        except Exception as err:
            self._log(hosted, instance, f"Invocation failed: {type(err).__name__}: {err}")
            raise
        return payload, media, hosted.variant
