"""Resumable, verified downloads of an image to a file with HTTP Range requests.

The bytes go to PATH.part and the state to PATH.part.json ({url, etag, size, sha256,
session}), so that a later run continues where an interrupted one stopped. If-Range with
the saved ETag makes the server send the whole image (and the download start over) when it
is no longer the same image. PATH appears only once the SHA-256 matched.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from typing import IO, Any, Dict, Optional, Tuple

import requests

from .client import (CHUNK_RETRIES, DEFAULT_CHUNK, RETRY_DELAY, RETRY_DELAY_MAX, Client,
                     parse_total, short_exc)
from .errors import ApiError, DownloadError, IncompleteDownload, TransportError

__all__ = ["Downloader"]

log = logging.getLogger("devicehub")

# Largest block read from an answer at once.
READ_BLOCK_MAX = 1 << 20


class Downloader:
    """Downloads url to path. sha256 and size, when known, are checked; chunk_size is the
    size of each Range request; max_bytes stops the run after that many bytes received
    (IncompleteDownload; the next run resumes); session is recorded in the state file so
    that a resuming caller can find the session the download belongs to."""

    def __init__(self, client: Client, url: Optional[str], path: str, *,
                 sha256: Optional[str] = None, size: Optional[int] = None,
                 chunk_size: int = DEFAULT_CHUNK, max_bytes: Optional[int] = None,
                 session: Optional[str] = None) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.client = client
        self.url = url
        self.path = str(path)
        self.part = self.path + ".part"
        self.statef = self.path + ".part.json"
        self.sha256 = (sha256 or "").lower() or None
        self.size = size
        self.chunk = chunk_size
        self.max_bytes = max_bytes
        self.session = session
        self.etag: Optional[str] = None
        self.fetched = 0  # bytes received in this run

    # ---- state -------------------------------------------------------------------------

    def load_state(self) -> Optional[Dict[str, Any]]:
        """The saved state of an earlier run, if any."""
        try:
            with open(self.statef, encoding="utf-8") as f:
                st = json.load(f)
            return st if isinstance(st, dict) else None
        except (OSError, ValueError):
            return None

    def save_state(self) -> None:
        tmp = self.statef + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"url": self.url, "etag": self.etag, "size": self.size,
                       "sha256": self.sha256, "session": self.session}, f)
        os.replace(tmp, self.statef)

    def discard(self) -> None:
        """Removes the partial file and its state."""
        for p in (self.part, self.statef):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        self.etag = None

    def resume_offset(self) -> int:
        """Bytes of path.part that belong to the image we want (0 to start afresh)."""
        st = self.load_state()
        if not st or not os.path.exists(self.part):
            self.discard()
            return 0
        if self.sha256 and st.get("sha256") and st["sha256"] != self.sha256:
            log.info("the partial file belongs to another image; starting over")
            self.discard()
            return 0
        self.etag = st.get("etag")
        if self.size is None:
            self.size = st.get("size")
        have = os.path.getsize(self.part)
        if self.size is not None and have > self.size:
            log.info("the partial file is longer than the image; starting over")
            self.discard()
            return 0
        return have

    # ---- transfer ----------------------------------------------------------------------

    def run(self) -> int:
        """Fills path.part up to the full size; returns the size. Raises IncompleteDownload
        at max_bytes."""
        if not self.url:
            raise ValueError("Downloader.run needs a url")
        offset = self.resume_offset()
        if offset:
            log.info("resuming %s at byte %d%s", self.path, offset,
                     f" of {self.size}" if self.size is not None else "")
        mode = "r+b" if os.path.exists(self.part) else "w+b"
        with open(self.part, mode) as f:
            f.truncate(offset)
            self.save_state()
            while self.size is None or offset < self.size:
                want = self.chunk
                if self.max_bytes is not None:
                    left = self.max_bytes - self.fetched
                    if left <= 0:
                        raise IncompleteDownload(
                            f"download stopped after {self.fetched} bytes (max_bytes); "
                            f"{offset} of {self.size} bytes are in {self.part}; "
                            "rerun the same command to resume", offset, self.size, self.part)
                    want = min(want, left)
                offset = self.fetch_chunk(f, offset, want)
            f.flush()
            os.fsync(f.fileno())
        return offset

    def fetch_chunk(self, f: IO[bytes], offset: int, want: int) -> int:
        """One ranged GET of up to want bytes at offset; returns the new offset."""
        assert self.url is not None
        headers = {"Range": f"bytes={offset}-{offset + want - 1}"}
        if self.etag:
            headers["If-Range"] = self.etag
        err: BaseException = DownloadError("no attempt")
        for attempt in range(CHUNK_RETRIES + 1):
            try:
                r = self.client.raw("GET", self.url, headers=headers, stream=True)
                try:
                    return self.take_answer(r, f, offset)
                finally:
                    r.close()
            except (requests.exceptions.ConnectionError,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.Timeout) as e:
                err = e
            except (TransportError, DownloadError) as e:  # worth another try
                if attempt == CHUNK_RETRIES:
                    raise
                err = e
            delay = min(RETRY_DELAY * (2 ** attempt), RETRY_DELAY_MAX)
            log.info("chunk at byte %d failed (%s); retrying in %g s", offset, short_exc(err),
                     delay)
            time.sleep(delay)
        raise DownloadError(f"download of {self.url} failed at byte {offset}")

    def take_answer(self, r: requests.Response, f: IO[bytes], offset: int) -> int:
        if r.status_code == 416:
            total = parse_total(r.headers.get("Content-Range", ""))
            if total is not None and total == offset:
                self.size = total
                return offset
            log.info("the server cannot serve the saved offset (416); starting over")
            self.reset(f, total)
            return 0
        if r.status_code == 206:
            m = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", r.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise DownloadError(f"the server sent a wrong Content-Range "
                                    f"({r.headers.get('Content-Range')!r}) for byte {offset}")
            etag = r.headers.get("ETag")
            if self.etag and etag and etag != self.etag:
                log.info("the image changed on the server (new ETag); starting over")
                self.reset(f, int(m.group(3)))
                self.etag = etag
                self.save_state()
                return 0
            if self.etag is None and etag:
                self.etag = etag
            total = int(m.group(3))
            if self.size is not None and self.size != total:
                raise DownloadError(f"the server reports {total} bytes, expected {self.size}")
            self.size = total
            n = int(m.group(2)) - offset + 1
            self.save_state()
            return self.copy_body(r, f, offset, n)
        if r.status_code == 200:
            # Whole image: If-Range did not match (image changed) or no range support.
            if offset:
                log.info("the server sent the whole image (If-Range did not match); "
                         "starting over")
            self.reset(f, None)
            self.etag = r.headers.get("ETag")
            length = r.headers.get("Content-Length")
            self.size = int(length) if length and length.isdigit() else self.size
            self.save_state()
            limit = None
            if self.max_bytes is not None:
                limit = self.max_bytes - self.fetched
            end = self.copy_body(r, f, 0, limit, whole=True)
            if self.size is None:
                self.size = end
            return end
        raise ApiError(r)

    def reset(self, f: IO[bytes], total: Optional[int]) -> None:
        f.seek(0)
        f.truncate(0)
        self.etag = None
        if total is not None:
            self.size = total

    def copy_body(self, r: requests.Response, f: IO[bytes], offset: int, n: Optional[int],
                  whole: bool = False) -> int:
        """Writes the body at offset: n bytes exactly (206) or up to n (whole image)."""
        f.seek(offset)
        got = 0
        for block in r.iter_content(chunk_size=min(max(self.chunk, 4096), READ_BLOCK_MAX)):
            if n is not None and got + len(block) > n:
                if not whole:
                    raise DownloadError(f"the server sent more than the {n} bytes it announced")
                block = block[:n - got]
            f.write(block)
            got += len(block)
            if n is not None and got >= n:
                break
        if not whole and got != n:
            raise requests.exceptions.ChunkedEncodingError(
                f"short chunk: {got} of {n} bytes at byte {offset}")
        f.flush()
        self.fetched += got
        return offset + got

    # ---- verification ------------------------------------------------------------------

    def finish(self) -> Tuple[bool, str]:
        """Hashes path.part; on a match renames it to path. Returns (ok, digest)."""
        h = hashlib.sha256()
        with open(self.part, "rb") as f:
            for block in iter(lambda: f.read(READ_BLOCK_MAX), b""):
                h.update(block)
        digest = h.hexdigest()
        if self.sha256 and digest != self.sha256:
            return False, digest
        os.replace(self.part, self.path)
        try:
            os.unlink(self.statef)
        except FileNotFoundError:
            pass
        return True, digest

    def run_verified(self) -> Dict[str, Any]:
        """Download and check; on a mismatch start over once from zero (the partial file
        may have been damaged), then report. Returns {ok, size, sha256, message}."""
        size, digest, msg = 0, "", ""
        for attempt in range(2):
            size = self.run()
            ok, digest = self.finish()
            if ok:
                return {"ok": True, "size": size, "sha256": digest, "message": ""}
            msg = f"sha256 mismatch for {self.path}: expected {self.sha256}, got {digest}"
            self.discard()
            if attempt == 0:
                log.info("%s; discarding the partial file and downloading again", msg)
                self.fetched = 0
        return {"ok": False, "size": size, "sha256": digest, "message": msg}
