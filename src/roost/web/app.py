"""The console's application: sign-in, the shared page plumbing, and the routers of each area.

``create_console`` returns an ASGI app that ``roost server`` mounts at ``/console``;
it dispatches through the same operation table as the AWS API (with botocore's
validation in front of every handler), so pages read and change exactly the
state boto3 does.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChainableUndefined
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from roost.aws import Handler, Service, ServiceError, dispatch_table
from roost.serving.endpoints import EndpointService
from roost.storage.uri import DataRoots
from roost.tuning.service import TuningJobService
from roost.web.session import (
    COOKIE,
    SESSION_SECONDS,
    BadCsrfToken,
    SignInRequired,
    check_csrf,
    csrf_token,
    session_secret,
    sign_in,
    signed_in_user,
)

HERE = Path(__file__).parent
#: where the console is mounted; every link and redirect is below it
PREFIX = "/console"
#: how often live pages look for changes (the delay from an epoch's log line to its point on the chart)
POLL_SECONDS = 0.5


@dataclass
class Console:
    """What every page handler needs: the operations, the keys, the server's folders and hosting."""

    operations: dict[str, Handler]
    keys: dict[str, str]
    data_dir: Path
    roots: DataRoots
    hosting: EndpointService | None
    tuning: TuningJobService | None  # for what the API does not say: which jobs a tuning job stopped early
    templates: Jinja2Templates

    async def call(self, operation: str, req: dict | None = None, service: str = "SageMaker") -> dict:
        """One API operation, validated and answered exactly as ``POST /`` would (off the event loop)."""
        return await run_in_threadpool(self.operations[f"{service}.{operation}"], req or {})

    def render(self, request: Request, template: str, **context: Any) -> str:
        """A fragment for a live update; its forms carry the session's CSRF token like the page's."""
        return self.templates.get_template(template).render(csrf=csrf_token(request), **context)

    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("user", request.session.get("user"))
        context["csrf"] = csrf_token(request)
        context["nav"] = template.split(".")[0].split("_")[0]
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)


def console_of(request: Request) -> Console:
    return request.app.state.console


def require_user(request: Request) -> str:
    """For every page but sign-in: the signed-in access key id, or :class:`SignInRequired`."""
    return signed_in_user(request, console_of(request).keys)


async def require_change(request: Request) -> str:
    """For every state-changing request: a session and its CSRF token."""
    user = require_user(request)
    await check_csrf(request)
    return user


# --------------------------------------------------------------------------- formatting for the templates


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def job_duration(job: dict) -> float | None:
    start = job.get("TrainingStartTime") or job.get("CreationTime")
    end = job.get("TrainingEndTime") or (time.time() if job.get("TrainingJobStatus") == "InProgress" else None)
    return None if start is None or end is None else max(0.0, end - start)


def number(value: float | None, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


def final_metric(job: dict, name: str) -> float | None:
    return next((m.get("Value") for m in job.get("FinalMetricDataList", []) if m.get("MetricName") == name), None)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    # a member an odd stored row lacks renders as nothing instead of failing the whole page for everyone
    env.undefined = ChainableUndefined
    env.filters["when"] = when
    env.filters["duration"] = duration
    env.filters["num"] = number
    env.globals.update(prefix=PREFIX, job_duration=job_duration, final_metric=final_metric, urlencode=urlencode)
    return templates


# --------------------------------------------------------------------------- the app


def create_console(
    services: list[Service], keys: dict[str, str], data_dir: Path, roots: DataRoots | None = None
) -> FastAPI:
    """The console for the operations of ``services``; signs in with any of ``keys`` (id -> secret)."""
    from roost.web import data, hosting, jobs, tuning

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = Console(
        operations=dispatch_table(*services),
        keys=keys,
        data_dir=Path(data_dir),
        roots=roots or DataRoots([data_dir]),
        hosting=next((s for s in services if isinstance(s, EndpointService)), None),
        tuning=next((s for s in services if isinstance(s, TuningJobService)), None),
        templates=_templates(),
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(keys),
        session_cookie=COOKIE,
        max_age=SESSION_SECONDS,
        path=PREFIX,
        same_site="strict",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.headers.get("hx-request") or "text/event-stream" in request.headers.get("accept", ""):
            return Response("Sign in first.", status_code=401, headers={"HX-Redirect": f"{PREFIX}/login"})
        if request.method != "GET":
            return Response("Sign in first.", status_code=401)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': here})}", status_code=303)

    @app.exception_handler(BadCsrfToken)
    async def bad_csrf(request: Request, exc: BadCsrfToken) -> Response:
        return Response(
            "This form is out of date or did not come from the console (CSRF token missing or wrong); reload the page.",
            status_code=403,
        )

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        console = console_of(request)
        message = "No such page." if exc.status_code == 404 else str(exc.detail)
        return console.page(request, "error.html", exc.status_code, title="Not found", message=message)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        # a resource asked for by URL that the API does not know, say: the API's words, on a page
        console = console_of(request)
        status = 404 if exc.code in ("ResourceNotFound", "ValidationException") and request.method == "GET" else 400
        if request.headers.get("hx-request"):
            return HTMLResponse(f'<p class="error">{_escape(exc.message)}</p>', status_code=status)
        return console.page(request, "error.html", status, title=exc.code, message=exc.message)

    @app.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/jobs", status_code=303)

    @app.get("/login")
    def login_page(request: Request, next: str = "") -> Response:
        return console_of(request).page(request, "login.html", next=_local(next), error=None)

    @app.post("/login")
    async def login(request: Request) -> Response:
        console = console_of(request)
        await check_csrf(request)
        form = await request.form()
        target = _local(str(form.get("next", "")))
        if sign_in(request, console.keys, str(form.get("access_key_id", "")), str(form.get("secret_access_key", ""))):
            return RedirectResponse(target or f"{PREFIX}/jobs", status_code=303)
        return console.page(
            request,
            "login.html",
            401,
            next=target,
            error="That access key id and secret access key are not this server's. They are in ROOST_ACCESS_KEY_ID / "
            "ROOST_SECRET_ACCESS_KEY, or in credentials.json in the server's data folder.",
        )

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        await require_change(request)
        request.session.clear()
        return RedirectResponse(f"{PREFIX}/login", status_code=303)

    app.include_router(jobs.router)
    app.include_router(tuning.router)
    app.include_router(hosting.router)
    app.include_router(data.router)
    return app


def _local(target: str) -> str:
    """Only a path of the console itself is a place to return to after signing in (no open redirect)."""
    return target if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target else ""


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
