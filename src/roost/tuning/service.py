"""SageMaker's hyperparameter tuning-job operations on Roost's job database.

``CreateHyperParameterTuningJob``, ``Describe…``, ``List…``,
``ListTrainingJobsForHyperParameterTuningJob``, ``Stop…`` and ``Delete…`` take
and return SageMaker's shapes (docs/tuning.md). A :class:`TuningPlan` is what a
request means; the tuner (``roost.tuning.tuner``) carries it out, launching
training jobs through :class:`~roost.training.service.TrainingJobService`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from roost.aws import Account, Service, ServiceError, decode_page_token, encode_page_token, operation, validation
from roost.aws.shapes import check_request, conforming, echoed
from roost.storage.database import inserting
from roost.storage.listing import list_page, with_token
from roost.storage.tables import (
    ObjectiveStatus,
    TrainingJob,
    TrainingJobStatus,
    TuningJob,
    TuningJobStatus,
    TuningTrial,
)
from roost.storage.tags import drop_tags, set_tags
from roost.training.requests import from_definition
from roost.training.service import TrainingJobService, metric_definitions
from roost.tuning.objective import Objective
from roost.tuning.search import RangeError, SearchSpace, hyperband_resources

#: the hyperparameter SageMaker adds to every training job of a tuning job: the objective's name
OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"
#: SageMaker's limits (docs: automatic-model-tuning-limits); beyond them ResourceLimitExceeded
MAX_PARALLEL_JOBS = 100
MAX_JOBS = 750
MAX_RANDOM_JOBS = 10_000
MAX_HYPERPARAMETERS = 100
MAX_ACTIVE_TUNING_JOBS = 100
ACTIVE = (TuningJobStatus.IN_PROGRESS, TuningJobStatus.STOPPING)
TERMINAL = (TuningJobStatus.COMPLETED, TuningJobStatus.FAILED, TuningJobStatus.STOPPED)


@dataclass(frozen=True)
class TuningPlan:
    """What a CreateHyperParameterTuningJob request asks for, checked."""

    name: str
    strategy: str
    objective: Objective
    space: SearchSpace
    static: dict[str, str]
    definition: dict[str, Any]
    max_jobs: int
    max_parallel: int
    max_runtime: int | None
    early_stopping: str
    seed: int | None
    min_resource: int
    max_resource: int
    not_improving_limit: int | None
    complete_on_convergence: bool
    parents: tuple[str, ...]
    warm_start_type: str | None

    @classmethod
    def from_request(cls, req: Mapping[str, Any]) -> TuningPlan:
        """The plan of a request, or the ValidationException that says what is wrong with it."""
        config = req["HyperParameterTuningJobConfig"]
        definition = _definition(req)
        objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
        if not objective:
            raise validation(
                "HyperParameterTuningJobObjective is required: the image-classification algorithm is tuned on "
                "validation:accuracy (Type Maximize)",
                {"hyperParameterTuningJobConfig.hyperParameterTuningJobObjective": "required"},
            )
        static = {k: str(v) for k, v in (definition.get("StaticHyperParameters") or {}).items()}
        strategy = config["Strategy"]
        ranges = config.get("ParameterRanges") or definition.get("HyperParameterRanges")
        try:
            space = SearchSpace.parse(ranges, static)
        except RangeError as err:
            raise validation(str(err), {err.field: str(err)} if err.field else None) from None
        static = {k: v for k, v in static.items() if k not in space.by_name}  # a tuned value wins over a static one
        limits = config["ResourceLimits"]
        early = config.get("TrainingJobEarlyStoppingType") or "Off"
        max_jobs = _max_jobs(strategy, space, limits)
        min_resource, max_resource = _hyperband_resources(strategy, config, early, static)
        if len(static) + len(space.ranges) + 1 > MAX_HYPERPARAMETERS:
            raise validation(
                f"A tuning job has at most {MAX_HYPERPARAMETERS} hyperparameters, static and tuned together "
                f"(and {OBJECTIVE_HYPERPARAMETER}); this one has {len(static) + len(space.ranges) + 1}"
            )
        _check_objective_metric(objective, definition)
        criteria = config.get("TuningJobCompletionCriteria") or {}
        warm = req.get("WarmStartConfig") or {}
        return cls(
            name=req["HyperParameterTuningJobName"],
            strategy=strategy,
            objective=Objective(
                objective["MetricName"], objective["Type"] == "Maximize", criteria.get("TargetObjectiveMetricValue")
            ),
            space=space,
            static=static,
            definition=definition,
            max_jobs=max_jobs,
            max_parallel=limits["MaxParallelTrainingJobs"],
            max_runtime=limits.get("MaxRuntimeInSeconds"),
            early_stopping=early,
            seed=config.get("RandomSeed"),
            min_resource=min_resource,
            max_resource=max_resource,
            not_improving_limit=(criteria.get("BestObjectiveNotImproving") or {}).get(
                "MaxNumberOfTrainingJobsNotImproving"
            ),
            complete_on_convergence=(criteria.get("ConvergenceDetected") or {}).get("CompleteOnConvergence")
            == "Enabled",
            parents=parent_names(req),
            warm_start_type=warm.get("WarmStartType"),
        )

    def training_request(self, job_name: str, tuned: Mapping[str, str], tags: list | None) -> dict[str, Any]:
        """The CreateTrainingJob request of one training job of this tuning job."""
        hyperparameters = {**self.static, **tuned, OBJECTIVE_HYPERPARAMETER: self.objective.metric}
        if self.strategy == "Hyperband":
            hyperparameters["epochs"] = str(self.max_resource)  # MaxResource: where Hyperband stops every job
        return from_definition(self.definition, job_name, hyperparameters, tags)

    def first_point(self) -> dict[str, str]:
        """Hyperparameters of a job the plan could launch (each range's lower end), to check the definition."""
        return {r.name: r.extremes[0] for r in self.space.ranges}


def _max_jobs(strategy: str, space: SearchSpace, limits: Mapping[str, Any]) -> int:
    """How many training jobs a tuning job may start, counted before anything is made: a Grid's combinations
    are the product of its value counts, never the grid itself."""
    max_jobs = limits.get("MaxNumberOfTrainingJobs")
    if strategy == "Grid":
        if not space.categorical_only:
            raise validation(
                "The Grid strategy searches categorical ranges only: give every hyperparameter as "
                "CategoricalParameterRanges values",
                {"hyperParameterTuningJobConfig.strategy": "Grid takes categorical ranges only"},
            )
        combinations = space.grid_size
        if combinations > MAX_JOBS:
            message = (
                f"The Grid strategy would train {combinations} jobs, one for each combination of the categorical "
                f"values; a tuning job runs at most {MAX_JOBS}. Give fewer values, or use the Bayesian or "
                "Random strategy."
            )
            raise ServiceError(
                "ResourceLimitExceeded",
                message,
                fields={"hyperParameterTuningJobConfig.parameterRanges.categoricalParameterRanges": message},
            )
        if max_jobs is not None and max_jobs != combinations:
            message = (
                f"For the Grid strategy MaxNumberOfTrainingJobs must be left out or equal the number of "
                f"combinations of the categorical values, {combinations} (got {max_jobs})"
            )
            raise validation(message, {"hyperParameterTuningJobConfig.resourceLimits.maxNumberOfTrainingJobs": message})
        max_jobs = combinations
    elif max_jobs is None:
        raise validation(
            f"ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} strategy",
            {"hyperParameterTuningJobConfig.resourceLimits.maxNumberOfTrainingJobs": "required"},
        )
    cap = MAX_RANDOM_JOBS if strategy == "Random" else MAX_JOBS
    if max_jobs > cap:
        raise ServiceError(
            "ResourceLimitExceeded",
            f"MaxNumberOfTrainingJobs is {max_jobs}; a tuning job of strategy {strategy} runs at most {cap}.",
        )
    if limits["MaxParallelTrainingJobs"] > MAX_PARALLEL_JOBS:
        raise ServiceError(
            "ResourceLimitExceeded",
            f"MaxParallelTrainingJobs is {limits['MaxParallelTrainingJobs']}; the limit is {MAX_PARALLEL_JOBS}.",
        )
    return max_jobs


def _hyperband_resources(
    strategy: str, config: Mapping[str, Any], early: str, static: Mapping[str, str]
) -> tuple[int, int]:
    """Hyperband's (MinResource, MaxResource) in epochs; (1, 0) for the other strategies, which take no
    StrategyConfig."""
    if strategy != "Hyperband":
        if config.get("StrategyConfig"):
            raise validation("StrategyConfig is for the Hyperband strategy only")
        return 1, 0
    if early != "Off":
        raise validation(
            "TrainingJobEarlyStoppingType must be Off for the Hyperband strategy: Hyperband stops "
            "under-performing jobs itself"
        )
    try:
        return hyperband_resources(config.get("StrategyConfig"), static)
    except RangeError as err:
        raise validation(str(err), {err.field: str(err)} if err.field else None) from None


def _check_objective_metric(objective: Mapping[str, Any], definition: Mapping[str, Any]) -> None:
    names = {d["Name"] for d in metric_definitions({"AlgorithmSpecification": definition["AlgorithmSpecification"]})}
    if objective["MetricName"] not in names:
        message = (
            f"The objective metric {objective['MetricName']} is not one the training jobs emit: choose one of "
            f"{', '.join(sorted(names))} (or add it to AlgorithmSpecification.MetricDefinitions)"
        )
        raise validation(message, {"hyperParameterTuningJobConfig.hyperParameterTuningJobObjective": message})


def _definition(req: Mapping[str, Any]) -> dict[str, Any]:
    single, several = req.get("TrainingJobDefinition"), req.get("TrainingJobDefinitions")
    if (single is None) == (several is None):
        raise validation("Give exactly one of TrainingJobDefinition and TrainingJobDefinitions")
    if several is not None:
        if len(several) != 1:
            raise validation(
                "Roost tunes one algorithm at a time: TrainingJobDefinitions takes one definition (or give "
                "TrainingJobDefinition)"
            )
        return dict(several[0])
    assert single is not None
    return dict(single)


def parent_names(request: Mapping[str, Any]) -> tuple[str, ...]:
    """The tuning jobs a request warm-starts from."""
    warm = request.get("WarmStartConfig") or {}
    return tuple(p["HyperParameterTuningJobName"] for p in warm.get("ParentHyperParameterTuningJobs") or [])


def training_job_name(tuning_job: str, number: int, suffix: str) -> str:
    """``<tuning job>-NNN-<8 hex>``, as SageMaker names the jobs it launches."""
    return f"{tuning_job}-{number:03d}-{suffix}"


class TuningJobService(Service):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        training: TrainingJobService,
        account: Account | None = None,
        *,
        on_delete: Callable[[str], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.training = training
        self.account = account or Account()
        self.on_delete = on_delete  # the tuner drops the deleted tuning job's Optuna study

    def arn(self, name: str) -> str:
        return self.account.arn("hyper-parameter-tuning-job", name)

    # ------------------------------------------------------------------ create

    @operation("CreateHyperParameterTuningJob")
    def create_tuning_job(self, req: dict) -> dict:
        plan = TuningPlan.from_request(req)
        name = plan.name
        # a job this plan would launch must pass every CreateTrainingJob rule, checked now, not at the first launch
        sample = plan.training_request(training_job_name(name, 1, "00000000"), plan.first_point(), req.get("Tags"))
        check_request("sagemaker", "CreateTrainingJob", sample)
        self.training.check(sample)

        def in_use() -> ServiceError:
            return ServiceError(
                "ResourceInUse",
                f"A hyperparameter tuning job with the name, {name}, already exists. Choose a different name.",
                fields={"hyperParameterTuningJobName": "a tuning job of this name exists"},
            )

        now = time.time()
        with inserting(self.sessions, in_use) as s:
            if s.get(TuningJob, name) is not None:
                raise in_use()
            for parent in plan.parents:
                self._check_parent(s, plan, parent)
            active = s.scalar(select(func.count()).select_from(TuningJob).where(TuningJob.status.in_(ACTIVE))) or 0
            if active >= MAX_ACTIVE_TUNING_JOBS:
                raise ServiceError(
                    "ResourceLimitExceeded",
                    f"The account-level service limit 'Number of concurrent hyperparameter tuning jobs' is "
                    f"{MAX_ACTIVE_TUNING_JOBS}; {active} are in progress.",
                )
            s.add(
                TuningJob(
                    name=name,
                    arn=self.arn(name),
                    request=req,
                    status=TuningJobStatus.IN_PROGRESS,
                    creation_time=now,
                    last_modified_time=now,
                    stop_requested=False,
                )
            )
            s.flush()
            set_tags(s, self.arn(name), req.get("Tags"))
        return {"HyperParameterTuningJobArn": self.arn(name)}

    def _check_parent(self, s: Session, plan: TuningPlan, parent: str) -> None:
        row = s.get(TuningJob, parent)
        field = {"warmStartConfig.parentHyperParameterTuningJobs": f"{parent} cannot be a parent"}
        if row is None:
            raise validation(f"The parent tuning job {parent} of WarmStartConfig does not exist", field)
        if row.status not in TERMINAL:
            raise validation(
                f"The parent tuning job {parent} is {row.status}: warm start needs parents that have ended", field
            )
        if plan.warm_start_type == "IdenticalDataAndAlgorithm":
            theirs = TuningPlan.from_request(row.request)
            ours_data = [c["DataSource"] for c in plan.definition.get("InputDataConfig") or []]
            their_data = [c["DataSource"] for c in theirs.definition.get("InputDataConfig") or []]
            if ours_data != their_data or theirs.static != plan.static:
                raise validation(
                    f"WarmStartType IdenticalDataAndAlgorithm needs the same input data and static hyperparameters "
                    f"as the parent {parent}; use TransferLearning where they differ",
                    field,
                )

    # ------------------------------------------------------------------ describe / list

    def _row(self, s: Session, name: Any) -> TuningJob:
        row = s.get(TuningJob, name) if isinstance(name, str) else None
        if row is None:
            raise ServiceError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}")
        return row

    @operation("DescribeHyperParameterTuningJob")
    def describe_tuning_job(self, req: dict) -> dict:
        with self.sessions() as s:
            row = self._row(s, req.get("HyperParameterTuningJobName"))
            trials = trial_rows(s, row.name)
            parents = [
                (p, trial_rows(s, p.name))
                for p in (s.get(TuningJob, n) for n in parent_names(stored_request(row.request)))
                if p is not None
            ]
            return describe(row, trials, parents)

    @operation("ListHyperParameterTuningJobs")
    def list_tuning_jobs(self, req: dict) -> dict:
        rows, token = list_page(
            self.sessions,
            TuningJob,
            req,
            name=TuningJob.name,
            created=TuningJob.creation_time,
            modified=TuningJob.last_modified_time,
            status=TuningJob.status,
        )
        with self.sessions() as s:
            out = [tuning_summary(row, trial_rows(s, row.name)) for row in rows]
        return with_token({"HyperParameterTuningJobSummaries": out}, token)

    @operation("ListTrainingJobsForHyperParameterTuningJob")
    def list_training_jobs_for_tuning_job(self, req: dict) -> dict:
        with self.sessions() as s:
            row = self._row(s, req.get("HyperParameterTuningJobName"))
            objective = Objective.of(stored_request(row.request))
            items = [
                (t, j)
                for t, j in trial_rows(s, row.name)
                if not req.get("StatusEquals") or j.status == req["StatusEquals"]
            ]
        sort = req.get("SortBy") or "Name"
        descending = (req.get("SortOrder") or "Descending") == "Descending"
        if sort == "FinalObjectiveMetricValue":
            items = [(t, j) for t, j in items if t.objective is not None]  # jobs without one are left out, as AWS
            items.sort(key=lambda tj: (tj[0].objective, tj[1].name), reverse=descending)
        else:
            key = {
                "Name": lambda tj: tj[1].name,
                "CreationTime": lambda tj: tj[1].creation_time,
                "Status": lambda tj: tj[1].status,
            }[sort]
            items.sort(key=lambda tj: (key(tj), tj[1].name), reverse=descending)
        offset = decode_page_token(req.get("NextToken"))
        limit = req.get("MaxResults") or 10
        page = items[offset : offset + limit]
        token = encode_page_token(offset + limit) if offset + limit < len(items) else None
        return with_token({"TrainingJobSummaries": [job_summary(row.name, objective, t, j) for t, j in page]}, token)

    def trial_notes(self, name: str) -> dict[str, dict[str, Any]]:
        """What the API does not say about each training job of a tuning job (for the console): its trial number
        and who stopped it (``early-stopping`` or ``tuning-job``)."""
        with self.sessions() as s:
            return {
                t.training_job: {"number": t.trial_number, "stopped_by": t.stopped_by}
                for t in s.scalars(select(TuningTrial).where(TuningTrial.tuning_job == name))
            }

    # ------------------------------------------------------------------ stop / delete

    @operation("StopHyperParameterTuningJob")
    def stop_tuning_job(self, req: dict) -> dict:
        with self.sessions.begin() as s:
            row = self._row(s, req.get("HyperParameterTuningJobName"))
            if row.status != TuningJobStatus.IN_PROGRESS:
                # what the SDK's stop_tuning_job takes for "already stopped or not running"
                raise validation(f"The hyperparameter tuning job {row.name} is {row.status} and cannot be stopped.")
            row.stop_requested = True
            row.status = TuningJobStatus.STOPPING
            row.last_modified_time = time.time()
        return {}

    @operation("DeleteHyperParameterTuningJob")
    def delete_tuning_job(self, req: dict) -> dict:
        """The tuning job's record and its search; its training jobs, their artifacts and logs stay."""
        with self.sessions.begin() as s:
            row = self._row(s, req.get("HyperParameterTuningJobName"))
            if row.status not in TERMINAL:
                raise validation(
                    f"The hyperparameter tuning job {row.name} is {row.status}; stop it and wait until it is "
                    "Stopped before deleting it."
                )
            name = row.name
            drop_tags(s, row.arn)
            s.delete(row)
        if self.on_delete:
            self.on_delete(name)
        return {}


# ---------------------------------------------------------------------- shapes


class TrialJob(NamedTuple):
    """A tuning job's trial and the training job it launched (unpacks as ``trial, job``)."""

    trial: TuningTrial
    job: TrainingJob


def trial_rows(s: Session, tuning_job: str) -> list[TrialJob]:
    """A tuning job's trials with their training jobs, in launch order."""
    return [
        TrialJob(t, j)
        for t, j in s.execute(
            select(TuningTrial, TrainingJob)
            .join(TrainingJob, TrainingJob.name == TuningTrial.training_job)
            .where(TuningTrial.tuning_job == tuning_job)
            .order_by(TuningTrial.id)
        ).all()
    ]


def retryable(job: TrainingJob) -> bool:
    """Failed for the server's reasons (it restarted, a node was lost), not the job's: SageMaker's RetryableError."""
    return job.status == TrainingJobStatus.FAILED and (job.failure_reason or "").startswith("InternalServerError")


def counters(trials: Sequence[TrialJob]) -> tuple[dict[str, int], dict[str, int]]:
    """``TrainingJobStatusCounters`` and ``ObjectiveStatusCounters``."""
    status = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for t, j in trials:
        if j.status in (TrainingJobStatus.IN_PROGRESS, TrainingJobStatus.STOPPING):
            status["InProgress"] += 1
        elif j.status == TrainingJobStatus.FAILED:
            status["RetryableError" if retryable(j) else "NonRetryableError"] += 1
        else:
            status[j.status] += 1
        objective[t.objective_status] += 1
    return status, objective


def job_summary(tuning_job: str, objective: Objective, t: TuningTrial, j: TrainingJob) -> dict[str, Any]:
    """A ``HyperParameterTrainingJobSummary``."""
    out: dict[str, Any] = {
        "TrainingJobName": j.name,
        "TrainingJobArn": j.arn,
        "TuningJobName": tuning_job,
        "CreationTime": j.creation_time,
        "TrainingJobStatus": j.status,
        "TunedHyperParameters": t.tuned,
        "ObjectiveStatus": t.objective_status,
    }
    if j.training_start_time:
        out["TrainingStartTime"] = j.training_start_time
    if j.training_end_time:
        out["TrainingEndTime"] = j.training_end_time
    if j.failure_reason:
        out["FailureReason"] = j.failure_reason
    if t.objective is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": objective.type,
            "MetricName": objective.metric,
            "Value": t.objective,
        }
    return out


