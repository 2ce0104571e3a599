"""devicehub: the Python client of a Device Hub firmware-update server (HTTP API v1).

    from devicehub import Client
    hub = Client("http://127.0.0.1:8080", token="...")
    for fw in hub.objects("firmware", model="CAFEBABE"):
        print(fw["version"], fw["sha256"])

Client covers the configuration objects, firmware upload and download, and
firmware-update sessions (request, start, wait, Range download, confirm). Errors are
DeviceHubError subclasses; ApiError carries the server's {code, detail, fields}. The
command-line tool `devicehub` (devicehub.cli) is a thin layer over this library.
"""
from .client import DEFAULT_CHUNK, DEFAULT_URL, JSON, KINDS, WAIT_DONE, Client
from .download import Downloader
from .errors import (ApiError, DeviceHubError, DownloadError, IncompleteDownload,
                     SessionFailed, TransportError, WaitTimeout)

__version__ = "0.1.0"

__all__ = [
    "Client", "Downloader", "JSON", "KINDS", "WAIT_DONE", "DEFAULT_URL", "DEFAULT_CHUNK",
    "DeviceHubError", "ApiError", "TransportError", "DownloadError", "IncompleteDownload",
    "WaitTimeout", "SessionFailed", "__version__",
]
