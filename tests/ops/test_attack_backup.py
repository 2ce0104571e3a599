"""Second attack run, backup archives and the files a backup writes: a restore refuses
duplicate members (a second manifest or info would replace what the first said; it was
accepted, and leaked), links, directories, pax and GNU headers and truncation anywhere,
leaving the data dir empty and the process clean; a backup never writes through a symbolic
link planted at its temporary names, and what a killed backup left there is replaced.
"""
import io
import os
import tarfile

import pytest

from conftest import ADMIN_TOKEN, Client, Server
from test_backup import dh, entries

SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A backup of a server with one product and one image, and its members."""
    tmp = tmp_path_factory.mktemp("good")
    srv = Server().start()
    try:
        admin = Client(srv, ADMIN_TOKEN)
        p = admin.create("/api/v1/products/", {"tid": "p-bk", "name": "P"})
        admin.create("/api/v1/models/", {"tid": "m-bk", "name": "M", "product": p["tid"]})
        admin.create("/api/v1/channels/", {"tid": "c-bk", "name": "C"})
        r = admin.post("/api/v1/firmware/", files={"file": ("fw.bin", os.urandom(3000))},
                       data={"model": "m-bk", "version": "1.0.0", "channels": "c-bk"})
        assert r.status_code == 201, r.text
        path = tmp / "good.tar"
        r = dh("backup", "--data-dir", srv.data_dir, "--to", path)
        assert r.returncode == 0, r.stderr
    finally:
        srv.cleanup()
    with tarfile.open(path) as tar:
        members = {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers()}
    return path, members


def write_tar(path, items):
    """items: (name, data) for plain files, or TarInfo objects for anything else."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for it in items:
            if isinstance(it, tarfile.TarInfo):
                tar.addfile(it)
                continue
            name, data = it
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def restore_refused(tmp_path, archive, words):
    target = tmp_path / ("into-" + archive.name)
    r = dh("restore", "--from", archive, "--data-dir", target)
    assert r.returncode == 1, (archive.name, r.stdout, r.stderr)
    assert not any(s in r.stderr for s in SANITIZER), r.stderr
    assert words in r.stderr, (archive.name, r.stderr)
    assert entries(target) == [], (archive.name, entries(target))


def parts(good):
    _, m = good
    info = ("devicehub-backup.json", m["devicehub-backup.json"][1])
    db = ("devicehub.db", m["devicehub.db"][1])
    man = ("MANIFEST.sha256", m["MANIFEST.sha256"][1])
    blob = next((n, d) for n, (_, d) in m.items() if n.startswith("blobs/"))
    return info, db, blob, man


@pytest.mark.parametrize("which", ["info", "db", "blob", "manifest"])
def test_a_member_twice_is_refused(good, tmp_path, which):
    info, db, blob, man = parts(good)
    order = {"info": [info, info, db, blob, man], "db": [info, db, db, blob, man],
             "blob": [info, db, blob, blob, man], "manifest": [info, db, blob, man, man]}
    archive = write_tar(tmp_path / f"twice-{which}.tar", order[which])
    restore_refused(tmp_path, archive, "appears twice")


def test_a_first_manifest_cannot_be_replaced_by_a_second(good, tmp_path):
    info, db, blob, man = parts(good)
    bogus = ("MANIFEST.sha256", b"0" * 64 + b"  devicehub.db\n")
    archive = write_tar(tmp_path / "two-manifests.tar", [info, db, blob, bogus, man])
    restore_refused(tmp_path, archive, "appears twice")


def special(name, kind, link=""):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.linkname = link
    return t


@pytest.mark.parametrize("case", ["symlink", "hardlink", "dir", "fifo", "pax", "gnu-longname"])
def test_members_that_are_not_plain_files_are_refused(good, tmp_path, case):
    info, db, blob, man = parts(good)
    archive = tmp_path / f"{case}.tar"
    if case == "pax":
        with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
            t = tarfile.TarInfo("devicehub.db")
            t.size = len(db[1])
            t.pax_headers = {"path": "../../escape"}
            tar.addfile(t, io.BytesIO(db[1]))
    elif case == "gnu-longname":
        with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:
            t = tarfile.TarInfo("blobs/sha256/" + "a" * 200)
            t.size = 1
            tar.addfile(t, io.BytesIO(b"x"))
    else:
        kind = {"symlink": (tarfile.SYMTYPE, "/etc/passwd"),
                "hardlink": (tarfile.LNKTYPE, "devicehub-backup.json"),
                "dir": (tarfile.DIRTYPE, ""), "fifo": (tarfile.FIFOTYPE, "")}[case]
        write_tar(archive, [info, special("devicehub.db", *kind), blob, man])
    restore_refused(tmp_path, archive, "Not a Device Hub backup")
    assert not (tmp_path / "escape").exists()


def test_truncation_anywhere_is_refused(good, tmp_path):
    data = good[0].read_bytes()
    # inside the first header, at a block boundary, inside a member, inside the end marker
    for cut in (100, 512, 512 + 700, len(data) - 700):
        archive = tmp_path / f"cut-{cut}.tar"
        archive.write_bytes(data[:cut])
        restore_refused(tmp_path, archive, "archive ends")


def test_a_member_larger_than_the_archive_is_refused(good, tmp_path):
    info, db, blob, man = parts(good)
    archive = write_tar(tmp_path / "huge.tar", [info, db, blob, man])
    raw = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        off = tar.getmember("devicehub.db").offset
    # size field (12 bytes at 124) of the database's header: 64 GiB, checksum fixed up
    raw[off + 124:off + 136] = b"%011o\0" % (64 << 30)
    raw[off + 148:off + 156] = b" " * 8
    raw[off + 148:off + 156] = b"%06o\0 " % sum(raw[off:off + 512])
    archive.write_bytes(bytes(raw))
    restore_refused(tmp_path, archive, "archive ends inside devicehub.db")


def test_a_backup_never_writes_through_a_planted_link(good, tmp_path):
    """A backup into a shared directory opened its temporary archive with O_TRUNC and
    followed a symbolic link someone had put at FILE.partial, overwriting its target."""
    srv = Server().start()
    try:
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me")
        to = tmp_path / "shared" / "nightly.tar"
        to.parent.mkdir()
        os.symlink(victim, str(to) + ".partial")
        os.symlink(victim, str(to) + ".db-snapshot")
        r = dh("backup", "--data-dir", srv.data_dir, "--to", to)
        assert victim.read_text() == "keep me"
        # the planted names were ours to replace: the backup went through
        assert r.returncode == 0, r.stderr
        assert sorted(os.listdir(to.parent)) == ["nightly.tar"]
        # what a killed backup leaves (a partial archive) is replaced, not appended to
        to2 = tmp_path / "shared" / "again.tar"
        with open(str(to2) + ".partial", "wb") as f:
            f.write(b"\xff" * 10000)
        r = dh("backup", "--data-dir", srv.data_dir, "--to", to2)
        assert r.returncode == 0, r.stderr
        with tarfile.open(to2) as tar:
            assert "devicehub.db" in tar.getnames()
    finally:
        srv.cleanup()