def objective_progress(trials: Sequence[TrialJob], objective: Objective) -> tuple[float | None, int, int]:
    """``(best objective, jobs in a row without a 1 % improvement of the best, jobs evaluated)``, over the jobs
    whose objective succeeded in the order they ended: what the completion criteria and
    ``TuningJobCompletionDetails`` read."""
    ended = sorted(
        (tj for tj in trials if tj[0].objective_status == ObjectiveStatus.SUCCEEDED and tj[0].objective is not None),
        key=lambda tj: tj[1].training_end_time or 0,
    )
    best: float | None = None
    not_improving = 0
    for t, _ in ended:
        value = t.objective
        assert value is not None
        not_improving = 0 if objective.improves(value, best) else not_improving + 1
        if objective.better(value, best):
            best = value
    return best, not_improving, len(ended)


def best_trial(trials: Sequence[TrialJob], objective: Objective) -> TrialJob | None:
    """The job with the best objective among those whose objective was evaluated."""
    scored = [tj for tj in trials if tj.trial.objective_status == ObjectiveStatus.SUCCEEDED]
    return objective.best_of(scored, lambda tj: tj.trial.objective)


def stored_request(raw: Any) -> dict[str, Any]:
    """A stored CreateHyperParameterTuningJob request as every reader may use it: what no longer fits its shape (a
    row an older Roost or a past bug left) read as the defaults, so that one odd row never breaks a Describe, a
    list or a console page."""
    req = conforming("sagemaker", "CreateHyperParameterTuningJob", raw)
    req.setdefault(
        "HyperParameterTuningJobConfig", {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 1}}
    )
    if "TrainingJobDefinition" not in req and len(req.get("TrainingJobDefinitions") or []) != 1:
        req.pop("TrainingJobDefinitions", None)
        req["TrainingJobDefinition"] = {}
    return req


