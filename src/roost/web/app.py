"""The console's application: sign-in, the shared page plumbing, and the routers of each area.

``create_console`` returns an ASGI app that ``roost server`` mounts at ``/console``;
it dispatches through the same operation table as the AWS API (with botocore's
validation in front of every handler), so pages read and change exactly the
state boto3 does.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from roost.aws import Service, ServiceError
from roost.aws.dispatch import dispatch_table
from roost.serving.endpoints import EndpointService
from roost.storage.objects import ObjectStore
from roost.storage.uri import DataRoots
from roost.tuning.service import TuningJobService
from roost.web.common import PREFIX, Console, console_of, require_change, templates
from roost.web.session import (
    COOKIE,
    SESSION_SECONDS,
    BadCsrfToken,
    SignInRequired,
    check_csrf,
    session_secret,
    sign_in,
)

HERE = Path(__file__).parent


# --------------------------------------------------------------------------- the app


def create_console(
    services: list[Service],
    keys: dict[str, str],
    data_dir: Path,
    roots: DataRoots | None = None,
    secure_cookie: bool = False,
    objects: ObjectStore | None = None,
) -> FastAPI:
    """The console for the operations of ``services``; signs in with any of ``keys`` (id -> secret)."""
    from roost.web import data, hosting, jobs, s3, tuning

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = Console(
        operations=dispatch_table(*services),
        keys=keys,
        data_dir=Path(data_dir),
        roots=roots or DataRoots([data_dir]),
        hosting=next((s for s in services if isinstance(s, EndpointService)), None),
        tuning=next((s for s in services if isinstance(s, TuningJobService)), None),
        templates=templates(),
        objects=objects,
    )
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(keys),
        session_cookie=COOKIE,
        max_age=SESSION_SECONDS,
        path=PREFIX,
        same_site="strict",
        https_only=secure_cookie,  # served over TLS: the cookie never travels in the clear
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
    app.include_router(s3.router)
    return app


def _local(target: str) -> str:
    """Only a path of the console itself is a place to return to after signing in (no open redirect)."""
    return target if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target else ""


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
