"""The manual pages the build writes (devicehubd(8), dh-smp(1), devicehub(1)) say what the
programs' --help says: the same options and commands with the same sentences, defaults and
environment variables, in the project's version, and they format without groff warnings."""
import os
import re
import subprocess

import pytest

from conftest import BIN, ROOT

BUILD = os.path.dirname(os.path.dirname(BIN))
PAGES = {
    "devicehubd.8": ([BIN], ["backup", "restore"]),
    "dh-smp.1": ([os.path.join(BUILD, "server", "smp", "dh-smp")], []),
    "devicehub.1": (["/usr/bin/python3", os.path.join(ROOT, "scripts", "devicehub")],
                    ["update"]),
}
PAGE_DIRS = {"devicehubd.8": "docs/man", "dh-smp.1": "docs/man", "devicehub.1": "clients/python"}
# The first words of an option or command item of --help: "  --port", "  upload FILE".
HELP_ITEM = re.compile(r"^ {2,4}(\S+(?: [^ ]\S*)*)(?: {2,}(\S.*))?$")


def page_path(name):
    path = os.path.join(BUILD, PAGE_DIRS[name], name)
    if not os.path.exists(path):
        pytest.skip(f"{path} is not built (meson build dir expected beside DEVICEHUB_BIN)")
    return path


def help_text(program, command=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEHUB_")}
    r = subprocess.run(program + ([command] if command else []) + ["--help"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def words(text):
    return " ".join(text.split())


def unroff(line):
    line = re.sub(r"\\\(lq|\\\(rq", '"', line)
    line = line.replace("\\-", "-").replace("\\&", "").replace("\\:", "")
    return line.replace("\\e", "\\")


def man_items(path):
    """{(command, term): text} of the page's .TP items: command None for OPTIONS, the
    subsection's command in COMMANDS; and the .TH line."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    items, th, key, section, command, expect_term = {}, None, None, None, None, False
    for line in lines:
        if line.startswith(".TH "):
            th = line
        if line.startswith(".SH "):
            section, command, key = line[4:], None, None
        elif line.startswith(".SS "):
            key = None
            if section == "COMMANDS":
                command = unroff(line).split()[-1]
        elif line == ".TP":
            expect_term, key = True, None
        elif line.startswith(".B ") and expect_term:
            expect_term = False
            if section in ("OPTIONS", "COMMANDS"):
                key = (command, unroff(line[3:]))
                items[key] = []
        elif line == ".br":
            continue
        elif line.startswith("."):
            key = None
        elif key:
            items[key].append(unroff(line))
    return {k: words(" ".join(v)) for k, v in items.items()}, th


def help_items(text):
    """{term: text} of --help's items: the description and its continuation lines, with
    devicehubd's 'env X, default "Y"' line as the man page words it."""
    items, term = {}, None
    for line in text.split("\n"):
        env = re.match(r'^\s+env (\S+), default "(.*)"$', line)
        m = HELP_ITEM.match(line)
        if env and term:
            items[term].append(f'Environment: {env.group(1)}; default: "{env.group(2)}".')
        elif m and not line.startswith("        ["):
            term = m.group(1)
            items[term] = [m.group(2)] if m.group(2) else []
        elif term and line.startswith("   ") and line.strip():
            if line.startswith("        ["):
                # a long term continued (dh-smp mesh-distribute)
                text_so_far = items.pop(term)
                term = f"{term} {line.strip()}"
                items[term] = text_so_far
            else:
                items[term].append(line.strip())
        elif not line.strip():
            term = None
    return {k: words(" ".join(v)) for k, v in items.items()}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_says_what_help_says(name):
    program, commands = PAGES[name]
    got, th = man_items(page_path(name))
    want = {(None, k): v for k, v in help_items(help_text(program)).items()}
    for c in commands:
        want.update({(c, k): v for k, v in help_items(help_text(program, c)).items()})
    assert set(got) == set(want), (sorted(set(got) ^ set(want)))
    for term, text in want.items():
        assert got[term] == text, (term, got[term], text)
    with open(os.path.join(ROOT, "meson.build"), encoding="utf-8") as f:
        version = re.search(r"version: '([^']+)'", f.read()).group(1)
    assert f'"devicehub {version}"' in th


def test_every_flag_of_the_table_is_in_the_page():
    """Independent of the parsers above: each --flag that devicehubd --help prints is an
    item of devicehubd(8), and so is each environment variable."""
    text = help_text([BIN])
    with open(page_path("devicehubd.8"), encoding="utf-8") as f:
        page = unroff(f.read())
    flags = re.findall(r"^  (--[a-z0-9-]+)", text, re.M)
    assert len(flags) >= 15
    for flag in flags:
        assert f"\n.B {flag}\n" in page, flag
    for env in re.findall(r"env (DEVICEHUB_[A-Z_]+)", text):
        assert f"\n.B {env}\n" in page, env


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_formats_without_warnings(name):
    r = subprocess.run(["man", "--warnings", "-l", "-E", "UTF-8", page_path(name)],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MANWIDTH="80", MAN_KEEP_STDERR="1"))
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    assert "SYNOPSIS" in r.stdout and "DESCRIPTION" in r.stdout
