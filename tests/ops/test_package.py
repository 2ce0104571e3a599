"""The Debian package: scripts/package builds it with debhelper and dpkg-buildpackage, and
lintian finds no error or warning that debian/ does not explain. Then, without systemd,
its contents: the files, the control fields, the conffile, the systemd unit's hardening,
the maintainer scripts; the packaged server started the unit's way writes the admin token
once and serves its dashboard; and dpkg installs, upgrades, removes and purges it in a
throwaway root (dpkg --root), leaving the service's data alone until the purge."""
import configparser
import os
import re
import shutil
import subprocess
import time

import pytest
import requests

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "scripts", "package")
# A package build compiles the whole project once (about a minute on 2 cores) and lintian
# reads the result: generous bounds for a loaded machine.
PACKAGE_TIMEOUT = 1200
UNIT = "lib/systemd/system/devicehub.service"


def run(args, **kw):
    kw.setdefault("timeout", 120)
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def project_version():
    with open(os.path.join(ROOT, "meson.build"), encoding="utf-8") as f:
        return re.search(r"version: '([^']+)'", f.read()).group(1)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    """(path of the .deb, its output dir) built once for the module by scripts/package."""
    out = tmp_path_factory.mktemp("deb")
    t0 = time.monotonic()
    r = run([PACKAGE, out], timeout=PACKAGE_TIMEOUT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-6000:]
    print(f"scripts/package took {time.monotonic() - t0:.0f} s: {r.stderr.strip()}")
    path = r.stdout.strip().splitlines()[-1]
    assert os.path.isfile(path) and path.endswith(".deb"), r.stdout
    return path, out


@pytest.fixture(scope="module")
def tree(deb, tmp_path_factory):
    """The package's files (dpkg -x) and control files (dpkg -e)."""
    root = tmp_path_factory.mktemp("x")
    assert run(["dpkg", "-x", deb[0], root]).returncode == 0
    control = tmp_path_factory.mktemp("control")
    assert run(["dpkg", "-e", deb[0], control]).returncode == 0
    return root, control


def test_build_depends_cover_the_build_packages():
    """debian/control builds with the packages scripts/deps.sh installs for a build."""
    deps = run(["bash", "-c", ". scripts/deps.sh; echo $DH_BUILD_PKGS"], cwd=ROOT).stdout.split()
    with open(os.path.join(ROOT, "debian", "control"), encoding="utf-8") as f:
        control = f.read()
    build_depends = re.search(r"^Build-Depends:(.*?)^\S", control, re.M | re.S).group(1)
    names = {re.split(r"[\s(]", d.strip())[0] for d in build_depends.split(",") if d.strip()}
    missing = [p for p in deps if p not in names and p != "gcc"]  # gcc: build-essential
    assert not missing, f"add to Build-Depends in debian/control: {missing}"


def test_lintian_is_clean(deb):
    with open(os.path.join(deb[1], "lintian.txt"), encoding="utf-8") as f:
        report = f.read()
    bad = [line for line in report.splitlines() if re.match(r"^[EW]: ", line)]
    assert not bad, report


def test_control_fields(deb):
    fields = {}
    for name in ("Package", "Version", "Architecture", "Depends", "Section"):
        fields[name] = run(["dpkg-deb", "-f", deb[0], name]).stdout.strip()
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    assert fields["Package"] == "devicehub" and fields["Architecture"] == arch
    assert fields["Version"] == project_version()
    depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
    for need in ("python3-requests", "libmicrohttpd12", "libjansson4", "libsqlite3-0", "python3:any"):
        assert need in depends, fields["Depends"]


def test_files(deb, tree):
    listing = run(["dpkg-deb", "-c", deb[0]]).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()
             if not line.startswith("d")}
    want = ["/usr/sbin/devicehubd", "/usr/bin/dh-smp", "/usr/bin/devicehub",
            "/usr/share/devicehub/web/index.html", "/usr/share/devicehub/web/js/app.js",
            "/usr/share/devicehub/web/openapi.json",
            "/usr/share/man/man8/devicehubd.8.gz", "/usr/share/man/man1/dh-smp.1.gz",
            "/usr/share/man/man1/devicehub.1.gz",
            "/usr/lib/python3/dist-packages/devicehub/__init__.py",
            "/usr/lib/python3/dist-packages/devicehub/py.typed",
            "/" + UNIT, "/etc/default/devicehub",
            "/usr/share/doc/devicehub/copyright", "/usr/share/doc/devicehub/README.md.gz"]
    missing = [p for p in want if p not in paths]
    assert not missing, (missing, sorted(paths))
    root, _ = tree
    for f in os.listdir(os.path.join(ROOT, "web")):
        if os.path.isfile(os.path.join(ROOT, "web", f)):
            assert f"/usr/share/devicehub/web/{f}" in paths, f
    # nothing of the build or test trees
    assert not [p for p in paths if "/tests/" in p or "build-" in p]


