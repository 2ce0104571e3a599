"""Firmware images: streamed multipart upload (requests and curl), MCUboot header info,
immutability, bad input that leaves nothing behind, rights, list filters, patch and delete
rules, and identical images sharing one blob."""
import hashlib
import json
import os
import socket
import struct
import subprocess
import time
import uuid

from conftest import ADMIN_TOKEN, Client, Server, assert_error, make_user, unique

FW = "/api/v1/firmware/"
MCUBOOT_MAGIC = 0x96F3B83D


def mcuboot_image(body, version=(1, 2, 3, 4), hdr_size=32, load_addr=0, flags=0):
    """A minimal MCUboot image: header padded to hdr_size, body, SHA-256 TLV."""
    major, minor, rev, build = version
    hdr = struct.pack("<IIHHII", MCUBOOT_MAGIC, load_addr, hdr_size, 0, len(body), flags)
    hdr += struct.pack("<BBHI", major, minor, rev, build) + b"\0" * 4
    hdr += b"\0" * (hdr_size - len(hdr))
    digest = hashlib.sha256(hdr + body).digest()
    tlv = struct.pack("<HH", 0x10, len(digest)) + digest
    return hdr + body + struct.pack("<HH", 0x6907, 4 + len(tlv)) + tlv


def upload(client, data, filename="app.bin", token=None, **fields):
    """POSTs a multipart upload; list values become repeated parts."""
    parts = []
    for k, v in fields.items():
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            parts.append((k, (None, str(item))))
    parts.append(("file", (filename, data, "application/octet-stream")))
    return client.request("POST", FW, files=parts, token=token)


def blob_files(server):
    """(files under blobs/sha256, files under blobs/tmp) of the server's data dir."""
    root = os.path.join(server.data_dir, "blobs")
    stored = []
    for d, _, files in os.walk(os.path.join(root, "sha256")):
        stored += [os.path.join(d, f) for f in files]
    tmp = os.listdir(os.path.join(root, "tmp"))
    return sorted(stored), tmp


def blob_path(server, sha):
    return os.path.join(server.data_dir, "blobs", "sha256", sha[:2], sha)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def count(admin, **params):
    return admin.get(FW, params=params).json()["count"]


def test_upload_with_requests(admin, server, catalog):
    data = os.urandom(5000)
    tid = unique("fw")
    r = upload(admin, data, filename="app-v1.bin", model=catalog["model"]["tid"],
               version="1.0.0-rc.1+b7", channels=catalog["channel"]["tid"],
               description="first", tid=tid)
    assert r.status_code == 201, r.text
    fw = r.json()
    assert set(fw) == {"id", "tid", "model", "version", "channels", "draft", "description",
                       "size", "sha256", "filename", "image_info", "create_time"}
    assert fw["model"] == catalog["model"]["id"] and fw["version"] == "1.0.0-rc.1+b7"
    assert fw["channels"] == [catalog["channel"]["id"]] and fw["draft"] is False
    assert fw["size"] == 5000 and fw["sha256"] == sha(data) and fw["filename"] == "app-v1.bin"
    assert fw["image_info"] is None and fw["description"] == "first" and fw["tid"] == tid
    assert "+00:00" in fw["create_time"] and len(fw["id"]) == 36
    for key in (fw["id"], tid, tid + "/"):
        assert admin.get(FW + key).json() == fw
    with open(blob_path(server, fw["sha256"]), "rb") as f:
        assert f.read() == data
    assert blob_files(server)[1] == []


def test_upload_with_curl(admin, server, catalog, tmp_path):
    img = mcuboot_image(os.urandom(3000), version=(2, 0, 1, 9))
    path = tmp_path / "app.bin"
    path.write_bytes(img)
    out = subprocess.run(
        ["curl", "-sS", "-H", f"Authorization: Token {ADMIN_TOKEN}",
         "-F", f"file=@{path}", "-F", f"model={catalog['model']['tid']}",
         "-F", "version=2.0.1", "-F", f"channels={catalog['channel']['tid']}",
         "-F", "draft=true", "-w", "\n%{http_code}", server.url + FW],
        capture_output=True, timeout=30, check=True).stdout.decode()
    body, status = out.rsplit("\n", 1)
    assert status == "201", out
    fw = json.loads(body)
    assert fw["filename"] == "app.bin" and fw["draft"] is True and fw["size"] == len(img)
    assert fw["sha256"] == sha(img)
    assert fw["image_info"]["mcuboot"] is True and fw["image_info"]["version"] == "2.0.1+9"


