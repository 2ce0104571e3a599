"""Client: a Device Hub server at one base URL with one token.

It speaks the HTTP API v1 (API.md of the project): JSON calls that raise ApiError with the
server's {code, detail, fields} on an error status, lists that follow `next`, the
configuration objects by kind, streamed firmware uploads, firmware-update sessions, and
downloads with HTTP Range (plain chunks, or resumable to a file with a SHA-256 check).
Answers are the API's JSON objects as dicts. Progress goes to the `devicehub` logger.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.parse
import uuid
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import requests

from .errors import (ApiError, DeviceHubError, DownloadError, SessionFailed, TransportError,
                     WaitTimeout)
from .multipart import MultipartFile

__all__ = ["Client", "JSON", "KINDS", "WAIT_DONE", "DEFAULT_URL", "DEFAULT_CHUNK"]

log = logging.getLogger("devicehub")

JSON = Dict[str, Any]
Verify = Union[bool, str]

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 60.0
# Range requests of this many bytes unless a call says otherwise: a few round trips per MiB
# on a weak link, and little lost when one breaks.
DEFAULT_CHUNK = 64 * 1024
# Uploads may take long on slow links: at least this many seconds per request.
UPLOAD_TIMEOUT = 600.0
# 429/503 answers carry Retry-After; a call honours it this many times, each wait capped.
BUSY_RETRIES = 8
RETRY_AFTER_MAX = 30.0
# A list followed to its end reads at most this many pages (1000 items each at most).
MAX_PAGES = 100000
# States in which a session waits for the device (created) or is done.
WAIT_DONE = ("created", "success", "fail", "unconfirmed", "up_to_date")
# Polling of a session: the interval grows by this factor while nothing changes, up to the cap.
POLL_GROWTH = 1.5
POLL_MAX = 5.0
# Network errors during one Range request are retried this many times; the delay before a
# retry starts at RETRY_DELAY seconds and doubles up to RETRY_DELAY_MAX.
CHUNK_RETRIES = 5
RETRY_DELAY = 0.2
RETRY_DELAY_MAX = 5.0

# Configuration objects: kind -> path below /api/v1/.
KINDS: Dict[str, str] = {
    "product": "products",
    "model": "models",
    "channel": "channels",
    "method": "delivery-methods",
    "procedure": "delivery-procedures",
    "device": "devices",
    "user": "users",
    "token": "tokens",
    "right": "access-rights",
}


def quote(key: str) -> str:
    """A path segment for an id or tid."""
    return urllib.parse.quote(str(key), safe="")


def short_exc(e: BaseException) -> str:
    """The useful part of a network exception's long text."""
    text = str(e)
    m = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    return m.group(1) if m else text[:200]


def retry_after(r: requests.Response) -> float:
    """Seconds to wait after a 429/503, from Retry-After (bounded)."""
    try:
        return max(0.05, min(float(r.headers.get("Retry-After", "1")), RETRY_AFTER_MAX))
    except ValueError:
        return 1.0


def session_path(sid: str) -> str:
    return f"/api/v1/firmware-update/{quote(sid)}/"


def error_text(s: Mapping[str, Any]) -> str:
    """': code: detail' of a failed session's error, or ''."""
    e = s.get("error") or {}
    if isinstance(e, dict) and e:
        return f": {e.get('code', 'error')}: {e.get('detail', '')}"
    return ""


