#!/usr/bin/python3
"""Writes a manual page from a program's --help, at build time, so that the page and --help
can never disagree: every option, command and sentence of the page's SYNOPSIS, DESCRIPTION,
OPTIONS and ENVIRONMENT comes from the program's own output. Hand-written sections (FILES,
EXIT STATUS, EXAMPLES, SEE ALSO...) come from an extra file of roff text appended as is.

The --help shape it reads (devicehubd and dh-smp print it):
  usage: PROG ...            one or more synopsis lines (continuations indented)
  text                       free paragraphs: the description (before the first item)
                             or notes (after it); "exit status: ..." is EXIT STATUS
  heading:                   a line ending in ':' starts a group of items
    TERM     DESCRIPTION     an item: two spaces, the term, two or more spaces, its text;
             more text       continuation lines at the description's column
    TERM WITH MANY WORDS     a term alone on its line, continued by lines indented less
        [more term]          than the description's column, then its text
             env NAME, default "VALUE"
                             (devicehubd) the item's environment variable and default,
                             also listed under ENVIRONMENT

Usage: mkman.py --name NAME --section N --summary TEXT --version V [--extra FILE]
                [--command SUB]... --output FILE -- PROGRAM [ARG...]
Each --command SUB adds `PROGRAM SUB --help` as a subsection of COMMANDS.
"""
import argparse
import datetime
import os
import re
import subprocess
import sys

ITEM = re.compile(r"^  (\S.*?)(?: {2,}(\S.*))?$")
SUBITEM = re.compile(r"^ {3,}(\S+) {2,}(\S.*)$")
ENV = re.compile(r'^env (\S+), default "(.*)"$')
# Columns of the help text from which a continuation line belongs to the description.
DESC_MIN_COL = 16


def roff(text):
    """Text for a roff line: backslashes, minus signs and leading control characters
    escaped."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def parse(help_text):
    """(synopsis lines, description paragraphs, groups of items, environment, notes) of
    --help: paragraphs before the first item describe the program, those after it are
    notes. A group is (heading or None, [[term, [text lines], env or None]])."""
    lines = help_text.rstrip("\n").split("\n")
    synopsis, paragraphs, notes, groups, env = [], [], [], [], []
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i < len(lines) and lines[i].lower().startswith("usage:"):
        synopsis.append(lines[i][len("usage:"):].strip())
        i += 1
        while i < len(lines) and lines[i].startswith(" ") and lines[i].strip():
            synopsis.append(lines[i].strip())
            i += 1
    para = []
    group = None
    item = None
    desc_col = None
    sub_indent = None
    for line in lines[i:] + [""]:
        if not line.strip():
            if para:
                (notes if groups else paragraphs).append(" ".join(para))
                para = []
            item = None
            continue
        if not line.startswith(" "):
            item = None
            if line.endswith(":") and len(line) < 60:
                group = (line[:-1], [])
                groups.append(group)
            else:
                para.append(line.strip())
                group = None
            continue
        m = ITEM.match(line)
        indent = len(line) - len(line.lstrip(" "))
        sub = SUBITEM.match(line)
        if item is not None and sub and (indent == sub_indent or (
                sub_indent is None and indent > 2 and not item[1] and indent < DESC_MIN_COL)):
            # argparse lists subcommands below a bare "COMMAND" item, indented deeper
            item = [sub.group(1), [sub.group(2)], None]
            group[1].append(item)
            desc_col = line.index(sub.group(2))
            sub_indent = indent
            continue
        if item is not None and indent > 2:
            text = line.strip()
            e = ENV.match(text)
            if e:
                item[2] = (e.group(1), e.group(2))
                env.append((e.group(1), item[0], e.group(2)))
            elif not item[1] and (desc_col is None or indent < desc_col) and \
                    indent < DESC_MIN_COL:
                item[0] += " " + text
            else:
                item[1].append(text)
                desc_col = indent
            continue
        if m and indent == 2:
            sub_indent = None
            if group is None:
                group = (None, [])
                groups.append(group)
            item = [m.group(1), [m.group(2)] if m.group(2) else [], None]
            if m.group(2):
                desc_col = line.index(m.group(2))
            group[1].append(item)
            continue
        para.append(line.strip())
    return synopsis, paragraphs, groups, env, notes


def render_items(out, items):
    for term, text, item_env in items:
        out += [".TP", f".B {roff(term)}"]
        out += [roff(t) for t in text]
        if item_env:
            # a long default (a TLS priority string) may break after its colons
            default = roff(item_env[1]).replace(":", ":\\:")
            out += [".br", f"Environment: {roff(item_env[0])}; default: "
                    f"\\(lq{default}\\(rq."]


def render_command(out, name, command, help_text):
    """A subcommand's own --help as a subsection of COMMANDS."""
    synopsis, paragraphs, groups, _, notes = parse(help_text)
    out.append(f".SS {roff(name)} {roff(command)}")
    for k, s in enumerate(synopsis):
        out += [".br", roff(s)] if k else [roff(s)]
    out.append(".PP")
    for p in paragraphs + [n for n in notes if not n.lower().startswith("exit status:")]:
        out += [roff(p), ".PP"]
    for _, items in groups:
        render_items(out, items)