def test_mcuboot_image_info(admin, catalog):
    img = mcuboot_image(b"Device Hub test\n" * 10, version=(1, 2, 3, 4), hdr_size=512,
                        load_addr=0x8000, flags=0x10)
    r = upload(admin, img, model=catalog["model"]["id"], version="1.2.3")
    assert r.status_code == 201, r.text
    assert r.json()["image_info"] == {"mcuboot": True, "version": "1.2.3+4",
                                      "header_size": 512, "image_size": 160,
                                      "load_addr": 0x8000, "flags": 0x10}
    # too short for a header, or no magic: null
    r = upload(admin, b"\x3d\xb8\xf3\x96" + b"\0" * 10, model=catalog["model"]["id"],
               version="1.2.4")
    assert r.status_code == 201 and r.json()["image_info"] is None


def test_channels_repeated_and_comma_separated(admin, catalog):
    c2 = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "beta"})
    c3 = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "dev"})
    ch = catalog["channel"]
    r = upload(admin, b"x" * 10, model=catalog["model"]["tid"], version="1.0.0",
               channels=[ch["tid"], f"{c2['id']}, {c3['tid']}", ch["id"]])
    assert r.status_code == 201, r.text
    assert sorted(r.json()["channels"]) == sorted([ch["id"], c2["id"], c3["id"]])
    r = upload(admin, b"x" * 10, model=catalog["model"]["tid"], version="1.0.1")
    assert r.status_code == 201 and r.json()["channels"] == []


def test_duplicate_version_is_409_and_leaves_nothing(admin, server, catalog):
    m = catalog["model"]["tid"]
    first = upload(admin, b"one" * 100, model=m, version="3.0.0").json()
    before = blob_files(server)
    body = assert_error(upload(admin, b"two" * 100, model=m, version="3.0.0"), 409, "conflict")
    assert "version" in body["fields"]
    assert blob_files(server) == before
    assert count(admin, model=m) == 1
    assert admin.get(FW + first["id"]).json()["sha256"] == sha(b"one" * 100)
    # build metadata is part of the text: a different version string is a different image
    assert upload(admin, b"two" * 100, model=m, version="3.0.0+1").status_code == 201
    # the same version for another model is fine
    m2 = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M2",
                                          "product": catalog["product"]["id"]})
    assert upload(admin, b"one" * 100, model=m2["id"], version="3.0.0").status_code == 201


def raw_post(server, ctype, body, token=ADMIN_TOKEN):
    return Client(server, token).request("POST", FW, data=body,
                                         headers={"Content-Type": ctype} if ctype else {})