def test_conffile_and_maintainer_scripts(tree):
    _, control = tree
    with open(control / "conffiles", encoding="utf-8") as f:
        assert f.read().split() == ["/etc/default/devicehub"]
    for script in ("postinst", "postrm", "prerm"):
        path = control / script
        assert os.access(path, os.X_OK), script
        assert run(["sh", "-n", path]).returncode == 0, script
    with open(control / "postinst", encoding="utf-8") as f:
        postinst = f.read()
    # the data dir is never named outside comments: an upgrade cannot touch it
    code = [line for line in postinst.splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "/var/lib/devicehub" in line or "rm " in line]
    assert "deb-systemd-helper" in postinst  # the unit is enabled on install
    with open(control / "postrm", encoding="utf-8") as f:
        postrm = f.read()
    assert re.search(r'"\$1" = "purge".*\n.*rm -rf "\$\{DPKG_ROOT:-\}/var/lib/private/devicehub"',
                     postrm), postrm


def unit(root):
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    with open(os.path.join(root, UNIT), encoding="utf-8") as f:
        p.read_string(f.read())
    return p


def test_unit_hardening(tree):
    u = unit(tree[0])["Service"]
    assert u["DynamicUser"] == "yes"
    assert u["StateDirectory"] == "devicehub"
    assert u["ProtectSystem"] == "strict"
    assert u["NoNewPrivileges"] == "yes"
    assert u["Restart"] == "on-failure"
    assert u["EnvironmentFile"].lstrip("-") == "/etc/default/devicehub"
    assert u["Environment"] == "DEVICEHUB_DATA_DIR=/var/lib/devicehub"
    assert u["CapabilityBoundingSet"] == ""
    for key in ("ProtectHome", "PrivateTmp", "ProtectKernelTunables", "RestrictSUIDSGID",
                "LockPersonality", "MemoryDenyWriteExecute"):
        assert u[key] == "yes", key
    exe = u["ExecStart"].split()[0]
    assert os.access(os.path.join(tree[0], exe.lstrip("/")), os.X_OK), exe
    assert unit(tree[0])["Install"]["WantedBy"] == "multi-user.target"
    if shutil.which("systemd-analyze"):
        r = run(["systemd-analyze", "verify", "--root", tree[0], "/" + UNIT])
        errors = [line for line in (r.stdout + r.stderr).splitlines()
                  if "devicehub.service" in line and "Unknown" in line]
        assert not errors, r.stdout + r.stderr


