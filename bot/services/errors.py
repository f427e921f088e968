"""Errors that services raise; each carries an i18n key and its parameters."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A rule refused the request; `key` names the message shown to the user."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


class PermissionDenied(ServiceError):
    """The actor's roles do not allow the action."""


class NotFound(ServiceError):
    """A code or id named by the user does not exist."""


class InvalidInput(ServiceError):
    """The user's input is malformed."""
