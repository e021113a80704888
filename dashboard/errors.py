"""The one error type the server's domain code raises: an RFC 9457 problem.

Every refusal names what was wrong and where (`field`, a dotted path into the request such
as ``body.entry.sig``), and is raised before anything is written, so a refused request
changes nothing. The HTTP layer turns it into `application/problem+json`.
"""

from __future__ import annotations

from typing import Any

from protocol.errors import ProtocolError

PROBLEM_BASE = "urn:minormode:problem:"

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    410: "Gone",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    503: "Busy",
}


class Problem(Exception):  # noqa: N818 - RFC 9457's name for it
    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {slug}: {detail}")
        self.status = status
        self.slug = slug
        self.detail = detail
        self.field = field
        self.retry_after = retry_after
        self.extra = extra or {}

    def to_json(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if self.field is not None:
            out["field"] = self.field
        if instance is not None:
            out["instance"] = instance
        return out | self.extra


def invalid(field: str, detail: str) -> Problem:
    return Problem(422, "invalid", detail, field=field)


def from_protocol(exc: ProtocolError, prefix: str) -> Problem:
    """A protocol reader's error, its `where` placed under the request field it came from."""
    where = exc.where
    field = prefix if not where else f"{prefix}.{where}" if not where.startswith(prefix) else where
    return Problem(422, "invalid", str(exc), field=field)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"no such {what}")


def conflict(slug: str, detail: str, field: str | None = None, **extra: Any) -> Problem:
    return Problem(409, slug, detail, field=field, extra=extra)
