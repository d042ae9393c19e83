"""Errors shared by the ML core."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value; `key` is the config key as the user types it."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message

    def __str__(self) -> str:
        return self.message
