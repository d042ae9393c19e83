"""Passwords in URLs (`--tracking-uri http://user:pw@host`, `--storage postgresql://user:pw@...`):
shown masked in every message and tag, and handed to the library that needs them the way it
supports. Standard library only, so any module may use it.
"""

from __future__ import annotations

import base64
import os
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"  # what MLflow's REST client sends as HTTP basic auth
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


def _host_part(netloc: str) -> str:
    return netloc.rpartition("@")[2]


def redact(url: str) -> str:
    """`url` with the password of its user-info masked: `http://user:***@host:5000/`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced [ in the host: no URL, nothing to pick apart
        return url
    if parts.password is None:
        return url
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{_host_part(parts.netloc)}"))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without its user-info, user name, password), both percent-decoded; the names are
    None when the URL has none."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    bare = urlunsplit(parts._replace(netloc=_host_part(parts.netloc)))
    user = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return bare, user, password


def scrub(text: str, *urls: str) -> str:
    """`text` (an error message from a library) with the passwords of `urls` masked, as
    written in the URL and percent-decoded."""
    for url in urls:
        try:
            raw = urlsplit(url).password
        except ValueError:
            continue
        for secret in {raw, unquote(raw)} if raw else ():
            text = text.replace(secret, MASK)
    return text


def export_tracking_credentials(uri: str) -> str:
    """An http(s) tracking URI with user-info: its user name and password go where MLflow reads
    them (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, inherited by worker processes),
    and the URI without them is returned; any other URI comes back unchanged."""
    if urlsplit(uri).scheme not in ("http", "https"):
        return uri
    bare, user, password = split_credentials(uri)
    if user is not None:
        os.environ[USERNAME_ENV] = user
        os.environ[PASSWORD_ENV] = password or ""
    return bare


def basic_auth_header(user: str | None, password: str | None) -> dict[str, str]:
    """The HTTP basic-auth header for (user, password), or none without a user."""
    if not user:
        return {}
    token = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}