def _config(row: TuningJob) -> dict[str, Any]:
    request = stored_request(row.request)
    config = dict(request["HyperParameterTuningJobConfig"])
    if config["Strategy"] == "Grid":  # the service fills in the combination count it inferred
        limits = dict(config["ResourceLimits"])
        categorical = (config.get("ParameterRanges") or _definition(request).get("HyperParameterRanges") or {}).get(
            "CategoricalParameterRanges"
        ) or []
        limits["MaxNumberOfTrainingJobs"] = math.prod(len(r["Values"]) for r in categorical)
        config["ResourceLimits"] = limits
    return config


def tuning_summary(row: TuningJob, trials: Sequence[TrialJob]) -> dict[str, Any]:
    status, objective = counters(trials)
    config = _config(row)
    out: dict[str, Any] = {
        "HyperParameterTuningJobName": row.name,
        "HyperParameterTuningJobArn": row.arn,
        "HyperParameterTuningJobStatus": row.status,
        "Strategy": config["Strategy"],
        "CreationTime": row.creation_time,
        "LastModifiedTime": row.last_modified_time,
        "TrainingJobStatusCounters": status,
        "ObjectiveStatusCounters": objective,
        "ResourceLimits": config["ResourceLimits"],
    }
    if row.end_time:
        out["HyperParameterTuningEndTime"] = row.end_time
    return out