def render(name, section, summary, version, help_text, extra, commands=()):
    synopsis, paragraphs, groups, env, notes = parse(help_text)
    # Reproducible builds (dpkg-buildpackage) set SOURCE_DATE_EPOCH; else today.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch \
        else datetime.datetime.now(datetime.timezone.utc)
    date = when.strftime("%Y-%m-%d")
    out = [f'.\\" Generated by docs/man/mkman.py from `{name} --help`; do not edit.',
           f'.TH {name.upper()} {section} "{date}" "devicehub {version}" "Device Hub"',
           ".nh", ".ad l", ".SH NAME", f"{roff(name)} \\- {roff(summary)}", ".SH SYNOPSIS"]
    for k, s in enumerate(synopsis):
        if k:
            out.append(".br")
        prog, _, rest = s.partition(" ")
        if prog == name:
            out += [f".B {roff(prog)}", roff(rest)] if rest else [f".B {roff(prog)}"]
        else:
            out.append(roff(s))
    out.append(".SH DESCRIPTION")
    for k, p in enumerate(paragraphs):
        if k:
            out.append(".PP")
        out.append(roff(p))
    if groups:
        out.append(".SH OPTIONS")
        for heading, items in groups:
            if heading:
                out.append(f".SS {roff(heading[0].upper() + heading[1:])}")
            render_items(out, items)
    if commands:
        out.append(".SH COMMANDS")
        for command, text in commands:
            render_command(out, name, command, text)
    status = [p for p in notes if p.lower().startswith("exit status:")]
    notes = [p for p in notes if p not in status]
    if notes:
        out.append(".SH NOTES")
        for k, p in enumerate(notes):
            if k:
                out.append(".PP")
            out.append(roff(p))
    if status:
        out += [".SH EXIT STATUS", roff(status[0][len("exit status:"):].strip())]
    if env:
        out.append(".SH ENVIRONMENT")
        for var, term, _ in env:
            out += [".TP", f".B {roff(var)}", f"Sets {roff(term)}; the flag wins."]
    text = "\n".join(out) + "\n"
    if extra:
        text += extra if extra.endswith("\n") else extra + "\n"
    return text


def help_of(program):
    """The --help text of program (a list), with no DEVICEHUB_* variable in the
    environment; None (and a message) when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEHUB_")}
    r = subprocess.run(program + ["--help"], capture_output=True, text=True, env=env,
                       timeout=60)
    if r.returncode != 0 or not r.stdout.strip():
        sys.stderr.write(f"mkman: {' '.join(program)} --help failed: {r.stderr}\n")
        return None
    return r.stdout


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a manual page from a program's --help.")
    ap.add_argument("--name", required=True)
    ap.add_argument("--section", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--extra")
    ap.add_argument("--output", required=True)
    ap.add_argument("--command", action="append", default=[],
                    help="a subcommand whose own --help becomes a part of COMMANDS")
    ap.add_argument("program", nargs="+")
    args = ap.parse_args(argv)
    texts = []
    for command in [None] + args.command:
        text = help_of(args.program + ([command] if command else []))
        if text is None:
            return 1
        texts.append(text)
    extra = ""
    if args.extra:
        with open(args.extra, encoding="utf-8") as f:
            extra = f.read()
    page = render(args.name, args.section, args.summary, args.version, texts[0], extra,
                  list(zip(args.command, texts[1:])))
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(page)
    os.replace(tmp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
