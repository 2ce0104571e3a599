"""Helpers of the session suites: firmware uploads through the real API, procedures with short
timeouts, session requests and bounded polling."""
import time

from conftest import unique

FU = "/api/v1/firmware-update/"
# --reaper-interval-ms for session tests: timeouts of 1-2 s fire within a tenth of a second.
FAST_ARGS = ["--reaper-interval-ms", "100", "--workers", "2"]


def upload_fw(admin, catalog, version, data=None, draft=False, channels=None, model=None):
    """Uploads an image through POST /api/v1/firmware/ and returns the firmware object."""
    if data is None:
        data = f"image {version} ".encode() * 64
    if channels is None:
        channels = [catalog["channel"]["tid"]]
    parts = [("model", (None, model or catalog["model"]["tid"])), ("version", (None, version)),
             ("draft", (None, "true" if draft else "false"))]
    for c in channels:
        parts.append(("channels", (None, c)))
    parts.append(("file", ("app.bin", data, "application/octet-stream")))
    r = admin.request("POST", "/api/v1/firmware/", files=parts)
    assert r.status_code == 201, r.text
    return r.json()


def procedure(admin, catalog, steps=None, confirm=True, **timeouts):
    body = {"tid": unique("dp"), "name": "P", "delivery_method": catalog["method"]["tid"],
            "confirm": confirm}
    if steps is not None:
        body["steps"] = steps
    body.update(timeouts)
    return admin.create("/api/v1/delivery-procedures/", body)


def request(client, catalog, dp, version="1.0.0", **extra):
    body = {"model": catalog["model"]["tid"], "delivery_procedure_tid": dp["tid"],
            "current_channel": catalog["channel"]["tid"], "current_firmware_version": version}
    body.update(extra)
    return client.post(FU + "request", json=body)


def new_session(client, catalog, dp, version="1.0.0", **extra):
    r = request(client, catalog, dp, version, **extra)
    assert r.status_code == 201, r.text
    return r.json()


def wait_for(client, sid, pred, timeout=15.0):
    """Polls the session until pred(session) holds; at most timeout seconds."""
    deadline = time.monotonic() + timeout
    s = None
    while time.monotonic() < deadline:
        s = client.get(FU + sid).json()
        if "state" not in s:
            raise AssertionError(f"session {sid}: {s}")
        if pred(s):
            return s
        time.sleep(0.05)
    raise AssertionError(f"session {sid} never got there: {s}")


def wait_state(client, sid, state, timeout=15.0):
    return wait_for(client, sid, lambda s: s["state"] == state, timeout)
