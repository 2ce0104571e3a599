"""The exceptions of the Device Hub client. Every failure the library reports is a
DeviceHubError; an answer of the server with an error status is an ApiError that carries the
API's error body ({code, detail, fields})."""
from __future__ import annotations

from typing import Any, Dict, Optional

import requests

__all__ = [
    "DeviceHubError", "ApiError", "TransportError", "DownloadError", "IncompleteDownload",
    "WaitTimeout", "SessionFailed",
]

# How much of a non-JSON error body a message quotes.
TEXT_QUOTE_MAX = 200


class DeviceHubError(Exception):
    """Base of every error of this library."""


class ApiError(DeviceHubError):
    """The server answered with a status the call did not expect.

    status is the HTTP status; code, detail and fields come from the API's error body
    (code is None and detail the start of the text when the answer was not that body)."""

    status: int
    code: Optional[str]
    detail: str
    fields: Dict[str, Any]
    body: Any

    def __init__(self, resp: requests.Response) -> None:
        self.status = resp.status_code
        self.body = None
        try:
            self.body = resp.json()
        except ValueError:
            pass
        self.fields = {}
        if isinstance(self.body, dict) and "detail" in self.body:
            self.code = self.body.get("code") or "error"
            self.detail = str(self.body.get("detail"))
            fields = self.body.get("fields") or {}
            if isinstance(fields, dict):
                self.fields = fields
            msg = f"HTTP {self.status} {self.code}: {self.detail}"
            for k, v in self.fields.items():
                msg += f"\n  {k}: {v}"
        else:
            self.code = None
            text = (resp.text or "").strip().replace("\n", " ")[:TEXT_QUOTE_MAX]
            self.detail = text
            msg = f"HTTP {self.status} {resp.reason or ''}".rstrip()
            if text:
                msg += f": {text}"
        super().__init__(msg)


class TransportError(DeviceHubError):
    """The server could not be reached, TLS failed, or no answer came in time."""


class DownloadError(DeviceHubError):
    """A download went wrong: the server's ranges did not fit, or the image's SHA-256 does
    not match the expected one."""


class IncompleteDownload(DeviceHubError):
    """A download stopped at its max_bytes limit; the partial file is kept and the same call
    later resumes it. offset is how many bytes of the image are on disk."""

    def __init__(self, message: str, offset: int, size: Optional[int], part: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.size = size
        self.part = part


class WaitTimeout(DeviceHubError):
    """A session did not reach the awaited states in time; session is the last one seen."""

    def __init__(self, message: str, session: Dict[str, Any]) -> None:
        super().__init__(message)
        self.session = session


class SessionFailed(DeviceHubError):
    """A session ended in fail or unconfirmed; session is the final session object."""

    def __init__(self, message: str, session: Dict[str, Any]) -> None:
        super().__init__(message)
        self.session = session