def describe(
    row: TuningJob,
    trials: Sequence[TrialJob],
    parents: Sequence[tuple[TuningJob, Sequence[TrialJob]]] = (),
) -> dict[str, Any]:
    request = stored_request(row.request)
    objective = Objective.of(request)
    status, objective_status = counters(trials)
    out: dict[str, Any] = {
        **echoed("sagemaker", "CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob", request),
        "HyperParameterTuningJobName": row.name,
        "HyperParameterTuningJobArn": row.arn,
        "HyperParameterTuningJobConfig": _config(row),
        "HyperParameterTuningJobStatus": row.status,
        "CreationTime": row.creation_time,
        "LastModifiedTime": row.last_modified_time,
        "TrainingJobStatusCounters": status,
        "ObjectiveStatusCounters": objective_status,
        "TuningJobCompletionDetails": {
            "NumberOfTrainingJobsObjectiveNotImproving": objective_progress(trials, objective)[1]
        },
        "ConsumedResources": {"RuntimeInSeconds": int((row.end_time or time.time()) - row.creation_time)},
    }
    if row.convergence_time:
        out["TuningJobCompletionDetails"]["ConvergenceDetectedTime"] = row.convergence_time
    if row.end_time:
        out["HyperParameterTuningEndTime"] = row.end_time
    if row.failure_reason:
        out["FailureReason"] = row.failure_reason
    best = best_trial(trials, objective)
    if best is not None:
        out["BestTrainingJob"] = job_summary(row.name, objective, *best)
    if parents and (request.get("WarmStartConfig") or {}).get("WarmStartType") == "IdenticalDataAndAlgorithm":
        everything = [(row.name, tj) for tj in trials] + [(p.name, tj) for p, ts in parents for tj in ts]
        pick = best_trial([tj for _, tj in everything], objective)
        if pick is not None:
            owner = next(n for n, tj in everything if tj[0] is pick[0])
            out["OverallBestTrainingJob"] = job_summary(owner, objective, *pick)
    return out
