"""A multipart/form-data body that streams one file between small text parts."""
from __future__ import annotations

import os
import uuid
from typing import Iterator, Optional, Sequence, Tuple

from .errors import DeviceHubError

__all__ = ["MultipartFile"]

# Bytes read from the file per block of the body.
UPLOAD_BLOCK = 256 * 1024


class MultipartFile:
    """requests sees __len__ (so it sends Content-Length, not chunked encoding) and __iter__
    (so the body goes out block by block and the file is never read whole into memory)."""

    def __init__(self, fields: Sequence[Tuple[str, str]], file_field: str, path: str,
                 filename: str, boundary: Optional[str] = None) -> None:
        self.boundary = boundary or "devicehub-" + uuid.uuid4().hex
        self.path = path
        pre = b""
        for name, value in fields:
            pre += (f"--{self.boundary}\r\nContent-Disposition: form-data; "
                    f"name=\"{name}\"\r\n\r\n").encode() + str(value).encode() + b"\r\n"
        safe_name = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
        pre += (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{file_field}\"; "
                f"filename=\"{safe_name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        self.pre = pre
        self.post = f"\r\n--{self.boundary}--\r\n".encode()
        self.size = os.path.getsize(path)
        self.sent = 0

    def __len__(self) -> int:
        return len(self.pre) + self.size + len(self.post)

    def __iter__(self) -> Iterator[bytes]:
        yield self.pre
        with open(self.path, "rb") as f:
            left = self.size
            while left > 0:
                block = f.read(min(UPLOAD_BLOCK, left))
                if not block:
                    raise DeviceHubError(f"{self.path} shrank while it was being uploaded")
                left -= len(block)
                self.sent += len(block)
                yield block
        yield self.post
