"""Carries out hyperparameter tuning jobs: Optuna's ask-and-tell loop over Roost's own training jobs.

Every tick, for each tuning job in progress, the tuner

1. tells Optuna each running job's new per-epoch objective values (the
   ``validation:accuracy`` datapoints the runner extracted from its log) and
   stops a job the pruner gives up on (Auto early stopping, Hyperband);
2. tells Optuna how each ended job ended (complete, pruned, failed), and asks
   again for the parameters of a job that failed for the server's reasons;
3. checks the completion criteria (target, no improvement, convergence,
   MaxRuntimeInSeconds) and a requested stop;
4. launches new training jobs from Optuna's asks while fewer than
   MaxParallelTrainingJobs run and the budget lasts.

All state is in the database (Roost's rows and Optuna's study), so a restarted
server picks every tuning job up where it was.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from roost.algorithm.layout import FAILURE_LIMIT
from roost.aws import ServiceError
from roost.aws.shapes import check_request
from roost.cloudwatch.metrics import NAMESPACE
from roost.storage.database import fetch
from roost.storage.tables import (
    MetricDatum,
    ObjectiveStatus,
    Tag,
    TrainingJob,
    TrainingJobStatus,
    TuningJob,
    TuningJobStatus,
    TuningTrial,
)
from roost.training.service import TrainingJobService
from roost.tuning.search import pruner_for, sampler_for
from roost.tuning.service import (
    ACTIVE,
    MAX_JOBS,
    TrialJob,
    TuningPlan,
    best_trial,
    objective_progress,
    retryable,
    training_job_name,
    trial_rows,
)

log = logging.getLogger(__name__)

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: the first jobs of a tuning job that, all failing for their own reasons, fail the tuning job (the definition
#: is broken: every further job would fail the same way)
FIRST_FAILURES = 3
#: convergence (inferred; SageMaker's test is undisclosed): this many evaluated jobs at least, and the last
#: quarter of the budget (at least 5 jobs) without a 1 % improvement
CONVERGENCE_MIN_JOBS = 10
BUDGET_SPENT = "MaxNumberOfTrainingJobs reached"
RUNNING_JOB = (TrainingJobStatus.IN_PROGRESS, TrainingJobStatus.STOPPING)
Trials = Sequence[TrialJob]


class Tuner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        training: TrainingJobService,
        storage: Any,
        *,
        poll: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.training = training
        self.storage = storage  # Optuna's RDB storage (roost.storage.database.optuna_storage)
        self.poll = poll
        self._studies: dict[str, tuple[TuningPlan, optuna.Study]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="roost-tuner", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.poll)

    def tick(self) -> None:
        with self.sessions() as s:
            names = s.scalars(select(TuningJob.name).where(TuningJob.status.in_(ACTIVE))).all()
        for name in names:
            try:
                with self._lock:
                    self.advance(name)
            except OperationalError as err:
                # the database refused one transaction (PostgreSQL breaking a deadlock, a lost connection): it was
                # rolled back whole, so the next tick takes this tuning job up again from what is stored
                log.warning("tuning job %s: the database refused a step, to be retried: %s", name, err.orig or err)
            except Exception as err:  # noqa: BLE001 - one broken tuning job must not stall the others
                log.exception("tuning job %s failed in the tuner", name)
                self._end(name, TuningJobStatus.FAILED, f"InternalServerError: {err}")

    def forget(self, name: str) -> None:
        """A deleted tuning job: its study goes too."""
        with self._lock:
            self._studies.pop(name, None)
            try:
                optuna.delete_study(study_name=name, storage=self.storage)
            except KeyError:
                pass

    # ------------------------------------------------------------------ one tuning job

    def advance(self, name: str) -> None:
        with self.sessions() as s:
            row = fetch(s, TuningJob, name)
            request, stopping = row.request, row.stop_requested
        plan, study = self._loaded(name, request)
        with self.sessions() as s:
            rows = trial_rows(s, name)
        unsettled = [(t, j) for t, j in rows if not t.settled]
        if unsettled:
            trials = {t.number: t for t in study.get_trials(deepcopy=False)}
            for t, j in unsettled:
                self._follow(plan, study, trials[t.trial_number], t, j, stopping)
        with self.sessions() as s:
            rows = trial_rows(s, name)
        finish_reason = self._record_progress(plan, rows)
        # a slot is free once its trial is settled, not merely once its job ended (the next tick settles it)
        running = [j for t, j in rows if not t.settled]
        if stopping or finish_reason:
            for j in running if stopping or finish_reason != BUDGET_SPENT else ():  # a spent budget lets jobs finish
                if j.status == TrainingJobStatus.IN_PROGRESS and not j.stop_requested:
                    message = f"Stopping the training job: its tuning job {plan.name} is ending"
                    self._stop_job(j.name, "tuning-job", message)
            if not running and all(t.settled for t, _ in rows):
                if stopping:
                    self._end(name, TuningJobStatus.STOPPED)
                else:
                    self._conclude(plan, rows)
            return
        used = sum(1 for _, j in rows if not retryable(j))
        free = min(plan.max_parallel - len(running), plan.max_jobs - used)
        for _ in range(max(free, 0)):
            if not self._launch(plan, study, rows):
                break
            with self.sessions() as s:
                rows = trial_rows(s, name)

    def _loaded(self, name: str, request: dict) -> tuple[TuningPlan, optuna.Study]:
        """The tuning job's plan and study, made once per server run (its request never changes)."""
        if name not in self._studies:
            plan = TuningPlan.from_request(request)
            self._studies[name] = (plan, self._study(plan))
        return self._studies[name]

    def _study(self, plan: TuningPlan) -> optuna.Study:
        study = optuna.create_study(
            study_name=plan.name,
            storage=self.storage,
            direction="maximize" if plan.objective.maximize else "minimize",
            load_if_exists=True,
        )
        existing = study.get_trials(deepcopy=False)
        # a seeded sampler made again after a restart would repeat its first draws: seed it past what it drew
        seed = None if plan.seed is None else plan.seed + len(existing)
        study.sampler = sampler_for(plan.strategy, seed, plan.max_jobs)
        study.pruner = pruner_for(plan.strategy, plan.early_stopping, plan.min_resource, plan.max_resource)
        if plan.parents and not study.user_attrs.get("warm_started"):
            self._warm_start(plan, study)
            study.set_user_attr("warm_started", True)
        self._adopt_orphans(plan, study)
        return study

    def _warm_start(self, plan: TuningPlan, study: optuna.Study) -> None:
        """The parents' evaluated jobs as finished trials of this study (their parameters where they fit this
        space), so the sampler starts from what they learnt."""
        distributions = plan.space.distributions()
        with self.sessions() as s:
            for parent in plan.parents:
                for t, j in trial_rows(s, parent):
                    params = plan.space.params(t.tuned)
                    if params is None or t.objective is None or t.objective_status != ObjectiveStatus.SUCCEEDED:
                        continue
                    steps = objective_values(s, j.name, plan.objective.metric)
                    study.add_trial(
                        optuna.trial.create_trial(
                            params=params,
                            distributions=distributions,
                            value=t.objective,
                            intermediate_values={i: v for i, v in enumerate(steps, 1)},
                            user_attrs={"warm_start_from": j.name},
                        )
                    )

    def _adopt_orphans(self, plan: TuningPlan, study: optuna.Study) -> None:
        """Trials asked just before the server stopped: the job that was launched gets its row; one that was
        not is failed, so its slot is free again."""
        with self.sessions.begin() as s:
            known = set(s.scalars(select(TuningTrial.trial_number).where(TuningTrial.tuning_job == plan.name)).all())
            for ft in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if ft.number in known:
                    continue
                job_name = ft.user_attrs.get("training_job")
                job = s.get(TrainingJob, job_name) if job_name else None
                if job is None:
                    study.tell(ft.number, state=TrialState.FAIL)
                    continue
                s.add(
                    TuningTrial(
                        tuning_job=plan.name,
                        training_job=job.name,
                        trial_number=ft.number,
                        tuned=plan.space.hyperparameters(ft.params),
                        objective_status=ObjectiveStatus.PENDING,
                        reported=0,
                        settled=False,
                    )
                )

    def _follow(
        self, plan: TuningPlan, study: optuna.Study, ft: FrozenTrial, t: TuningTrial, j: TrainingJob, stopping: bool
    ) -> None:
        """Report a job's new objective values to its trial; stop it if pruned; settle it once it has ended."""
        with self.sessions() as s:
            values = objective_values(s, j.name, plan.objective.metric)
        trial = Trial(study, ft._trial_id)
        new = values[t.reported :]
        if ft.state == TrialState.RUNNING:
            for step, value in enumerate(new, t.reported + 1):
                if step not in ft.intermediate_values:
                    trial.report(value, step)
        stopped_by = t.stopped_by
        if j.status == TrainingJobStatus.IN_PROGRESS and not j.stop_requested and not stopping and new:
            if ft.state == TrialState.RUNNING and trial.should_prune():
                rule = "Hyperband" if plan.strategy == "Hyperband" else "Auto early stopping"
                why = (
                    f"Stopping the training job: {rule} of tuning job {plan.name} stopped it after epoch "
                    f"{len(values)} ({plan.objective.metric} {values[-1]:g} is behind the other jobs at that epoch)"
                )
                self._stop_job(j.name, "early-stopping", why)
                stopped_by = "early-stopping"
        if j.status in RUNNING_JOB:
            with self.sessions.begin() as s:
                row = fetch(s, TuningTrial, t.id)
                row.reported = len(values)
                row.stopped_by = row.stopped_by or stopped_by
            return
        final = next((m["Value"] for m in j.final_metrics or [] if m["MetricName"] == plan.objective.metric), None)
        if final is None and values:
            final = values[-1]
        objective: float | None = None
        status = ObjectiveStatus.FAILED
        if j.status == TrainingJobStatus.COMPLETED and final is not None:
            objective, status, state = final, ObjectiveStatus.SUCCEEDED, TrialState.COMPLETE
        elif j.status == TrainingJobStatus.STOPPED and values:
            # stopped early (or with its tuning job): its last value stands, and Optuna knows it as pruned
            objective, status, state = values[-1], ObjectiveStatus.SUCCEEDED, TrialState.PRUNED
        else:
            state = TrialState.FAIL
        if ft.state == TrialState.RUNNING:
            if state == TrialState.COMPLETE:
                study.tell(ft.number, objective)
            else:
                study.tell(ft.number, state=state)
        if retryable(j) and plan.strategy != "Grid" and not stopping:
            # the server's fault, not the parameters': the same point runs again (Grid finds it unvisited)
            study.enqueue_trial(ft.params, skip_if_exists=False)
        with self.sessions.begin() as s:
            row = fetch(s, TuningTrial, t.id)
            row.reported = len(values)
            row.objective, row.objective_status, row.settled = objective, status, True
            row.stopped_by = row.stopped_by or stopped_by
            fetch(s, TuningJob, plan.name).last_modified_time = time.time()  # its counters changed

    def _record_progress(self, plan: TuningPlan, rows: Trials) -> str | None:
        """Store the completion details; returns why the tuning job should launch no more jobs, if it should not."""
        best, not_improving, evaluated = objective_progress(rows, plan.objective)
        window = max(5, plan.max_jobs // 4)
        converged = evaluated >= CONVERGENCE_MIN_JOBS and not_improving >= window
        with self.sessions.begin() as s:
            row = fetch(s, TuningJob, plan.name)
            if converged and row.convergence_time is None:
                row.convergence_time = time.time()
            reason = row.finish_reason
            if reason is None:
                failures = [
                    j for t, j in rows if t.settled and j.status == TrainingJobStatus.FAILED and not retryable(j)
                ]
                first = rows[: min(FIRST_FAILURES, plan.max_jobs)]
                if best is not None and plan.objective.reached(best):
                    reason = f"a training job reached the target objective value {plan.objective.target}"
                elif plan.not_improving_limit and not_improving >= plan.not_improving_limit:
                    reason = f"the best objective did not improve in {not_improving} training jobs"
                elif plan.complete_on_convergence and converged:
                    reason = "the objective converged"
                elif plan.max_runtime and time.time() - row.creation_time > plan.max_runtime:
                    reason = f"the tuning job reached MaxRuntimeInSeconds ({plan.max_runtime} s)"
                elif (
                    first and len(first) == min(FIRST_FAILURES, plan.max_jobs) and all(j in failures for _, j in first)
                ):
                    reason = "failed"
                elif sum(1 for _, j in rows if not retryable(j)) >= plan.max_jobs:
                    reason = BUDGET_SPENT
                elif sum(1 for _, j in rows if retryable(j)) > plan.max_jobs:
                    reason = "failed"
                if reason:
                    row.finish_reason = reason
                    row.last_modified_time = time.time()
        return reason

    def _conclude(self, plan: TuningPlan, rows: Trials) -> None:
        if best_trial(rows, plan.objective) is not None:
            self._end(plan.name, TuningJobStatus.COMPLETED)
            return
        failed = [j for _, j in rows if j.status == TrainingJobStatus.FAILED]
        detail = f" The first failure ({failed[0].name}): {failed[0].failure_reason}" if failed else ""
        if len(failed) == len(rows):
            reason = f"All training jobs failed.{detail}"
        else:
            reason = f"No training job reported the objective metric {plan.objective.metric}.{detail}"
        self._end(plan.name, TuningJobStatus.FAILED, reason[:FAILURE_LIMIT])

    def _launch(self, plan: TuningPlan, study: optuna.Study, rows: Trials) -> bool:
        """One new training job from Optuna's next ask; False when there is nothing (more) to launch."""
        taken = {tuple(sorted(t.tuned.items())) for t, j in rows if not retryable(j)}
        if plan.strategy == "Grid":
            point = next(
                (p for p in plan.space.grid(plan.seed, MAX_JOBS) if tuple(sorted(p.items())) not in taken), None
            )
            if point is None:
                return False
            study.enqueue_trial(plan.space.params(point) or {}, skip_if_exists=False)
        trial = study.ask(plan.space.distributions())
        tuned = plan.space.hyperparameters(trial.params)
        if plan.strategy == "Grid" and tuple(sorted(tuned.items())) in taken:
            # a point enqueued before a crash and asked only now: it has run, and runs once
            study.tell(trial, state=TrialState.FAIL)
            return True
        job_name = training_job_name(plan.name, len(rows) + 1, secrets.token_hex(4))
        trial.set_user_attr("training_job", job_name)
        with self.sessions() as s:
            row = fetch(s, TuningJob, plan.name)
            arn = row.arn
            tags = [{"Key": t.key, "Value": t.value} for t in s.scalars(select(Tag).where(Tag.resource_arn == arn))]
        req = plan.training_request(job_name, tuned, tags)
        try:
            self.training.create(check_request("sagemaker", "CreateTrainingJob", req), tuning_job_arn=arn)
        except ServiceError as err:
            study.tell(trial, state=TrialState.FAIL)
            self._end(plan.name, TuningJobStatus.FAILED, f"Training job {job_name} could not be created: {err}")
            return False
        with self.sessions.begin() as s:
            s.add(
                TuningTrial(
                    tuning_job=plan.name,
                    training_job=job_name,
                    trial_number=trial.number,
                    tuned=tuned,
                    objective_status=ObjectiveStatus.PENDING,
                    reported=0,
                    settled=False,
                )
            )
        log.info("tuning job %s launched %s with %s", plan.name, job_name, tuned)
        return True

    def _stop_job(self, name: str, why: str, message: str) -> None:
        try:
            self.training.stop(name, message)
        except ServiceError:  # it ended meanwhile
            return
        with self.sessions.begin() as s:
            row = s.scalars(select(TuningTrial).where(TuningTrial.training_job == name)).first()
            if row is not None and row.stopped_by is None:
                row.stopped_by = why

    def _end(self, name: str, status: TuningJobStatus, reason: str | None = None) -> None:
        with self.sessions.begin() as s:
            row = s.get(TuningJob, name)
            if row is None or row.status not in ACTIVE:
                return
            if status == TuningJobStatus.FAILED and row.finish_reason is None:
                row.finish_reason = "failed"
            row.status = status
            row.failure_reason = reason
            row.end_time = row.last_modified_time = time.time()
        log.info("tuning job %s ended %s%s", name, status, f": {reason}" if reason else "")
        self._studies.pop(name, None)


def objective_values(s: Session, job: str, metric: str) -> list[float]:
    """The objective's datapoints of a training job, one per epoch, as the runner extracted them from its log."""
    return list(
        s.scalars(
            select(MetricDatum.value)
            .where(
                MetricDatum.namespace == NAMESPACE,
                MetricDatum.metric_name == metric,
                MetricDatum.dimension_value == job,
            )
            .order_by(MetricDatum.id)
        ).all()
    )
