"""Domain errors: raised by services, turned into messages by views (and JSON by the API)."""
from __future__ import annotations


class DomainError(Exception):
    """A rule refused the request. ``message`` is already in the user's language."""

    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationFailed(DomainError):
    code = "invalid"

    @classmethod
    def on(cls, field: str, message: str) -> "ValidationFailed":
        """The problem is with one field; ``fields`` maps it to the message."""
        return cls(message, fields={field: message})


class Conflict(DomainError):
    code = "conflict"
