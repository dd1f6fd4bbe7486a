"""Batch transform on Roost's server: ``CreateTransformJob`` predicts every image under a prefix with a model and
writes ``<image>.out`` files beside where the job's output goes; a job that was running when the server stopped
starts over at the next start (it rewrites the same outputs)."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

from roost.algorithm.layout import FAILURE_LIMIT
from roost.aws import ServiceError, operation, validation
from roost.aws.shapes import echoed
from roost.errors import UserError
from roost.serving.invocations import InputError, render
from roost.serving.records import ServingService, container_of, load_predictor, stored_request
from roost.storage.database import fetch, inserting
from roost.storage.listing import list_page, with_token
from roost.storage.tables import Model, TransformJob, TransformJobStatus
from roost.storage.tags import set_tags
from roost.storage.uri import Location, StorageError, download, upload

log = logging.getLogger(__name__)


class TransformJobService(ServingService):
    def restore(self) -> None:
        """After a restart: a transform job that was running starts over; one that was stopping is Stopped."""
        with self.sessions.begin() as s:
            running = []
            for t in s.scalars(
                select(TransformJob).where(
                    TransformJob.status.in_((TransformJobStatus.IN_PROGRESS, TransformJobStatus.STOPPING))
                )
            ).all():
                if t.status == TransformJobStatus.STOPPING:
                    t.status, t.end_time = TransformJobStatus.STOPPED, time.time()
                else:
                    running.append(t.name)
        for name in running:
            self._start(name)

    def _start(self, name: str) -> None:
        threading.Thread(target=self._transform, args=(name,), name=f"transform-{name}", daemon=True).start()

    @operation("CreateTransformJob")
    def create_transform_job(self, req: dict) -> dict:
        name = req["TransformJobName"]
        src = ((req.get("TransformInput") or {}).get("DataSource") or {}).get("S3DataSource") or {}
        out = (req.get("TransformOutput") or {}).get("S3OutputPath")
        if not src.get("S3Uri") or not out:
            raise validation(
                "TransformInput.DataSource.S3DataSource.S3Uri and TransformOutput.S3OutputPath are required"
            )
        if self.roots is not None:
            try:
                self.roots.check_uri(src["S3Uri"], "the transform input")
                self.roots.check_uri(out, "the transform output")
            except StorageError as err:
                raise validation(str(err)) from None

        def in_use() -> ServiceError:
            return ServiceError(
                "ResourceInUse",
                f"Job name must be unique within an AWS account and region, and a "
                f"job with this name already exists ({self.arn('transform-job', name)})",
            )

        with inserting(self.sessions, in_use) as s:
            self.find(s, Model, req.get("ModelName"))
            if s.get(TransformJob, name) is not None:
                raise in_use()
            s.add(
                TransformJob(
                    name=name,
                    arn=self.arn("transform-job", name),
                    request=req,
                    status=TransformJobStatus.IN_PROGRESS,
                    creation_time=time.time(),
                )
            )
            set_tags(s, self.arn("transform-job", name), req.get("Tags"))
        self._start(name)
        return {"TransformJobArn": self.arn("transform-job", name)}

    @operation("DescribeTransformJob")
    def describe_transform_job(self, req: dict) -> dict:
        with self.sessions() as s:
            t = self.find(s, TransformJob, req.get("TransformJobName"))
            out = {
                **echoed("sagemaker", "CreateTransformJob", "DescribeTransformJob", stored_request(t)),
                "TransformJobName": t.name,
                "TransformJobArn": t.arn,
                "TransformJobStatus": t.status,
                "CreationTime": t.creation_time,
            }
            for key, value in (
                ("TransformStartTime", t.start_time),
                ("TransformEndTime", t.end_time),
                ("FailureReason", t.failure_reason),
            ):
                if value is not None:
                    out[key] = value
            return out

    def _transform_stopping(self, name: str) -> bool:
        with self.sessions() as s:
            return fetch(s, TransformJob, name).status == TransformJobStatus.STOPPING

    @operation("ListTransformJobs")
    def list_transform_jobs(self, req: dict) -> dict:
        modified = func.coalesce(TransformJob.end_time, TransformJob.start_time, TransformJob.creation_time)
        rows, token = list_page(
            self.sessions,
            TransformJob,
            req,
            name=TransformJob.name,
            created=TransformJob.creation_time,
            modified=modified,
            status=TransformJob.status,
        )
        summaries = []
        for t in rows:
            row = {
                "TransformJobName": t.name,
                "TransformJobArn": t.arn,
                "CreationTime": t.creation_time,
                "LastModifiedTime": t.end_time or t.start_time or t.creation_time,
                "TransformJobStatus": t.status,
            }
            if t.end_time:
                row["TransformEndTime"] = t.end_time
            if t.failure_reason:
                row["FailureReason"] = t.failure_reason
            summaries.append(row)
        return with_token({"TransformJobSummaries": summaries}, token)

    @operation("StopTransformJob")
    def stop_transform_job(self, req: dict) -> dict:
        """The job stops after the record in progress; what it wrote stays."""
        with self.sessions.begin() as s:
            t = self.find(
                s,
                TransformJob,
                req["TransformJobName"],
                lambda arn, name: ServiceError("ResourceNotFound", f"Transform job {name} does not exist."),
            )
            if t.status not in (TransformJobStatus.IN_PROGRESS, TransformJobStatus.STOPPING):
                raise validation(f"The transform job is in status {t.status} and cannot be stopped.")
            t.status = TransformJobStatus.STOPPING
        return {}

    def _transform(self, name: str) -> None:
        try:
            with self.sessions.begin() as s:
                t = fetch(s, TransformJob, name)
                t.start_time = time.time()
                req = stored_request(t)
                model = s.get(Model, req["ModelName"])
                if model is None:
                    raise UserError(f"model {req['ModelName']!r} no longer exists")
                url = container_of(model)["ModelDataUrl"]
            predictor = load_predictor(self.model_artifact(req["ModelName"], url))
            src = req["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
            out = Location.parse(req["TransformOutput"]["S3OutputPath"])
            accept = req["TransformOutput"].get("Accept") or "application/jsonlines"
            with tempfile.TemporaryDirectory() as tmp:
                inputs = Path(tmp) / "in"
                files = download(src, inputs, self.roots)
                failed = []
                for f in files:
                    if self._transform_stopping(name):
                        break
                    rel = f.relative_to(inputs).as_posix()
                    try:
                        payload, _ = render(
                            predictor.predict([f.read_bytes()]), accept, {}, predictor.class_names, several=False
                        )
                    except InputError as err:
                        failed.append(f"{rel}: {err}")
                        continue
                    result = Path(tmp) / "out" / (rel + ".out")
                    result.parent.mkdir(parents=True, exist_ok=True)
                    result.write_bytes(payload)
                    upload(result, out.join(rel + ".out"), self.roots)
            if self._transform_stopping(name):
                status, reason = TransformJobStatus.STOPPED, None
            elif failed:
                status, reason = TransformJobStatus.FAILED, ("ClientError: " + "; ".join(failed))[:FAILURE_LIMIT]
            else:
                status, reason = TransformJobStatus.COMPLETED, None
        except UserError as err:
            status, reason = TransformJobStatus.FAILED, f"ClientError: {err}"
        except Exception as err:  # noqa: BLE001
            log.exception("transform job %s failed", name)
            status, reason = TransformJobStatus.FAILED, f"InternalServerError: {err}"
        with self.sessions.begin() as s:
            t = fetch(s, TransformJob, name)
            t.status, t.failure_reason, t.end_time = status, reason, time.time()
