"""devicehub: the command-line tool, a thin layer over devicehub.Client.

It configures the catalogue (products, models, channels, delivery methods and procedures,
devices, users, tokens, access rights), uploads and downloads firmware images, inspects
firmware-update sessions and runs a device's whole update flow: request, start, wait,
resumable ranged download, sha256 check and confirmation. Exit codes: 0 done, 1 the server
refused or the operation failed, 2 usage error, 3 download stopped early by --max-bytes
(rerun to resume).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import requests

from .client import DEFAULT_CHUNK, DEFAULT_URL, KINDS, Client, error_text
from .errors import (ApiError, DeviceHubError, IncompleteDownload, SessionFailed,
                     TransportError, WaitTimeout)

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3

Args = argparse.Namespace
Field = Tuple[str, str, str]  # name, type (str, int, bool, json), help


class UsageError(DeviceHubError):
    """A mistake on the command line found after parsing (exit 2)."""


# kind -> (help, fields) for the configure commands; the paths are the library's KINDS.
FIELDS: Dict[str, Tuple[str, List[Field]]] = {
    "product": ("products (name, description)", [
        ("tid", "str", "unique text handle"), ("name", "str", "display name"),
        ("description", "str", "free text")]),
    "model": ("models of a product", [
        ("tid", "str", "unique text handle"), ("product", "str", "product id or tid"),
        ("name", "str", "display name"), ("description", "str", "free text")]),
    "channel": ("release channels (stable, beta, ...)", [
        ("tid", "str", "unique text handle"), ("name", "str", "display name")]),
    "method": ("delivery methods", [
        ("tid", "str", "unique text handle"), ("name", "str", "display name"),
        ("kind", "str", "http, coap, mesh-smp, ...")]),
    "procedure": ("delivery procedures (steps, confirm, timeouts)", [
        ("tid", "str", "unique text handle"), ("name", "str", "display name"),
        ("delivery_method", "str", "delivery method id or tid"),
        ("steps", "json", 'JSON list, e.g. \'[{"plugin": "link"}]\''),
        ("confirm", "bool", "true/false: wait for the device's confirmation"),
        ("ready_timeout", "int", "seconds"), ("processing_timeout", "int", "seconds"),
        ("confirm_timeout", "int", "seconds"), ("retention", "int", "seconds")]),
    "device": ("device twins", [
        ("device_id", "str", "the device's own name (unique per model)"),
        ("model", "str", "model id or tid"), ("channel", "str", "channel id or tid"),
        ("current_firmware", "str", "firmware id"),
        ("current_firmware_version", "str", "SemVer")]),
    "user": ("users", [
        ("tid", "str", "unique text handle"), ("name", "str", "display name"),
        ("email", "str", "e-mail address"), ("is_active", "bool", "true/false")]),
    "token": ("API tokens (the secret is shown once, at creation)", [
        ("tid", "str", "unique text handle"), ("user", "str", "user id or tid"),
        ("name", "str", "what the token is for"),
        ("expire_time", "str", "RFC 3339 time"), ("revoked", "bool", "true/false")]),
    "right": ("access rights (grants of an action over a scope)", [
        ("tid", "str", "unique text handle"), ("user", "str", "user id or tid"),
        ("action", "str", "admin, manage, upload, update or draft"),
        ("product", "str", "scope: product id or tid"),
        ("model", "str", "scope: model id or tid"),
        ("channel", "str", "scope: channel id or tid (with model)")]),
}

# Columns of the human-readable list output per kind.
LIST_COLUMNS = {
    "product": ["id", "tid", "name"],
    "model": ["id", "tid", "name", "product"],
    "channel": ["id", "tid", "name"],
    "method": ["id", "tid", "name", "kind"],
    "procedure": ["id", "tid", "name", "delivery_method", "confirm"],
    "device": ["id", "device_id", "model", "channel", "current_firmware_version",
               "last_state"],
    "user": ["id", "tid", "name", "is_active"],
    "token": ["id", "tid", "user", "name", "prefix", "revoked"],
    "right": ["id", "user", "action", "product", "model", "channel"],
    "firmware": ["id", "model", "version", "channels", "draft", "size", "filename"],
    "session": ["id", "state", "finished", "device", "target_firmware", "create_time"],
}

PAIR_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)(:?=)(.*)$", re.S)
BOOL_TRUE = ("1", "true", "yes", "on")
BOOL_FALSE = ("0", "false", "no", "off")
# A list printed with --all follows `next` up to this many items.
ALL_MAX = 10 ** 7


def convert(name: str, kind: str, text: str) -> Any:
    """Text from the command line to the JSON value of a field of the given type."""
    if text.lower() == "null" and kind != "json":
        return None
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{name}: expected an integer, got {text!r}")
    if kind == "bool":
        if text.lower() in BOOL_TRUE:
            return True
        if text.lower() in BOOL_FALSE:
            return False
        raise UsageError(f"{name}: expected true or false, got {text!r}")
    if kind == "json":
        try:
            return json.loads(text)
        except ValueError as e:
            raise UsageError(f"{name}: not valid JSON ({e})")
    return text


def parse_pairs(pairs: Sequence[str], fields: Sequence[Field]) -> Dict[str, Any]:
    """KEY=VALUE (typed by the field table, text otherwise) and KEY:=JSON to a dict."""
    types = {f[0]: f[1] for f in fields}
    out: Dict[str, Any] = {}
    for p in pairs:
        m = PAIR_RE.match(p)
        if not m:
            raise UsageError(f"expected KEY=VALUE or KEY:=JSON, got {p!r}")
        key, op, val = m.group(1).replace("-", "_"), m.group(2), m.group(3)
        out[key] = convert(key, "json" if op == ":=" else types.get(key, "str"), val)
    return out


def body_from_args(args: Args, fields: Sequence[Field]) -> Dict[str, Any]:
    body = parse_pairs(getattr(args, "pairs", []) or [], fields)
    for name, kind, _ in fields:
        val = getattr(args, "f_" + name, None)
        if val is not None:
            body[name] = convert(name, kind, val)
    return body


# ---- output ---------------------------------------------------------------------------


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def print_object(args: Args, obj: Optional[Mapping[str, Any]]) -> None:
    if args.json:
        print_json(obj)
        return
    if obj is None:
        return
    width = max((len(k) for k in obj), default=0)
    for k, v in obj.items():
        if isinstance(v, (dict, list)) and v:
            text = json.dumps(v, indent=2).replace("\n", "\n" + " " * (width + 2))
            print(f"{k:<{width}}  {text}")
        else:
            print(f"{k:<{width}}  {fmt_value(v)}")


def print_list(args: Args, page: Mapping[str, Any], kind: str) -> None:
    if args.json:
        print_json(page)
        return
    rows = page.get("results", [])
    cols = LIST_COLUMNS.get(kind) or (sorted(rows[0]) if rows else ["id"])
    cells = [[fmt_value(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    more = f", more: {page['next']}" if page.get("next") else ""
    print(f"({len(rows)} of {page.get('count', len(rows))}{more})")


def list_page(hub: Client, path: str, params: Dict[str, Any], fetch_all: bool) -> Dict[str, Any]:
    """A list page, or with fetch_all every item (following `next`) as one page."""
    if not fetch_all:
        return hub.page(path, params)
    results = []
    for item in hub.iterate(path, params):
        results.append(item)
        if len(results) >= ALL_MAX:
            break
    return {"count": len(results), "next": None, "results": results}


def paging(args: Args, params: Dict[str, Any]) -> Dict[str, Any]:
    if args.limit is not None:
        params["limit"] = args.limit
    if args.offset is not None:
        params["offset"] = args.offset
    return params


# ---- configuration objects ------------------------------------------------------------


def cmd_obj_list(hub: Client, args: Args) -> None:
    params = parse_pairs(args.pairs, FIELDS[args.kind][1])
    params = {k: fmt_value(v) if not isinstance(v, str) else v for k, v in params.items()}
    print_list(args, list_page(hub, hub.kind_path(args.kind), paging(args, params), args.all),
               args.kind)


def cmd_obj_get(hub: Client, args: Args) -> None:
    print_object(args, hub.fetch(args.kind, args.id))


def cmd_obj_create(hub: Client, args: Args) -> None:
    obj = hub.create(args.kind, **body_from_args(args, FIELDS[args.kind][1]))
    print_object(args, obj)
    if args.kind == "token" and not args.json and obj and obj.get("secret"):
        log("note: the token's secret is shown only now; store it.")


def cmd_obj_update(hub: Client, args: Args) -> None:
    body = body_from_args(args, FIELDS[args.kind][1])
    if not body:
        raise UsageError("update: nothing to change (give --FIELD VALUE or KEY=VALUE)")
    print_object(args, hub.update(args.kind, args.id, **body))


def cmd_obj_delete(hub: Client, args: Args) -> None:
    hub.remove(args.kind, args.id)
    if not args.json:
        print(f"deleted {args.kind} {args.id}")


# ---- firmware -------------------------------------------------------------------------


def cmd_fw_upload(hub: Client, args: Args) -> None:
    if not os.path.isfile(args.file):
        raise UsageError(f"{args.file}: no such file")
    channels = [part.strip() for c in args.channel or [] for part in c.split(",")
                if part.strip()]
    print_object(args, hub.upload_firmware(args.file, model=args.model, version=args.version,
                                           channels=channels, draft=args.draft,
                                           description=args.description,
                                           filename=args.filename))


def cmd_fw_list(hub: Client, args: Args) -> None:
    params = parse_pairs(args.pairs, [])
    for key in ("model", "version", "channel"):
        if getattr(args, key, None):
            params[key] = getattr(args, key)
    if args.draft is not None:
        params["draft"] = args.draft
    print_list(args, list_page(hub, "/api/v1/firmware/", paging(args, params), args.all),
               "firmware")


def cmd_fw_get(hub: Client, args: Args) -> None:
    print_object(args, hub.firmware(args.id))


def cmd_fw_delete(hub: Client, args: Args) -> None:
    hub.remove("firmware", args.id)
    if not args.json:
        print(f"deleted firmware {args.id}")


def cmd_fw_download(hub: Client, args: Args) -> None:
    r = hub.download_firmware(args.id, args.output, chunk_size=args.chunk_size,
                              max_bytes=args.max_bytes)
    if args.json:
        print_json({"path": r["path"], "size": r["size"], "sha256": r["sha256"]})
    else:
        print(f"{r['path']}: {r['size']} bytes, sha256 {r['sha256']} (verified)")


# ---- sessions -------------------------------------------------------------------------


def cmd_sessions_list(hub: Client, args: Args) -> None:
    params: Dict[str, Any] = {}
    for key in ("state", "device", "model"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.finished is not None:
        params["finished"] = args.finished
    print_list(args, list_page(hub, "/api/v1/firmware-update/", paging(args, params),
                               args.all), "session")


def cmd_session_get(hub: Client, args: Args) -> None:
    print_object(args, hub.session(args.id))


def cmd_session_start(hub: Client, args: Args) -> None:
    print_object(args, hub.start_session(args.id))


def cmd_session_confirm(hub: Client, args: Args) -> None:
    print_object(args, hub.confirm_session(args.id, not args.failure, args.message))


def cmd_session_wait(hub: Client, args: Args) -> None:
    try:
        s = hub.wait_session(args.id, timeout=args.wait_timeout,
                             poll_interval=args.poll_interval)
    except WaitTimeout as e:
        print_object(args, e.session)
        raise
    print_object(args, s)
    if s["state"] in ("fail", "unconfirmed"):
        raise SessionFailed(f"session {s['id']} ended in {s['state']}" + error_text(s), s)


def cmd_update(hub: Client, args: Args) -> None:
    if not any([args.model, args.device_id]):
        raise UsageError("update: give --model (and usually --device-id)")
    request = {k: v for k, v in [
        ("model", args.model), ("device_id", args.device_id),
        ("current_firmware_version", args.current_version),
        ("current_channel", args.channel), ("delivery_procedure_tid", args.procedure),
        ("delivery_method", args.method), ("target_firmware", args.target_firmware),
        ("target_firmware_version", args.target_version)] if v is not None}
    if args.allow_draft:
        request["allow_draft_firmware"] = True
    s = hub.update_device(args.output, confirm=not args.no_confirm, chunk_size=args.chunk_size,
                          max_bytes=args.max_bytes, wait_timeout=args.wait_timeout,
                          poll_interval=args.poll_interval, **request)
    if args.json:
        print_json(s)
        return
    if s["state"] == "up_to_date":
        print("up to date: no newer firmware for this device")
    elif not (s.get("payload") or {}).get("download_link"):
        print("no download link in the payload; nothing to download")
    print(f"session {s['id']} {s['state']}")


# ---- command line ---------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return v


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return v


def bool_arg(text: str) -> str:
    if text.lower() in BOOL_TRUE:
        return "true"
    if text.lower() in BOOL_FALSE:
        return "false"
    raise argparse.ArgumentTypeError(f"expected true or false: {text!r}")


def add_list_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=positive_int, help="page size (server default 50, max 1000)")
    p.add_argument("--offset", type=int, help="skip this many results")
    p.add_argument("--all", action="store_true", help="follow `next` and print every page")


def add_download_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK,
                   help=f"bytes per Range request (default {DEFAULT_CHUNK})")
    p.add_argument("--max-bytes", type=positive_int,
                   help="stop after receiving this many bytes in this run and exit 3, "
                        "keeping OUTPUT.part for a later resume (for testing weak links)")


def add_wait_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait-timeout", type=positive_float, default=600.0,
                   help="give up waiting for the pipeline after this many seconds (600)")
    p.add_argument("--poll-interval", type=positive_float, default=0.2,
                   help="first poll interval in seconds; grows to 5 s while nothing changes")


Command = Callable[[Client, Args], None]

OBJ_VERBS: Dict[str, Tuple[Command, str]] = {
    "list": (cmd_obj_list, "list objects; filters as KEY=VALUE"),
    "get": (cmd_obj_get, "show one object by id or tid"),
    "create": (cmd_obj_create, "create an object from --FIELD VALUE and KEY=VALUE"),
    "update": (cmd_obj_update, "change fields of an object (PATCH)"),
    "delete": (cmd_obj_delete, "delete an object by id or tid"),
}

PAIRS_HELP = ("extra fields: KEY=VALUE (typed like the options above, text otherwise; "
              "'null' clears) or KEY:=JSON for a raw JSON value")


def common_options() -> argparse.ArgumentParser:
    """--json and --quiet are accepted after the subcommand too (SUPPRESS keeps the value
    given before it when they are absent)."""
    c = argparse.ArgumentParser(add_help=False)
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print JSON instead of text")
    c.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress on stderr")
    return c


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    env_url = os.environ.get("DEVICEHUB_URL") or DEFAULT_URL
    top = argparse.ArgumentParser(
        prog="devicehub",
        description="Command-line client for a Device Hub server.",
        epilog="Exit codes: 0 done; 1 the server refused (its code and detail are printed) or "
               "the operation failed; 2 usage error; 3 download stopped by --max-bytes.")
    top.add_argument("--url", default=env_url,
                     help=f"server base URL (env DEVICEHUB_URL; now {env_url})")
    top.add_argument("--token", default=os.environ.get("DEVICEHUB_TOKEN"),
                     help="API token secret (env DEVICEHUB_TOKEN)")
    top.add_argument("--ca", metavar="FILE", help="CA certificate file to verify HTTPS with")
    top.add_argument("--insecure", action="store_true",
                     help="do not verify the server's HTTPS certificate")
    top.add_argument("--json", action="store_true", help="print JSON instead of text")
    top.add_argument("--timeout", type=positive_float, default=60.0,
                     help="seconds to wait for each HTTP answer (60)")
    top.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for kind, (helptext, fields) in FIELDS.items():
        kp = sub.add_parser(kind, help=f"configure {helptext}",
                            description=f"Configure {helptext} at /api/v1/{KINDS[kind]}/.")
        ks = kp.add_subparsers(dest="verb", metavar="ACTION")
        ks.required = True
        for verb, (fn, vhelp) in OBJ_VERBS.items():
            vp = ks.add_parser(verb, help=vhelp, parents=[common],
                               description=f"{kind} {verb}: {vhelp}.")
            vp.set_defaults(fn=fn, kind=kind)
            if verb in ("get", "update", "delete"):
                vp.add_argument("id", help=f"{kind} id" + (" or tid" if fields[0][0] == "tid"
                                                           else ""))
            if verb in ("create", "update"):
                for name, ftype, fhelp in fields:
                    vp.add_argument("--" + name.replace("_", "-"), dest="f_" + name,
                                    metavar=ftype.upper(), help=fhelp)
                vp.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help=PAIRS_HELP)
            if verb == "list":
                add_list_opts(vp)
                vp.add_argument("pairs", nargs="*", metavar="KEY=VALUE",
                                help="filters, e.g. tid=abc")

    fw = sub.add_parser("firmware", help="upload, list, show and download firmware images",
                        description="Firmware images at /api/v1/firmware/.")
    fs = fw.add_subparsers(dest="verb", metavar="ACTION")
    fs.required = True
    p = fs.add_parser(parents=[common], name="upload", help="upload an image (streamed from disk)",
                      description="Upload FILE as multipart/form-data, streamed block by block "
                                  "(the file is never read whole into memory).")
    p.set_defaults(fn=cmd_fw_upload)
    p.add_argument("file", help="the image file")
    p.add_argument("--model", required=True, help="model id or tid")
    p.add_argument("--version", required=True, help="SemVer 2.0 version of the image")
    p.add_argument("--channel", action="append",
                   help="channel id or tid; repeat or separate with commas")
    p.add_argument("--draft", action="store_true", help="upload as a draft")
    p.add_argument("--description", help="free text")
    p.add_argument("--filename", help="file name to record (default: FILE's base name)")
    p = fs.add_parser(parents=[common], name="list", help="list firmware",
                      description="List firmware images.")
    p.set_defaults(fn=cmd_fw_list)
    p.add_argument("--model", help="only this model (id or tid)")
    p.add_argument("--channel", help="only this channel (id or tid)")
    p.add_argument("--version", help="only this version")
    p.add_argument("--draft", type=bool_arg, help="true or false")
    add_list_opts(p)
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="more filters")
    p = fs.add_parser(parents=[common], name="get", help="show one firmware",
                      description="Show one firmware image.")
    p.set_defaults(fn=cmd_fw_get)
    p.add_argument("id", help="firmware id")
    p = fs.add_parser(parents=[common], name="delete", help="delete a firmware",
                      description="Delete a firmware.")
    p.set_defaults(fn=cmd_fw_delete)
    p.add_argument("id", help="firmware id")
    p = fs.add_parser(parents=[common], name="download",
                      help="download an image (resumable, sha256-checked)",
                      description="Download the image with Range requests into OUTPUT.part "
                                  "(state in OUTPUT.part.json); a rerun resumes; the sha256 is "
                                  "checked against the firmware's before OUTPUT is written.")
    p.set_defaults(fn=cmd_fw_download)
    p.add_argument("id", help="firmware id")
    p.add_argument("-o", "--output", help="file to write (default: the firmware's filename)")
    add_download_opts(p)

    p = sub.add_parser(
        "update", parents=[common], help="run a device's whole update flow",
        description="Request a session for a device, start it, wait for the pipeline, download "
                    "payload.download_link with Range requests (resuming OUTPUT.part from an "
                    "earlier run; the recorded session is reused while it still waits in "
                    "'created'), check payload.sha256, then confirm success (or confirm failure "
                    "with a message on a mismatch). Prints state changes on stderr. "
                    "Exit 0 when updated or up to date, 1 on failure, 3 after --max-bytes.")
    p.set_defaults(fn=cmd_update)
    p.add_argument("--model", help="model id or tid")
    p.add_argument("--device-id", help="the device's own name (creates/updates its twin)")
    p.add_argument("--current-version", help="the version the device runs now")
    p.add_argument("--channel", help="the device's channel (id or tid)")
    p.add_argument("--procedure", help="delivery procedure tid")
    p.add_argument("--method", help="delivery method (id or tid)")
    p.add_argument("--target-version", help="ask for this version instead of the newest")
    p.add_argument("--target-firmware", help="ask for this firmware id")
    p.add_argument("--allow-draft", action="store_true", help="drafts may be the target")
    p.add_argument("-o", "--output", required=True, help="where to write the image")
    p.add_argument("--no-confirm", action="store_true",
                   help="download and check, but do not confirm the session")
    add_download_opts(p)
    add_wait_opts(p)

    p = sub.add_parser("sessions", help="list firmware-update sessions",
                       description="List firmware-update sessions.")
    ss = p.add_subparsers(dest="verb", metavar="ACTION")
    ss.required = True
    p = ss.add_parser(parents=[common], name="list", help="list sessions",
                      description="List sessions.")
    p.set_defaults(fn=cmd_sessions_list)
    p.add_argument("--state", help="only this state (ready, queued, processing, created, ...)")
    p.add_argument("--device", help="only this device (id)")
    p.add_argument("--model", help="only this model (id or tid)")
    p.add_argument("--finished", type=bool_arg, help="true or false")
    add_list_opts(p)

    p = sub.add_parser("session", help="show, start, confirm or wait for one session",
                       description="Act on one firmware-update session.")
    ss = p.add_subparsers(dest="verb", metavar="ACTION")
    ss.required = True
    p = ss.add_parser(parents=[common], name="get", help="show a session",
                      description="Show a session.")
    p.set_defaults(fn=cmd_session_get)
    p.add_argument("id", help="session id")
    p = ss.add_parser(parents=[common], name="start", help="start a ready session",
                      description="Start a session in state ready.")
    p.set_defaults(fn=cmd_session_start)
    p.add_argument("id", help="session id")
    p = ss.add_parser(parents=[common], name="confirm", help="confirm a created session",
                      description="Confirm a session in state created: success by default, "
                                  "or --failure with --message.")
    p.set_defaults(fn=cmd_session_confirm)
    p.add_argument("id", help="session id")
    p.add_argument("--failure", action="store_true", help="report that the update failed")
    p.add_argument("--message", help="what went wrong (with --failure)")
    p = ss.add_parser(parents=[common], name="wait",
                      help="wait until a session needs the device or is done",
                      description="Poll a session until created, success, fail, "
                                  "unconfirmed or up_to_date; exit 1 on fail/unconfirmed.")
    p.set_defaults(fn=cmd_session_wait)
    p.add_argument("id", help="session id")
    add_wait_opts(p)
    return top


def setup_logging(quiet: bool) -> None:
    """The library's progress (logger "devicehub") goes to stderr, one line per event."""
    logger = logging.getLogger("devicehub")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def message(e: DeviceHubError) -> str:
    """The error line for e, with the hint a command-line user needs."""
    if isinstance(e, TransportError) and isinstance(e.__cause__, requests.exceptions.SSLError):
        return f"{e} (use --ca FILE or --insecure)"
    if isinstance(e, IncompleteDownload):
        return (f"download stopped by --max-bytes; {e.offset} of {e.size} bytes are in "
                f"{e.part}; rerun the same command to resume")
    if isinstance(e, WaitTimeout):
        return f"{e} (--wait-timeout)"
    return str(e)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    # KEY=VALUE pairs may come after options too ("update ID --confirm false steps:=[]"),
    # which argparse leaves over; anything else left over is a usage error.
    args, extra = parser.parse_known_args(argv)
    if extra:
        pairs = [e for e in extra if PAIR_RE.match(e)]
        if len(pairs) != len(extra) or not hasattr(args, "pairs"):
            parser.error("unrecognized arguments: " + " ".join(extra))
        args.pairs = list(args.pairs or []) + pairs
    if args.ca and args.insecure:
        parser.error("--ca and --insecure exclude each other")
    if args.command == "session" and getattr(args, "verb", None) == "confirm" and \
            args.message and not args.failure:
        parser.error("--message goes with --failure")
    verify: Any = True
    if args.insecure:
        verify = False
        import urllib3
        urllib3.disable_warnings()
    elif args.ca:
        if not os.path.isfile(args.ca):
            parser.error(f"--ca {args.ca}: no such file")
        verify = args.ca
    if not re.match(r"^https?://[^/]+", args.url):
        parser.error(f"--url {args.url!r}: expected http://HOST[:PORT] or https://...")
    setup_logging(args.quiet)
    hub = Client(args.url, args.token, verify=verify, timeout=args.timeout,
                 user_agent="devicehub-cli/1")
    try:
        args.fn(hub, args)
    except UsageError as e:
        log(f"devicehub: {e}")
        return EXIT_USAGE
    except IncompleteDownload as e:
        log(f"devicehub: {message(e)}")
        return EXIT_INCOMPLETE
    except (ApiError, DeviceHubError) as e:
        log(f"devicehub: {message(e)}")
        return EXIT_FAIL
    except KeyboardInterrupt:
        log("devicehub: interrupted")
        return 130
    except BrokenPipeError:
        return EXIT_FAIL
    finally:
        hub.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
