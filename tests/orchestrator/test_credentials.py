"""Passwords in URLs are masked in messages and handed to MLflow its own way."""

from __future__ import annotations

import base64
import os

import pytest

from orchestrator import studies
from orchestrator.credentials import (
    PASSWORD_ENV,
    USERNAME_ENV,
    basic_auth_header,
    export_tracking_credentials,
    redact,
    scrub,
    split_credentials,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:5000", "http://user:***@host:5000"),
        ("http://user:p%40ss%3Aw@host:5000/x", "http://user:***@host:5000/x"),
        ("http://user:p@ss@host", "http://user:***@host"),  # an unescaped @ in the password
        (
            "postgresql+psycopg2://sweep:secret@db:5432/optuna",
            "postgresql+psycopg2://sweep:***@db:5432/optuna",
        ),
        ("http://user@host:5000", "http://user@host:5000"),  # no password, nothing to hide
        ("http://host:5000", "http://host:5000"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("journal.log", "journal.log"),
    ],
)
def test_redact(url, shown):
    assert redact(url) == shown
    assert studies.redact is redact  # one masking helper for --storage and --tracking-uri


def test_split_credentials_decodes():
    assert split_credentials("http://us%20er:p%40ss%3Aw@host:5000/p?q=1") == (
        "http://host:5000/p?q=1",
        "us er",
        "p@ss:w",
    )
    assert split_credentials("http://user@h") == ("http://h", "user", None)
    assert split_credentials("http://h:1") == ("http://h:1", None, None)


def test_scrub_masks_both_spellings():
    url = "http://u:p%40ss@h"
    text = "failed for http://u:p%40ss@h (password p@ss rejected)"
    assert scrub(text, url) == "failed for http://u:***@h (password *** rejected)"
    assert scrub("nothing here", "http://h", "sqlite:///x") == "nothing here"


def test_export_tracking_credentials(monkeypatch):
    monkeypatch.delenv(USERNAME_ENV, raising=False)
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    assert export_tracking_credentials("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert USERNAME_ENV not in os.environ
    bare = export_tracking_credentials("https://al%40ice:p%40ss@mlflow.example:443/")
    assert bare == "https://mlflow.example:443/"
    assert os.environ[USERNAME_ENV] == "al@ice" and os.environ[PASSWORD_ENV] == "p@ss"
    # a database URL is no HTTP server: it keeps its password (SQLAlchemy needs it there)
    db = "postgresql://u:pw@db/mlflow"
    assert export_tracking_credentials(db) == db


def test_basic_auth_header():
    (value,) = basic_auth_header("al@ice", "p:ss").values()
    assert base64.b64decode(value.removeprefix("Basic ")) == b"al@ice:p:ss"
    assert basic_auth_header(None, "x") == {}