def test_bad_input_leaves_nothing(admin, server, catalog):
    m, ch = catalog["model"]["tid"], catalog["channel"]["tid"]
    before_rows = count(admin)
    before_blobs = blob_files(server)
    data = b"payload" * 50
    cases = [
        (dict(model=m), "version"),
        (dict(version="1.0.0"), "model"),
        (dict(model="no-such-model", version="1.0.0"), "model"),
        (dict(model=m, version="1.0"), "version"),
        (dict(model=m, version="v1.0.0"), "version"),
        (dict(model=m, version="1.0.0", channels="no-such-channel"), "channels"),
        (dict(model=m, version="1.0.0", channels=[ch, "nope"]), "channels"),
        (dict(model=m, version="1.0.0", draft="maybe"), "draft"),
        (dict(model=m, version="1.0.0", bogus="1"), "bogus"),
        (dict(model=m, version="1.0.0", tid="has space"), "tid"),
        (dict(model=m, version="1.0.0", tid=str(uuid.uuid4())), "tid"),
        (dict(model=[m, m], version="1.0.0"), "model"),
    ]
    for fields, bad in cases:
        body = assert_error(upload(admin, data, **fields), 400, "invalid")
        assert bad in body["fields"], (fields, body)
    body = assert_error(upload(admin, b"", model=m, version="1.0.0"), 400, "invalid")
    assert "file" in body["fields"]
    # no file part at all
    r = admin.request("POST", FW, files=[("model", (None, m)), ("version", (None, "1.0.0"))])
    assert "file" in assert_error(r, 400, "invalid")["fields"]
    # two file parts
    r = admin.request("POST", FW, files=[("model", (None, m)), ("version", (None, "1.0.0")),
                                         ("file", ("a", b"a")), ("file", ("b", b"b"))])
    assert "file" in assert_error(r, 400, "invalid")["fields"]
    # not multipart: 415; multipart without boundary or broken: 400
    assert_error(admin.post(FW, json={"model": m, "version": "1.0.0"}), 415,
                 "unsupported_media_type")
    assert_error(raw_post(server, None, b""), 415, "unsupported_media_type")
    assert_error(raw_post(server, "text/plain", b"x"), 415, "unsupported_media_type")
    assert_error(raw_post(server, "multipart/form-data", b"--x\r\n"), 400, "invalid")
    truncated = (b"--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
                 + data)
    assert_error(raw_post(server, "multipart/form-data; boundary=bnd", truncated), 400,
                 "invalid")
    assert_error(raw_post(server, "multipart/form-data; boundary=bnd",
                          b"--bnd\r\nContent-Disposition: form-data\r\n\r\nx\r\n--bnd--"),
                 400, "invalid")
    assert count(admin) == before_rows
    assert blob_files(server) == before_blobs


def test_upload_limit_is_413_and_leaves_nothing(tmp_path):
    s = Server(extra_args=["--max-upload", "65536"]).start()
    try:
        admin = Client(s, ADMIN_TOKEN)
        p = admin.create("/api/v1/products/", {"tid": "p", "name": "P"})
        admin.create("/api/v1/models/", {"tid": "m", "name": "M", "product": p["id"]})
        assert upload(admin, b"a" * 60000, model="m", version="1.0.0").status_code == 201
        assert_error(upload(admin, b"a" * 70000, model="m", version="1.0.1"), 413, "too_large")

        # a chunked body declares no length: the limit applies while it streams
        def chunks():
            head = (b"--bnd\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n"
                    b"--bnd\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1.0.2\r\n"
                    b"--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n"
                    b"\r\n")
            yield head
            for _ in range(20):
                yield b"b" * 8192
            yield b"\r\n--bnd--\r\n"
        r = admin.request("POST", FW, data=chunks(),
                          headers={"Content-Type": "multipart/form-data; boundary=bnd"})
        assert_error(r, 413, "too_large")
        assert admin.get(FW).json()["count"] == 1
        assert len(blob_files(s)[0]) == 1 and blob_files(s)[1] == []
    finally:
        s.cleanup()


