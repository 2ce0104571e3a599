"""Image downloads (API.md, Downloads): whole image, HEAD, single byte ranges (closed, open,
suffix), unsatisfiable ranges, ignored multi-range and malformed headers, If-Range with the
ETag or the date, and a 1 MiB image fetched in ranges, reassembled and hashed."""
import hashlib
import os

import pytest

from conftest import Client, assert_error, make_user, unique
from test_firmware import FW, upload

SIZE = 1024 * 1024


@pytest.fixture(scope="module")
def image(admin):
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                         "product": p["id"]})
    data = os.urandom(SIZE)
    fw = upload(admin, data, model=m["id"], version="1.0.0").json()
    return {"data": data, "fw": fw, "url": FW + fw["id"] + "/image", "product": p}


def get(admin, image, rng=None, **headers):
    if rng is not None:
        headers["Range"] = rng
    return admin.get(image["url"], headers=headers)


def test_whole_image(admin, image):
    r = get(admin, image)
    assert r.status_code == 200
    assert r.content == image["data"]
    h = r.headers
    assert h["Content-Length"] == str(SIZE) and h["Accept-Ranges"] == "bytes"
    assert h["Content-Type"] == "application/octet-stream"
    assert h["ETag"] == '"' + image["fw"]["sha256"] + '"'
    assert h["Last-Modified"].endswith(" GMT") and "Content-Range" not in h
    # by tid too, and the same bytes every time (served from a shared mapping)
    assert admin.get(FW + image["fw"]["id"] + "/image/").content == image["data"]


def test_head(admin, image):
    r = admin.head(image["url"])
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Length"] == str(SIZE)
    assert r.headers["ETag"] == '"' + image["fw"]["sha256"] + '"'
    r = admin.head(image["url"], headers={"Range": "bytes=0-99"})
    assert r.status_code == 206 and r.content == b""
    assert r.headers["Content-Length"] == "100"


@pytest.mark.parametrize("rng,start,end", [
    ("bytes=0-0", 0, 0),
    ("bytes=0-4095", 0, 4095),
    ("bytes=1000-1999", 1000, 1999),
    ("bytes=1048000-", 1048000, SIZE - 1),
    ("bytes=1048575-", SIZE - 1, SIZE - 1),
    ("bytes=-1", SIZE - 1, SIZE - 1),
    ("bytes=-4096", SIZE - 4096, SIZE - 1),
    ("bytes=-5000000", 0, SIZE - 1),
    ("bytes=1048000-99999999", 1048000, SIZE - 1),
    ("BYTES=10-19", 10, 19),
])
def test_single_range(admin, image, rng, start, end):
    r = get(admin, image, rng)
    assert r.status_code == 206, (rng, r.status_code)
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
    assert r.headers["Content-Length"] == str(end - start + 1)
    assert r.content == image["data"][start:end + 1]
    assert r.headers["ETag"] == '"' + image["fw"]["sha256"] + '"'


@pytest.mark.parametrize("rng", ["bytes=1048576-", "bytes=2000000-2000010", "bytes=-0"])
def test_unsatisfiable_range_is_416(admin, image, rng):
    r = get(admin, image, rng)
    assert_error(r, 416, "range_not_satisfiable")
    assert r.headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize("rng", [
    "bytes=0-1,5-6",        # several ranges: not supported, whole image
    "bytes=0-1, 100-",
    "bytes=5-4",            # malformed: ignored (RFC 9110)
    "bytes=abc",
    "bytes=",
    "pages=1-2",
    "bytes=1-2-3",
])
def test_ignored_range_headers_give_the_whole_image(admin, image, rng):
    r = get(admin, image, rng)
    assert r.status_code == 200, rng
    assert "Content-Range" not in r.headers
    assert r.content == image["data"]


def test_if_range(admin, image):
    etag = '"' + image["fw"]["sha256"] + '"'
    r = get(admin, image, "bytes=100-199", **{"If-Range": etag})
    assert r.status_code == 206 and r.content == image["data"][100:200]
    date = get(admin, image).headers["Last-Modified"]
    r = get(admin, image, "bytes=100-199", **{"If-Range": date})
    assert r.status_code == 206 and r.content == image["data"][100:200]
    for stale in ('"' + "0" * 64 + '"', "W/" + etag, "Mon, 01 Jan 2001 00:00:00 GMT"):
        r = get(admin, image, "bytes=100-199", **{"If-Range": stale})
        assert r.status_code == 200 and r.content == image["data"], stale
    # a stale validator also turns an unsatisfiable range into the whole new image
    r = get(admin, image, "bytes=9999999-", **{"If-Range": '"other"'})
    assert r.status_code == 200 and len(r.content) == SIZE


def test_ranged_download_reassembles(admin, image):
    parts, off, step = [], 0, 65536 + 17
    for _ in range(SIZE // step + 2):
        if off >= SIZE:
            break
        r = get(admin, image, f"bytes={off}-{off + step - 1}")
        assert r.status_code == 206
        parts.append(r.content)
        off += len(r.content)
    assert off == SIZE
    assert hashlib.sha256(b"".join(parts)).hexdigest() == image["fw"]["sha256"]


def test_download_rights(admin, server, image):
    _, upd = make_user(admin, ["update"], product=image["product"]["id"])
    r = Client(server, upd).get(image["url"], headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == image["data"][-10:]
    other = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "O"})
    _, stranger = make_user(admin, ["update"], product=other["id"])
    assert_error(Client(server, stranger).get(image["url"]), 404, "not_found")
    assert_error(Client(server, None).get(image["url"]), 401, "unauthorized")
    assert_error(admin.get(FW + "no-such-firmware/image"), 404, "not_found")