def unit_env(root, data_dir):
    """The environment the unit gives devicehubd, with its data dir moved to data_dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEHUB_")}
    env["DEVICEHUB_DATA_DIR"] = str(data_dir)
    return env


def start_packaged(root, data_dir, log):
    """The packaged devicehubd, started as the unit starts it (ExecStart, its environment)
    but on 127.0.0.1, a free port and data_dir."""
    exe = os.path.join(root, unit(root)["Service"]["ExecStart"].split()[0].lstrip("/"))
    out = open(log, "ab")
    proc = subprocess.Popen([exe, "--listen", "127.0.0.1", "--port", "0"],
                            env=unit_env(root, data_dir), stdout=out, stderr=subprocess.STDOUT)
    out.close()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            m = re.findall(r"http\.listening .*port=(\d+)", text)
            if m and len(m) > text.count("server.stopped"):
                return proc, int(m[-1])
            assert proc.poll() is None, text
            time.sleep(0.02)
        raise AssertionError("the packaged devicehubd did not start")
    except BaseException:
        proc.kill()  # by its pid; reaped, so nothing of it outlives the test
        proc.wait(10)
        raise


def stop(proc):
    proc.terminate()
    assert proc.wait(20) == 0


def test_packaged_server_writes_the_token_once_and_serves_the_dashboard(tree, tmp_path):
    root, _ = tree
    exe = os.path.join(root, "usr", "sbin", "devicehubd")
    r = run([exe, "--help"])
    assert r.returncode == 0 and "/usr/share/devicehub/web" in r.stdout
    data, log = tmp_path / "state", tmp_path / "journal.txt"
    for _ in range(2):  # first start of an empty state dir, then a restart
        proc, port = start_packaged(root, data, log)
        try:
            page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
            assert page.status_code == 200 and "<title>Device Hub</title>" in page.text
        finally:
            stop(proc)
    text = log.read_text()
    assert text.count("Admin token (shown once") == 1, text
    assert f'web.dir dir="{root}/usr/sbin/../share/devicehub/web"' in text, text
    # the packaged client and library
    r = run([os.path.join(root, "usr", "bin", "devicehub"), "--help"],
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert r.returncode == 0 and r.stdout.startswith("usage: devicehub")
    r = run(["/usr/bin/python3", "-c", "import devicehub; print(devicehub.__file__)"],
            env=dict(os.environ, PYTHONPATH=str(root / "usr/lib/python3/dist-packages")),
            cwd=tmp_path)
    assert r.stdout.startswith(str(root)), r.stdout + r.stderr
    r = run([os.path.join(root, "usr", "bin", "dh-smp"), "--help"])
    assert r.returncode == 0 and "usage: dh-smp" in r.stdout


def fingerprint(path):
    """{relative path: bytes} of every file below path."""
    out = {}
    for d, _, files in os.walk(path):
        for name in files:
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = f.read()
    return out


def test_install_upgrade_remove_purge_in_a_throwaway_root(deb, tmp_path):
    """dpkg --root installs into an empty root, running the maintainer scripts without a
    chroot (DPKG_ROOT); the commands that would reach the host's systemd or Python are
    stubs that only log their calls, deb-systemd-helper is the real one (it honours
    DPKG_ROOT). The data the packaged server wrote into its state dir survives an upgrade
    to a newer version and a removal, and goes with the purge."""
    root, stubs = tmp_path / "root", tmp_path / "stubs"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        os.makedirs(root / d)
    for f in ("status", "available"):
        (root / "var/lib/dpkg" / f).touch()
    stubs.mkdir()
    calls = tmp_path / "calls"
    for name in ("systemctl", "deb-systemd-invoke", "py3compile", "pypy3compile", "py3clean"):
        (stubs / name).write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n')
        (stubs / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}:{os.environ['PATH']}")

    def dpkg(*args):
        r = run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                 *args], env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    # a newer version of the same package, to upgrade to: repacked, not rebuilt
    newer_dir = tmp_path / "newer"
    assert run(["dpkg-deb", "-R", deb[0], newer_dir]).returncode == 0
    control = (newer_dir / "DEBIAN/control").read_text()
    (newer_dir / "DEBIAN/control").write_text(
        re.sub(r"^Version: .*$", f"Version: {project_version()}.1", control, flags=re.M))
    newer = tmp_path / "newer.deb"
    assert run(["dpkg-deb", "-b", "-Zgzip", newer_dir, newer], timeout=300).returncode == 0

    out = dpkg("-i", deb[0])
    assert "journalctl -u devicehub" in out  # the first install tells where the token is
    assert (root / "usr/sbin/devicehubd").is_file()
    wants = root / "etc/systemd/system/multi-user.target.wants/devicehub.service"
    assert os.readlink(wants) == "/" + UNIT  # enabled, inside the root only

    # the service's data, as systemd lays it out for a dynamic user, written by the server
    state = root / "var/lib/private/devicehub"
    state.mkdir(parents=True)
    os.symlink("private/devicehub", root / "var/lib/devicehub")
    proc, port = start_packaged(root, root / "var/lib/devicehub", tmp_path / "journal.txt")
    try:
        token = re.search(r"Admin token \(shown once, keep it safe\): (\S+)",
                          (tmp_path / "journal.txt").read_text()).group(1)
        r = requests.post(f"http://127.0.0.1:{port}/api/v1/products/",
                          json={"tid": "kept", "name": "Kept"},
                          headers={"Authorization": f"Token {token}"}, timeout=10)
        assert r.status_code == 201, r.text
    finally:
        stop(proc)
    before = fingerprint(state)
    assert "devicehub.db" in before
    with open(root / "etc/default/devicehub", "a", encoding="utf-8") as f:
        f.write("DEVICEHUB_PORT=9090\n")

    out = dpkg("-i", newer)
    assert "journalctl" not in out  # an upgrade says nothing of a first start
    assert fingerprint(state) == before
    assert (root / "etc/default/devicehub").read_text().endswith("DEVICEHUB_PORT=9090\n")
    status = (root / "var/lib/dpkg/status").read_text()
    assert f"Version: {project_version()}.1" in status
    log = calls.read_text()
    assert "py3compile -p devicehub" in log

    dpkg("-r", "devicehub")
    assert not (root / "usr/sbin/devicehubd").exists()
    assert fingerprint(state) == before and (root / "etc/default/devicehub").exists()

    dpkg("-P", "devicehub")
    assert not state.exists() and not (root / "var/lib/devicehub").exists()
    assert not (root / "etc/default/devicehub").exists() and not wants.exists()