def test_upload_limit_counts_the_image_not_the_form(tmp_path):
    """--max-upload bounds the file part: an image of exactly the limit is taken whatever
    the multipart framing and fields around it add; the form has a bound of its own."""
    limit = 100000
    s = Server(extra_args=["--max-upload", str(limit)]).start()
    try:
        admin = Client(s, ADMIN_TOKEN)
        p = admin.create("/api/v1/products/", {"tid": "p", "name": "P"})
        admin.create("/api/v1/models/", {"tid": "m", "name": "M", "product": p["id"]})
        r = upload(admin, b"a" * limit, model="m", version="1.0.0", description="d" * 4096)
        assert r.status_code == 201, r.text
        assert r.json()["size"] == limit
        assert_error(upload(admin, b"a" * (limit + 1), model="m", version="1.0.1"), 413,
                     "too_large")

        def chunked(size, version, preamble=b""):
            if preamble:  # an empty chunk would end the body
                yield preamble
            yield (b"--bnd\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n"
                   b"--bnd\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n"
                   + version + b"\r\n--bnd\r\nContent-Disposition: form-data; name=\"file\";"
                   b" filename=\"a\"\r\n\r\n")
            for i in range(0, size, 8192):
                yield b"c" * min(8192, size - i)
            yield b"\r\n--bnd--\r\n"
        ctype = {"Content-Type": "multipart/form-data; boundary=bnd"}
        r = admin.request("POST", FW, data=chunked(limit, b"1.0.2"), headers=ctype)
        assert r.status_code == 201, r.text
        assert_error(admin.request("POST", FW, data=chunked(limit + 1, b"1.0.3"), headers=ctype),
                     413, "too_large")
        # the form around the image: framing beyond its own bound (2 MiB) is 413 too
        junk = b"x" * (3 * 1024 * 1024)
        assert_error(admin.request("POST", FW, data=chunked(10, b"1.0.4", junk), headers=ctype),
                     413, "too_large")
        # a declared length beyond both is refused before the body is sent
        with socket.create_connection(("127.0.0.1", s.port), timeout=30) as sock:
            sock.sendall(b"POST " + FW.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Token "
                         + ADMIN_TOKEN.encode() + b"\r\nContent-Type: " + ctype["Content-Type"]
                         .encode() + b"\r\nContent-Length: " + str(limit + len(junk)).encode()
                         + b"\r\nConnection: close\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                got = sock.recv(4096)
                assert got, answer
                answer += got
            assert answer.startswith(b"HTTP/1.1 413"), answer
        assert admin.get(FW).json()["count"] == 2
        assert blob_files(s)[1] == []
    finally:
        s.cleanup()


def test_aborted_upload_removes_its_temporary_file(admin, server, catalog):
    # 500 kB is more than a connection's buffer: the server is busy reading when the client
    # hangs up (with MHD's epoll mode that hang-up went unnoticed until the timeout)
    head = (b"--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
            + b"z" * 500000)
    req = (f"POST {FW} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {ADMIN_TOKEN}\r\n"
           "Content-Type: multipart/form-data; boundary=bnd\r\n"
           "Content-Length: 10000000\r\n\r\n").encode() + head
    before = count(admin)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(req)
        deadline = time.monotonic() + 10
        while not blob_files(server)[1] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert blob_files(server)[1], "the upload never reached a temporary file"
    deadline = time.monotonic() + 10
    while blob_files(server)[1] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert blob_files(server)[1] == []
    assert count(admin) == before


def test_rights(admin, server, catalog):
    m, ch = catalog["model"], catalog["channel"]
    other_p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "Other"})
    other_m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "O",
                                               "product": other_p["id"]})
    ch2 = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "beta"})
    _, up = make_user(admin, ["upload"], model=m["id"])
    _, upc = make_user(admin, ["upload"], model=m["id"], channel=ch["id"])
    _, upd = make_user(admin, ["update"], product=catalog["product"]["id"])
    _, stranger = make_user(admin, ["upload"], product=other_p["id"])
    _, nothing = make_user(admin, [])

    fw = upload(admin, b"1" * 100, model=m["id"], version="1.0.0", channels=ch["id"]).json()
    r = upload(admin, b"2" * 100, token=up, model=m["tid"], version="1.0.1")
    assert r.status_code == 201, r.text
    # another product's model: as if it did not exist
    assert_error(upload(admin, b"3" * 100, token=up, model=other_m["tid"], version="1.0.0"),
                 400, "invalid")
    # a model+channel grant uploads into its channel only
    assert upload(admin, b"4", token=upc, model=m["tid"], version="1.0.2",
                  channels=ch["tid"]).status_code == 201
    for channels in ([], [ch2["tid"]], [ch["tid"], ch2["tid"]]):
        assert_error(upload(admin, b"5", token=upc, model=m["tid"], version="1.0.3",
                            channels=channels), 403, "forbidden")
    # update may read and download, not upload
    c = Client(server, upd)
    assert c.get(FW + fw["id"]).status_code == 200
    assert c.get(FW + fw["id"] + "/image").content == b"1" * 100
    assert_error(upload(admin, b"6", token=upd, model=m["tid"], version="1.0.4"), 403,
                 "forbidden")
    assert_error(c.patch(FW + fw["id"], json={"draft": True}), 403, "forbidden")
    assert_error(c.delete(FW + fw["id"]), 403, "forbidden")
    # outside the caller's scope: 404, and absent from lists
    c = Client(server, stranger)
    assert_error(c.get(FW + fw["id"]), 404, "not_found")
    assert_error(c.get(FW + fw["id"] + "/image"), 404, "not_found")
    assert c.get(FW).json()["count"] == 0
    # a user without any grant sees nothing: as if the image did not exist
    assert_error(Client(server, nothing).get(FW + fw["id"]), 404, "not_found")
    assert_error(Client(server, nothing).get(FW), 403, "forbidden")
    assert_error(Client(server, stranger).delete(FW + fw["id"]), 404, "not_found")
    assert_error(Client(server, None).get(FW), 401, "unauthorized")
    assert Client(server, up).get(FW, params={"model": m["id"]}).json()["count"] == 3
    assert admin.get(FW + fw["id"]).json() == fw