class Client:
    """A Device Hub server at url, called with token (Authorization: Token ...).

    verify is True (the system's CAs), False (no check) or a CA file; timeout is the
    seconds to wait for each answer. Not thread-safe: use one Client per thread."""

    def __init__(self, url: str = DEFAULT_URL, token: Optional[str] = None, *,
                 verify: Verify = True, timeout: float = DEFAULT_TIMEOUT,
                 user_agent: str = "devicehub-python/1") -> None:
        if not re.match(r"^https?://[^/]+", url):
            raise ValueError(f"url {url!r}: expected http://HOST[:PORT] or https://...")
        self.base = url.rstrip("/")
        self.token = token
        self.verify: Verify = verify
        self.timeout = timeout
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Token {token}"
        self.http.headers["User-Agent"] = user_agent

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HTTP --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """path below the base URL, or path itself when it is already absolute."""
        if path.startswith("http://") or path.startswith("https://"):
            return path
        return self.base + path

    def raw(self, method: str, path: str, *,
            body_factory: Optional[Callable[[], Any]] = None, **kw: Any) -> requests.Response:
        """One request, whatever its status; 429 and 503 are retried after Retry-After.
        Keyword arguments go to requests (params, json, headers, stream, timeout, ...);
        body_factory makes a fresh body for each attempt. Network and TLS failures raise
        TransportError."""
        kw.setdefault("timeout", self.timeout)
        # Per request, so that an explicit CA or verify=False wins over REQUESTS_CA_BUNDLE
        # (requests lets the environment override a session-level setting).
        kw.setdefault("verify", self.verify)
        r: Optional[requests.Response] = None
        for attempt in range(BUSY_RETRIES + 1):
            if body_factory:
                kw["data"] = body_factory()
            try:
                r = self.http.request(method, self.url(path), **kw)
            except requests.exceptions.SSLError as e:
                raise TransportError(f"TLS error talking to {self.base}: {e}") from e
            except requests.exceptions.ConnectionError as e:
                raise TransportError(f"cannot connect to {self.base}: {short_exc(e)}") from e
            except requests.exceptions.Timeout as e:
                raise TransportError(
                    f"no answer from {self.base} within {kw['timeout']:g} s") from e
            if r.status_code in (429, 503) and attempt < BUSY_RETRIES:
                delay = retry_after(r)
                r.close()
                time.sleep(delay)
                continue
            break
        assert r is not None
        return r

    def call(self, method: str, path: str, ok: Sequence[int] = (200, 201, 204),
             **kw: Any) -> Any:
        """One request whose status must be in ok; returns the JSON answer (None when
        empty). Raises ApiError for any other status."""
        r = self.raw(method, path, **kw)
        if r.status_code not in ok:
            raise ApiError(r)
        if r.status_code == 204 or not r.content:
            return None
        try:
            return r.json()
        except ValueError as e:
            raise DeviceHubError(f"the server sent a non-JSON answer to {method} {path}") from e

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Optional[Mapping[str, Any]] = None, **kw: Any) -> Any:
        return self.call("POST", path, json=body, **kw)

    def patch(self, path: str, body: Mapping[str, Any], **kw: Any) -> Any:
        return self.call("PATCH", path, json=body, **kw)

    def delete(self, path: str, **kw: Any) -> None:
        self.call("DELETE", path, **kw)

    def page(self, path: str, params: Optional[Mapping[str, Any]] = None) -> JSON:
        """One list page: {count, next, results}."""
        page: JSON = self.get(path, params=dict(params or {}))
        return page

    def iterate(self, path: str, params: Optional[Mapping[str, Any]] = None) -> Iterator[JSON]:
        """Every item of a list, following `next` page by page."""
        page = self.page(path, params)
        yield from page.get("results", [])
        pages = 1
        while page.get("next") and pages < MAX_PAGES:
            page = self.get(page["next"])
            yield from page.get("results", [])
            pages += 1

    # ---- configuration objects ---------------------------------------------------------

    @staticmethod
    def kind_path(kind: str) -> str:
        """/api/v1/<things>/ of a kind of KINDS (or a path segment such as "firmware")."""
        return f"/api/v1/{KINDS.get(kind, kind)}/"

    def create(self, kind: str, /, **fields: Any) -> JSON:
        """Creates an object of kind ("product", "model", ... see KINDS)."""
        obj: JSON = self.post(self.kind_path(kind), fields)
        return obj

    def fetch(self, kind: str, key: str) -> JSON:
        """The object of kind whose id (or tid) is key."""
        obj: JSON = self.get(self.kind_path(kind) + quote(key) + "/")
        return obj

    def update(self, kind: str, key: str, /, **fields: Any) -> JSON:
        """Changes the given fields of an object (PATCH); returns it."""
        obj: JSON = self.patch(self.kind_path(kind) + quote(key) + "/", fields)
        return obj

    def remove(self, kind: str, key: str) -> None:
        """Deletes an object (409 referenced while other objects use it)."""
        self.delete(self.kind_path(kind) + quote(key) + "/")

    def objects(self, kind: str, /, **filters: Any) -> Iterator[JSON]:
        """Every object of kind matching the filters (e.g. product="sensor")."""
        return self.iterate(self.kind_path(kind), filters)

    # ---- firmware ----------------------------------------------------------------------

    def upload_firmware(self, path: str, *, model: str, version: str,
                        channels: Iterable[str] = (), draft: bool = False,
                        description: Optional[str] = None,
                        filename: Optional[str] = None) -> JSON:
        """Uploads the image at path as multipart/form-data, streamed from disk (never read
        whole into memory). Returns the firmware object (size, sha256, image_info...)."""
        if not os.path.isfile(path):
            raise DeviceHubError(f"{path}: no such file")
        fields: List[Tuple[str, str]] = [("model", model), ("version", version)]
        fields += [("channels", c) for c in channels]
        if draft:
            fields.append(("draft", "true"))
        if description is not None:
            fields.append(("description", description))
        name = filename or os.path.basename(path)
        boundary = "devicehub-" + uuid.uuid4().hex

        def body() -> MultipartFile:
            # Each attempt (after a 429/503) needs a fresh body with the header's boundary.
            return MultipartFile(fields, "file", path, name, boundary)

        obj: JSON = self.call("POST", "/api/v1/firmware/", ok=(200, 201), body_factory=body,
                              headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                              timeout=max(self.timeout, UPLOAD_TIMEOUT))
        return obj

    def firmware(self, key: str) -> JSON:
        """The firmware whose id (or tid) is key."""
        return self.fetch("firmware", key)

    def download_firmware(self, key: str, path: Optional[str] = None,
                          **options: Any) -> Dict[str, Any]:
        """Downloads a firmware's image to path (default: its filename) with resumable
        Range requests and checks its SHA-256; options as for Downloader (chunk_size,
        max_bytes). Returns {path, size, sha256}; raises DownloadError when the image does
        not match its SHA-256 even after one fresh retry."""
        from .download import Downloader
        fw = self.firmware(key)
        out = path or fw.get("filename") or f"{fw['id']}.bin"
        dl = Downloader(self, f"/api/v1/firmware/{quote(fw['id'])}/image", out,
                        sha256=fw.get("sha256"), size=fw.get("size"), **options)
        result = dl.run_verified()
        if not result["ok"]:
            raise DownloadError(result["message"])
        return {"path": out, "size": result["size"], "sha256": result["sha256"]}

    # ---- firmware-update sessions ------------------------------------------------------

    def request_update(self, **body: Any) -> JSON:
        """POST /firmware-update/request: a new session (ready, or up_to_date when no newer
        firmware fits). Fields as in the API: model, device_id, delivery_method,
        delivery_procedure_tid, current_channel, current_firmware_version, ..."""
        s: JSON = self.post("/api/v1/firmware-update/request", body, ok=(200, 201))
        return s

    def session(self, sid: str) -> JSON:
        """The session with id sid."""
        s: JSON = self.get(session_path(sid))
        return s

    def sessions(self, **filters: Any) -> Iterator[JSON]:
        """Every session matching the filters (state, device, model, finished), newest
        first."""
        return self.iterate("/api/v1/firmware-update/", filters)

    def start_session(self, sid: str) -> JSON:
        """Starts a ready session (ready -> queued); returns the session."""
        s: Optional[JSON] = self.post(session_path(sid) + "start", ok=(200, 201, 202, 204))
        return s if s and "state" in s else self.session(sid)

    def confirm_session(self, sid: str, success: bool = True,
                        message: Optional[str] = None) -> JSON:
        """Confirms a created session: success, or failure with a message."""
        body: JSON = {"success": success}
        if message is not None:
            body["message"] = message
        s: JSON = self.post(session_path(sid) + "confirm", body)
        return s

    def wait_session(self, session: Union[str, Mapping[str, Any]], *, timeout: float = 600.0,
                     poll_interval: float = 0.2, until: Sequence[str] = WAIT_DONE,
                     on_change: Optional[Callable[[str, JSON], None]] = None) -> JSON:
        """Polls a session (its id, or the object last seen) until its state is in until
        (default: it needs the device, or is done). The interval starts at poll_interval
        and grows while nothing changes. on_change(old_state, session) is called on each
        change. Raises WaitTimeout after timeout seconds."""
        s: JSON = dict(session) if isinstance(session, Mapping) else self.session(session)
        deadline = time.monotonic() + timeout
        delay = poll_interval
        last = s["state"]
        while s["state"] not in until:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"session {s['id']} still {s['state']} after {timeout:g} s",
                                  s)
            time.sleep(min(delay, left))
            delay = min(delay * POLL_GROWTH, POLL_MAX)
            s = self.session(s["id"])
            if s["state"] != last:
                log.info("session %s: %s -> %s", s["id"], last, s["state"])
                if on_change:
                    on_change(last, s)
                last = s["state"]
                delay = poll_interval
        return s

    # ---- downloads ---------------------------------------------------------------------

    def download_chunks(self, url: str, *, chunk_size: int = DEFAULT_CHUNK, start: int = 0,
                        sha256: Optional[str] = None) -> Iterator[bytes]:
        """The image at url (a session's download_link, or a firmware's image path) from
        byte start, as one Range request per chunk_size bytes. A broken request is
        retried from where it stopped. With sha256 (and start 0), the image is checked
        after the last chunk: DownloadError when it differs."""
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        h = hashlib.sha256() if sha256 and start == 0 else None
        offset, size = start, None
        while size is None or offset < size:
            block, size = self.range(url, offset, chunk_size)
            if not block:
                break
            offset += len(block)
            if h:
                h.update(block)
            yield block
        if h and sha256 and h.hexdigest() != sha256.lower():
            raise DownloadError(f"sha256 mismatch for {url}: expected {sha256.lower()}, "
                                f"got {h.hexdigest()}")

    def range(self, url: str, offset: int, length: int) -> Tuple[bytes, int]:
        """Bytes [offset, offset + length) of the image at url and the image's size; b""
        at the end. A request that fails on the network or comes back short is retried
        CHUNK_RETRIES times, with growing delays."""
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        err: DeviceHubError = DownloadError("no attempt")
        for attempt in range(CHUNK_RETRIES + 1):
            if attempt:
                time.sleep(min(RETRY_DELAY * (2 ** (attempt - 1)), RETRY_DELAY_MAX))
            try:
                r = self.raw("GET", url, headers=headers)
            except TransportError as e:
                err = e
                continue
            if r.status_code == 416:
                total = parse_total(r.headers.get("Content-Range", ""))
                if total is not None and total <= offset:
                    return b"", total
                raise ApiError(r)
            if r.status_code == 200:
                # No range support, or several ranges: the whole image.
                return r.content[offset:offset + length], len(r.content)
            if r.status_code != 206:
                raise ApiError(r)
            m = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise DownloadError(f"the server sent a wrong Content-Range "
                                    f"({r.headers.get('Content-Range')!r}) for byte {offset}")
            if len(r.content) == int(m.group(2)) - offset + 1:
                return r.content, int(m.group(3))
            err = DownloadError(f"short answer at byte {offset}")
        raise DeviceHubError(f"download of {url} failed at byte {offset}: {err}")

    def download(self, url: str, path: str, **options: Any) -> Dict[str, Any]:
        """Downloads url to path with resumable Range requests through path.part (a later
        call continues an interrupted one) and checks sha256 when given; options as for
        Downloader (sha256, size, chunk_size, max_bytes, session). Returns {path, size,
        sha256}; raises DownloadError on a SHA-256 mismatch that persisted after one fresh
        retry, IncompleteDownload at max_bytes."""
        from .download import Downloader
        result = Downloader(self, url, path, **options).run_verified()
        if not result["ok"]:
            raise DownloadError(result["message"])
        return {"path": str(path), "size": result["size"], "sha256": result["sha256"]}

    # ---- the whole device flow ---------------------------------------------------------

    def update_device(self, output: str, /, *, confirm: bool = True, chunk_size: int = DEFAULT_CHUNK,
                      max_bytes: Optional[int] = None, wait_timeout: float = 600.0,
                      poll_interval: float = 0.2, **request: Any) -> JSON:
        """A device's whole update: request a session (fields as for request_update), start
        it, wait for the pipeline, download payload.download_link to output with Range
        requests, check payload.sha256, then confirm success (or failure, with the reason,
        on a mismatch). A partial download of an earlier call resumes in its session while
        that still waits in created. Returns the final session; raises SessionFailed,
        WaitTimeout, DownloadError, IncompleteDownload (max_bytes) or ApiError."""
        from .download import Downloader
        dl = Downloader(self, None, output)
        s = self.reusable_session(dl, request.get("device_id"))
        if s:
            log.info("continuing session %s (%s)", s["id"], s["state"])
        else:
            s = self.request_update(**request)
            log.info("session %s: %s", s["id"], s["state"])
            if s["state"] == "up_to_date":
                return s
            if s["state"] == "ready":
                sid = s["id"]
                s = self.start_session(sid)
                if s["state"] != "ready":
                    log.info("session %s: ready -> %s", sid, s["state"])
                s = self.wait_session(s, timeout=wait_timeout, poll_interval=poll_interval)
        if s["state"] not in WAIT_DONE:
            raise WaitTimeout(f"session {s['id']} still {s['state']}", s)
        if s["state"] in ("fail", "unconfirmed"):
            raise SessionFailed(f"session {s['id']} ended in {s['state']}" + error_text(s), s)
        payload = s.get("payload") or {}
        link = payload.get("download_link")
        if not link:
            if s["state"] == "created" and confirm:
                s = self.confirm_session(s["id"], True)
            return s
        dl = Downloader(self, link, output, sha256=payload.get("sha256"),
                        size=payload.get("size"), chunk_size=chunk_size, max_bytes=max_bytes,
                        session=s["id"])
        result = dl.run_verified()
        if not result["ok"]:
            if s["state"] == "created" and confirm:
                self.confirm_session(s["id"], False, result["message"])
                log.info("session %s: confirmed failure", s["id"])
            raise DownloadError(result["message"])
        log.info("%s: %d bytes, sha256 %s (verified)", output, result["size"], result["sha256"])
        if s["state"] == "created" and confirm:
            s = self.confirm_session(s["id"], True)
            log.info("session %s: confirmed success -> %s", s["id"], s["state"])
        return s

    def reusable_session(self, dl: Any, device_id: Optional[str]) -> Optional[JSON]:
        """The session recorded with a partial download, if it still waits for this
        device."""
        st = dl.load_state()
        if not st or not st.get("session") or not os.path.exists(dl.part):
            return None
        try:
            s = self.session(st["session"])
        except ApiError:
            return None
        if s.get("state") == "created" and not s.get("finished"):
            if device_id and s.get("device"):
                dev = self.fetch("device", s["device"])
                if dev.get("device_id") != device_id:
                    return None
            return s
        return None


def parse_total(content_range: str) -> Optional[int]:
    """SIZE of 'bytes */SIZE' (a 416 answer), else None."""
    m = re.match(r"^bytes \*/(\d+)$", content_range or "")
    return int(m.group(1)) if m else None
