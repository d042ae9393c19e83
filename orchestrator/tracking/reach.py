"""Is the tracking store there? A server answers and takes the credentials a request would
carry (HTTP basic auth); a SQLite store's folder exists. Messages never show a password."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from ..credentials import (
    PASSWORD_ENV,
    USERNAME_ENV,
    basic_auth_header,
    redact,
    scrub,
    split_credentials,
)
from ..errors import UserError

AUTH_TIMEOUT_S = 30.0  # for the API call that checks the credentials


def sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def tracking_credentials(uri: str) -> tuple[str | None, str | None]:
    """The HTTP basic-auth (user, password) a request to `uri` carries: the URI's user-info,
    else what MLflow itself would send (its environment variables, ~/.mlflow/credentials)."""
    _, user, password = split_credentials(uri)
    if user is not None:
        return user, password
    from mlflow.utils.credentials import read_mlflow_creds

    creds = read_mlflow_creds()
    return creds.username, creds.password


def _get(url: str, headers: dict[str, str], timeout: float) -> int:
    """The HTTP status of GET url (an error status too); OSError when there is no answer."""
    import urllib.error
    import urllib.request  # here, not at the top: `sweep --help` does not pay for it

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as r:
            return r.status
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """A tracking server answers, and takes the credentials a request would carry (HTTP basic
    auth from the URI's user-info or MLflow's variables); a SQLite store's folder exists.
    Messages show the URI with its password masked."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        label = redact(uri)
        bare = split_credentials(uri)[0].rstrip("/")
        user, password = tracking_credentials(uri)
        headers = basic_auth_header(user, password)
        try:
            status = _get(f"{bare}/health", headers, timeout)
            if status != 200:
                raise OSError(f"HTTP {status} from /health")
            # /health answers anyone: an API call shows whether the credentials are taken
            # (a server checks a password with PBKDF2: seconds on a loaded machine)
            api = f"{bare}/api/2.0/mlflow/experiments/search?max_results=1"
            status = _get(api, headers, max(timeout, AUTH_TIMEOUT_S))
        except OSError as e:
            reason = scrub(str(getattr(e, "reason", e)), uri)
            raise UserError(
                f"cannot reach the MLflow tracking server at {label}: {reason}"
            ) from None
        if status == 401 and user is None:
            raise UserError(
                f"the MLflow tracking server at {label} needs a user name and password: give them "
                f"in the URI (http://USER:PASSWORD@host:port) or in {USERNAME_ENV} and {PASSWORD_ENV}"
            )
        if status in (401, 403):
            what = "did not accept the password of" if status == 401 else "refuses access to"
            raise UserError(
                f"the MLflow tracking server at {label} {what} user '{user}' (HTTP {status})"
            )
    db = sqlite_path(uri)
    if db is not None and not db.parent.is_dir():
        raise UserError(f"tracking store directory does not exist: {db.parent} (from {uri})")