def test_list_filters_and_pagination(admin, catalog):
    m, ch = catalog["model"], catalog["channel"]
    ch2 = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "beta"})
    a = upload(admin, b"a", model=m["id"], version="1.0.0", channels=ch["id"]).json()
    b = upload(admin, b"b", model=m["id"], version="1.1.0", channels=ch2["id"],
               draft="true").json()
    c = upload(admin, b"c", model=m["id"], version="1.2.0",
               channels=[ch["id"], ch2["id"]]).json()

    def ids(**params):
        body = admin.get(FW, params=params).json()
        assert body["count"] == len(body["results"])
        return [f["id"] for f in body["results"]]
    assert ids(model=m["tid"]) == [a["id"], b["id"], c["id"]]
    assert ids(model=m["id"], channel=ch["tid"]) == [a["id"], c["id"]]
    assert ids(channel=ch2["id"]) == [b["id"], c["id"]]
    assert ids(model=m["id"], draft="true") == [b["id"]]
    assert ids(model=m["id"], draft="false") == [a["id"], c["id"]]
    assert ids(model=m["id"], version="1.1.0") == [b["id"]]
    assert ids(model="no-such-model") == []
    page = admin.get(FW, params={"model": m["id"], "limit": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and "offset=2" in page["next"]
    assert [f["id"] for f in admin.get(page["next"]).json()["results"]] == [c["id"]]
    for bad in ({"draft": "yes"}, {"limit": 0}, {"offset": -1}):
        assert_error(admin.get(FW, params=bad), 400, "invalid")


def test_patch_rules(admin, catalog):
    m, ch = catalog["model"], catalog["channel"]
    ch2 = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "beta"})
    fw = upload(admin, b"p" * 10, model=m["id"], version="4.0.0", channels=ch["id"]).json()
    tid = unique("fw")
    r = admin.patch(FW + fw["id"], json={"channels": [ch2["tid"]], "draft": True,
                                         "description": "notes", "tid": tid})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["channels"] == [ch2["id"]] and new["draft"] is True
    assert new["description"] == "notes" and new["tid"] == tid
    assert {k: v for k, v in new.items() if k not in ("channels", "draft", "description",
                                                      "tid")} == \
        {k: v for k, v in fw.items() if k not in ("channels", "draft", "description", "tid")}
    for body, field in [({"version": "4.0.1"}, "version"), ({"model": m["tid"]}, "model"),
                        ({"sha256": "0" * 64}, "sha256"), ({"size": 1}, "size"),
                        ({"filename": "x"}, "filename"), ({"image_info": None}, "image_info"),
                        ({"draft": "yes"}, "draft"), ({"channels": "x"}, "channels"),
                        ({"channels": ["no-such"]}, "channels"), ({"tid": "a b"}, "tid"),
                        ({"bogus": 1}, "bogus"), ({"description": 5}, "description")]:
        err = assert_error(admin.patch(FW + tid, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert admin.get(FW + fw["id"]).json() == new
    other = upload(admin, b"q", model=m["id"], version="4.0.1", tid=unique("fw")).json()
    assert "tid" in assert_error(admin.patch(FW + other["id"], json={"tid": tid}), 409,
                                 "conflict")["fields"]
    r = admin.patch(FW + tid, json={"channels": [], "tid": None})
    assert r.status_code == 200 and r.json()["channels"] == [] and r.json()["tid"] is None


def test_identical_images_share_one_blob_and_delete(admin, server, catalog):
    m = catalog["model"]["id"]
    data = os.urandom(20000)
    a = upload(admin, data, model=m, version="5.0.0").json()
    b = upload(admin, data, model=m, version="5.0.1").json()
    assert a["sha256"] == b["sha256"]
    path = blob_path(server, a["sha256"])
    assert [p for p in blob_files(server)[0] if p == path] == [path]
    assert admin.delete(FW + a["id"]).status_code == 204
    assert_error(admin.get(FW + a["id"]), 404, "not_found")
    assert os.path.exists(path)
    assert admin.get(FW + b["id"] + "/image").content == data
    assert admin.delete(FW + b["id"]).status_code == 204
    assert not os.path.exists(path)
    assert blob_files(server)[1] == []
    # the same image again is stored anew
    c = upload(admin, data, model=m, version="5.0.2").json()
    assert os.path.exists(path) and admin.get(FW + c["id"] + "/image").content == data


def test_delete_refused_while_a_device_runs_it(admin, server, catalog):
    fw = upload(admin, b"dev" * 30, model=catalog["model"]["id"], version="6.0.0").json()
    dev = admin.create("/api/v1/devices/", {"device_id": unique("dev"),
                                            "model": catalog["model"]["id"],
                                            "current_firmware": fw["id"]})
    assert_error(admin.delete(FW + fw["id"]), 409, "referenced")
    assert admin.get(FW + fw["id"]).status_code == 200
    assert os.path.exists(blob_path(server, fw["sha256"]))
    assert admin.patch("/api/v1/devices/" + dev["id"],
                       json={"current_firmware": None}).status_code == 200
    assert admin.delete(FW + fw["id"]).status_code == 204
    assert_error(admin.delete(FW + fw["id"]), 404, "not_found")


def test_drafts_are_only_for_those_who_may_have_them(admin, server, catalog):
    """A draft image is listed, read and downloaded only with `draft` (or manage or admin,
    which imply it) or `upload` over it; `update` alone does not see it: 404, as if it did
    not exist, scoped or not."""
    m, p = catalog["model"], catalog["product"]
    pub = upload(admin, b"p" * 64, model=m["id"], version="1.0.0",
                 channels=catalog["channel"]["id"]).json()
    dr = upload(admin, b"d" * 64, model=m["id"], version="2.0.0-beta",
                channels=catalog["channel"]["id"], draft="true").json()
    _, upd_model = make_user(admin, ["update"], model=m["id"])
    _, upd_all = make_user(admin, ["update"])
    for tok in (upd_model, upd_all):
        c = Client(server, tok)
        listed = c.get(FW, params={"model": m["id"]}).json()
        assert [f["id"] for f in listed["results"]] == [pub["id"]], listed
        assert listed["count"] == 1
        assert c.get(FW, params={"model": m["id"], "draft": "true"}).json()["count"] == 0
        assert_error(c.get(FW + dr["id"]), 404, "not_found")
        assert_error(c.get(FW + dr["id"] + "/image"), 404, "not_found")
        assert c.head(FW + dr["id"] + "/image").status_code == 404
        assert c.get(FW + pub["id"] + "/image").content == b"p" * 64
    for actions, scope in ((["draft"], {"model": m["id"]}), (["upload"], {"model": m["id"]}),
                           (["manage"], {"product": p["id"]}), (["draft"], {})):
        _, tok = make_user(admin, actions, **scope)
        c = Client(server, tok)
        assert c.get(FW, params={"model": m["id"]}).json()["count"] == 2, actions
        assert c.get(FW + dr["id"]).json()["draft"] is True
        assert c.get(FW + dr["id"] + "/image").content == b"d" * 64
    # published, the image is everyone's with update
    assert admin.patch(FW + dr["id"], json={"draft": False}).status_code == 200
    assert Client(server, upd_model).get(FW + dr["id"] + "/image").content == b"d" * 64
