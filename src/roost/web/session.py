"""Console sign-in: the server's access key pair once, then a signed session cookie and a CSRF token.

The cookie is Starlette's ``SessionMiddleware`` (signed with itsdangerous, HttpOnly,
SameSite=Strict, eight hours); its signing key is derived from the server's secret,
so rotating the keys ends every console session. Every state-changing request must
carry the session's CSRF token, as a form field or an ``X-CSRF-Token`` header (htmx
sends the header on every request, from the page's ``hx-headers``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request

#: how long a console session lasts without signing in again
SESSION_SECONDS = 8 * 3600
COOKIE = "roost_console"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """Raised by a page that needs a session; answered by a redirect to the sign-in page (or 401 for scripts)."""


class BadCsrfToken(Exception):
    """A state-changing request without the session's CSRF token."""


def session_secret(secret_keys: dict[str, str]) -> str:
    """The cookie-signing key, from the server's secrets: a new key pair invalidates every session."""
    material = "\n".join(f"{k}:{v}" for k, v in sorted(secret_keys.items())).encode()
    return hmac.new(material, b"roost console session", hashlib.sha256).hexdigest()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the sign-in form has one before anyone signs in)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def sign_in(request: Request, keys: dict[str, str], access_key_id: str, secret: str) -> bool:
    expected = keys.get(access_key_id.strip())
    if expected is None or not hmac.compare_digest(expected.encode(), secret.strip().encode()):
        return False
    request.session.clear()  # a fresh session (and CSRF token) on every sign-in: no fixation
    request.session["user"] = access_key_id.strip()
    csrf_token(request)
    return True


def signed_in_user(request: Request, keys: dict[str, str]) -> str:
    user = request.session.get("user")
    if not user or user not in keys:  # a key removed from the server ends its sessions
        raise SignInRequired()
    return user


async def check_csrf(request: Request) -> None:
    expected = request.session.get("csrf")
    given: object = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        given = (await request.form()).get("csrf")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise BadCsrfToken()
