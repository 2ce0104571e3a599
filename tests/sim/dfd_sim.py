#!/usr/bin/python3
"""Bluetooth-mesh firmware distributor simulator (the SMP server side of SMP.md).

Plays a Zephyr node running the mcumgr SMP server and the mesh Firmware Distribution
Server (DFD), written from SMP.md alone (section 11 lists what it must do). It owns its
own state only: an SMP frame codec with indefinite-length CBOR responses, UDP and
optional serial-console (pty) transports, the OS group (echo, reset, params, info),
the image group (state, upload with every rule of SMP.md 3.2, erase) over an in-memory
slot 1, and shell exec with the `mesh models dfd ...` / `mesh models dfu slot ...`
commands, their exact text output and the distribution state machine of SMP.md 7.4,
advancing in (simulated) time per 4 KiB block. Faults (loss, duplicates, delay and
reordering, slow erase, reboots, failing receivers, a mute device, short capture
buffers, decimal or hex addresses) can be set at construction, from the command line
and at run time.

Library use:

    sim = DistributorSim(speed=200000, seed=1)   # any option of OPTIONS as keyword
    sim.start()                                  # sim.port, sim.pty_path
    ...
    sim.stop()

Program use: `/usr/bin/python3 tests/sim/dfd_sim.py --udp-port 0` prints one JSON line
`{"event": "ready", "udp_port": N, "pty": null|"/dev/pts/N", ...}` on stdout, then
serves until SIGTERM/SIGINT; JSON commands on stdin (see CONTROL_COMMANDS) change
faults and inspect state at run time. It never reads anything outside its arguments.

Choices where SMP.md is silent are listed in tests/sim/README.md; the main one: upload
and erase while a distribution reads slot 1 (phases 1, 2, 3, 7) fail with image rc 9.
"""

import argparse
import base64
import collections
import hashlib
import heapq
import io
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import tty

import cbor2

# ---------------------------------------------------------------------------
# Protocol constants (SMP.md sections 1, 3, 6, 7)
# ---------------------------------------------------------------------------

HDR_LEN = 8
OP_READ, OP_READ_RSP, OP_WRITE, OP_WRITE_RSP = 0, 1, 2, 3
GROUP_OS, GROUP_IMAGE, GROUP_SHELL = 0, 1, 9

# MGMT_ERR (v1 rc)
MGMT_EUNKNOWN, MGMT_ENOMEM, MGMT_EINVAL, MGMT_ENOENT, MGMT_EBADSTATE = 1, 2, 3, 5, 6
MGMT_EMSGSIZE, MGMT_ENOTSUP, MGMT_ECORRUPT = 7, 8, 9
MGMT_TOO_OLD, MGMT_TOO_NEW = 12, 13

# image group rc
IMG_NO_IMAGE, IMG_FLASH_WRITE, IMG_INVALID_SLOT, IMG_HASH_NOT_FOUND = 3, 12, 14, 8
IMG_NO_FREE_SLOT, IMG_NO_OFF, IMG_NO_LEN, IMG_SHORT_HDR = 9, 20, 21, 22
IMG_BAD_MAGIC, IMG_SHA_LONG, IMG_NOT_NEWER, IMG_TOO_LARGE, IMG_OVERRUN = 23, 24, 27, 30, 31

# shell group rc
SHELL_LINE_TOO_LONG, SHELL_EMPTY = 2, 3

# v1 translation of group codes (SMP.md 1.4); anything not listed becomes EUNKNOWN
V1_FROM_IMAGE = {3: 5, 4: 5, 9: 6, 27: 6, 28: 6, 15: 2,
                 14: 3, 19: 3, 20: 3, 21: 3, 22: 3, 24: 3, 25: 3}
V1_FROM_SHELL = {2: 3, 3: 3}
V1_FROM_GROUP = {GROUP_IMAGE: V1_FROM_IMAGE, GROUP_SHELL: V1_FROM_SHELL}

MCUBOOT_MAGIC = 0x96F3B83D
MCUBOOT_MAGIC_BYTES = struct.pack("<I", MCUBOOT_MAGIC)
TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC, TLV_SHA256 = 0x6907, 0x6908, 0x10
IMAGE_F_NON_BOOTABLE = 0x10

BLOB_BLOCK = 4096  # mesh BLOB block size: progress moves per block (SMP.md 7.5)
ERRNO = {"ENOENT": -2, "ENOEXEC": -8, "EBUSY": -16, "EEXIST": -17, "ENODEV": -19,
         "EINVAL": -22, "EFBIG": -27, "ENOSPC": -28}

# DFD phases and the phases in which a distribution reads slot 1
PH_IDLE, PH_ACTIVE, PH_SUCCESS, PH_APPLYING, PH_COMPLETED, PH_FAILED = 0, 1, 2, 3, 4, 5
PH_CANCELLING, PH_SUSPENDED = 6, 7
BUSY_PHASES = (PH_ACTIVE, PH_SUCCESS, PH_APPLYING, PH_SUSPENDED)

# DFD status
ST_OK, ST_NO_RES, ST_WRONG_PHASE, ST_INTERNAL, ST_FW_NOT_FOUND = 0, 1, 2, 3, 4
ST_BAD_APPKEY, ST_NO_RECEIVERS, ST_BUSY = 5, 6, 7

# receiver (Firmware Update target) phases
TP_ACTIVE, TP_VERIFY, TP_VERIFY_OK, TP_VERIFY_FAIL = 2, 3, 4, 5
TP_APPLYING, TP_CANCELLED, TP_APPLY_OK, TP_APPLY_FAIL, TP_UNKNOWN = 6, 7, 8, 9, 10

# default scripted failures per stage: (status, phase, blob_status)
FAIL_DEFAULTS = {"transfer": (3, TP_UNKNOWN, 9), "verify": (3, TP_VERIFY_FAIL, 0),
                 "apply": (3, TP_APPLY_FAIL, 0)}

BOOT_BANNER = b"*** Booting Zephyr OS build v4.1.0 ***\r\nuart:~$ "

# What --bad-text puts into answers, as a device that never checks its text can send: bytes
# that are not UTF-8 (a lone FF FE, a lead byte before ASCII, an encoded surrogate), control
# characters (ESC [2J clears a terminal, BEL, DEL, the C1 CSI U+009B) and, among them, a
# well-formed "café". Short enough to fit an image version (48 bytes) after "1.0.0".
BAD_TEXT = b"\xff\xfe\x1b[2J\x07 caf\xc3\xa9 \xc3( \xed\xa0\x80 \x7f\xc2\x9b|"
BAD_TEXT_PLACES = ("echo", "shell", "version", "rsn")


# ---------------------------------------------------------------------------
# Options: one table drives the constructor, configure() and the command line
# ---------------------------------------------------------------------------

class Option:
    """One simulator option: name (keyword), default, kind, CLI flag, help."""

    def __init__(self, name, default, kind, helptext, flag=None, choices=None):
        self.name, self.default, self.kind, self.help = name, default, kind, helptext
        self.flag = flag or "--" + name.replace("_", "-")
        self.choices = choices


OPTIONS = [
    # transports
    Option("bind", "127.0.0.1", str, "address the UDP socket binds (IPv4, or IPv6 such as ::1)"),
    Option("udp_port", 0, int, "UDP port, 0 = ephemeral (the bound port is reported)"),
    Option("udp", True, bool, "disable the UDP transport", flag="--no-udp"),
    Option("serial_pty", False, bool, "also serve SMP-over-console framing on a new pty"),
    Option("udp_rx_size", 1500, int, "device UDP receive size; longer datagrams are cut "
           "(and then answered rc 9)"),
    # SMP behaviour
    Option("smp_mode", "both", str, "'both' (v1+v2, default), 'v1-only' (old server: "
           "ignores version bits, answers ver 0) or 'v2-only' (rc 12 to v1 requests)",
           choices=("both", "v1-only", "v2-only")),
    Option("definite", False, bool, "encode responses with definite-length CBOR "
           "(canonical build) instead of Zephyr's indefinite maps/arrays"),
    Option("legacy_rc", False, bool, "legacy mode: 'rc': 0 in successful responses and "
           "shell results as 'rc' instead of 'ret'"),
    Option("buf_size", 2048, int, "mcumgr buffer size reported by params (0/6); "
           "responses larger than this answer rc 7"),
    Option("buf_count", 4, int, "mcumgr buffer count; at most buf_count-1 requests are "
           "queued, further datagrams are dropped silently"),
    Option("params_supported", True, bool, "answer rc 8 to mcumgr params (0/6)",
           flag="--no-params"),
    # image group
    Option("slot_size", 1 << 20, int, "slot 1 size in bytes (larger uploads get rc 30)"),
    Option("image_check", True, bool, "do not verify uploads against 'sha' (no 'match', "
           "no skip of identical content)", flag="--no-image-check"),
    Option("running_version", "1.0.0", str, "version of the running image in slot 0, "
           "maj.min.rev[+build]"),
    Option("running_hash", "aa" * 32, str, "hex image hash of the running image in slot 0"),
    # shell and DFD
    Option("dfd_enabled", True, bool, "no DFD model: 'dfd' commands return -19",
           flag="--no-dfd"),
    Option("old_release", False, bool, "older Zephyr release: decimal group/blob_addr, "
           "'Slot added. ID: <i>', 'Failed.', optional FWID and URI in slot add"),
    Option("addr_format", "auto", str, "how group/blob_addr print: 'hex' (0x%%04x), "
           "'dec', or 'auto' (hex unless --old-release)", choices=("auto", "hex", "dec")),
    Option("capture_size", 300, int, "shell dummy capture buffer; output is cut at this "
           "size minus one"),
    Option("shell_line_max", 256, int, "shell command buffer (joined line must be shorter)"),
    Option("vt100", False, bool, "wrap warning/error lines in VT100 colour sequences"),
    Option("log_noise", 0.0, float, "probability that a device log line is mixed into "
           "shell output"),
    Option("targets_max", 8, int, "DFD receivers list capacity"),
    Option("slot_cnt", 1, int, "number of DFU slot records"),
    Option("app_keys", "0", str, "comma-separated AppKey indexes known to the distributor"),
    Option("fw_delete_erases_slot1", False, bool, "deleting a slot record also erases "
           "slot 1 (an application delete callback that frees the image)"),
    Option("speed", 200000.0, float, "simulated mesh BLOB transfer speed in bytes/second "
           "(real mesh: ~100; default is fast for tests)"),
    Option("step_delay", 0.05, float, "seconds spent verifying and applying"),
    Option("cancel_delay", 0.2, float, "seconds spent in phase 6 (cancelling) before idle"),
    # faults
    Option("seed", 0, int, "seed of the random generator used by all faults"),
    Option("drop", 0.0, float, "fraction of incoming datagrams/frames dropped"),
    Option("duplicate", 0.0, float, "fraction of responses sent twice"),
    Option("delay", 0.0, float, "seconds every response is delayed"),
    Option("jitter", 0.0, float, "extra random delay 0..jitter seconds (reorders)"),
    Option("reorder", 0.0, float, "fraction of responses held back by reorder_hold "
           "seconds so that later ones overtake them"),
    Option("reorder_hold", 0.2, float, "hold-back time for --reorder"),
    Option("erase_delay", 0.0, float, "seconds the first chunk of a new upload takes "
           "(simulated slot erase; the server is busy meanwhile)"),
    Option("mute", False, bool, "the distributor stops answering (requests ignored)"),
    Option("bad_text", "", str, "comma-separated answers that carry text that is not UTF-8 "
           "and control characters (BAD_TEXT): echo (after the echoed text), shell (a log line "
           "before the output; the capture is then cut at a byte count, inside a character "
           "or not), version (after each image version), rsn (an SMP error's reason); 'all' "
           "for every one"),
    Option("lose_command", "", str, "the first shell request whose command line starts "
           "with this text is lost on the way in: not run, no answer"),
    Option("reset_delay", 0.05, float, "seconds between the reset answer and the reboot"),
    Option("reboot_downtime", 0.2, float, "seconds a reboot keeps the device silent"),
    Option("flash_fail_after", -1, int, "fail the flash write (rc 12, upload aborted) once "
           "this many more upload bytes are written; -1 = never"),
]
OPTION_BY_NAME = {o.name: o for o in OPTIONS}


class SimConfig:
    """Attribute bag holding one value per OPTIONS entry."""

    def __init__(self, **kw):
        for opt in OPTIONS:
            setattr(self, opt.name, opt.default)
        self.update(**kw)

    def update(self, **kw):
        for name, value in kw.items():
            opt = OPTION_BY_NAME.get(name)
            if opt is None:
                raise TypeError("unknown simulator option %r" % name)
            value = opt.kind(value) if opt.kind is not bool else bool(value)
            if opt.choices and value not in opt.choices:
                raise ValueError("%s must be one of %s" % (name, ", ".join(opt.choices)))
            if name == "bad_text" and value not in ("", "all") and \
                    not set(value.split(",")) <= set(BAD_TEXT_PLACES):
                raise ValueError("bad_text is 'all' or a list of %s" % ", ".join(BAD_TEXT_PLACES))
            setattr(self, name, value)

    def as_dict(self):
        return {o.name: getattr(self, o.name) for o in OPTIONS}


# ---------------------------------------------------------------------------
# Wire codec: header, CBOR with indefinite containers, serial framing
# ---------------------------------------------------------------------------

def pack_header(op, ver, length, group, seq, cid, flags=0):
    """Return the 8-byte SMP header."""
    return struct.pack(">BBHHBB", (op & 7) | ((ver & 3) << 3), flags, length, group,
                       seq & 0xFF, cid)


def unpack_header(data):
    """Return dict(op, ver, flags, len, group, seq, id) of the first 8 bytes."""
    b0, flags, length, group, seq, cid = struct.unpack(">BBHHBB", data[:HDR_LEN])
    return {"op": b0 & 7, "ver": (b0 >> 3) & 3, "flags": flags, "len": length,
            "group": group, "seq": seq, "id": cid}


class RawText(bytes):
    """Bytes sent as a CBOR text string as they are, UTF-8 or not (cbor2 would refuse)."""


def cbor_head(major, n):
    """The head of a CBOR item of a major type with argument n (RFC 8949 3.1)."""
    if n < 24:
        return bytes([major << 5 | n])
    for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | extra]) + struct.pack(fmt, n)
    raise ValueError("CBOR argument too large")


def encode_cbor(obj, definite=False):
    """CBOR-encode obj; maps and arrays indefinite (bf..ff, 9f..ff) unless definite."""
    if isinstance(obj, RawText):
        return cbor_head(3, len(obj)) + bytes(obj)
    if isinstance(obj, dict):
        inner = b"".join(encode_cbor(k, definite) + encode_cbor(v, definite)
                         for k, v in obj.items())
        return (cbor_head(5, len(obj)) + inner) if definite else b"\xbf" + inner + b"\xff"
    if isinstance(obj, (list, tuple)):
        inner = b"".join(encode_cbor(v, definite) for v in obj)
        return (cbor_head(4, len(obj)) + inner) if definite else b"\x9f" + inner + b"\xff"
    return cbor2.dumps(obj)


def decode_cbor_map(body):
    """Decode one CBOR map that must use exactly all of body; raise ValueError otherwise."""
    fp = io.BytesIO(body)
    obj = cbor2.CBORDecoder(fp).decode()
    if fp.tell() != len(body):
        raise ValueError("trailing bytes after CBOR body")
    if not isinstance(obj, dict):
        raise ValueError("CBOR body is not a map")
    return obj


def crc16_xmodem(data, crc=0):
    """CRC-16/XMODEM: poly 0x1021, init 0, no reflection, no final XOR."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


SERIAL_FIRST, SERIAL_CONT = b"\x06\x09", b"\x04\x14"
SERIAL_PIECE = 93  # raw bytes per line: 124 base64 chars, 127 bytes with markers and \n


def serial_encode(frame):
    """Return the console lines (bytes) carrying one SMP frame (SMP.md section 5)."""
    raw = struct.pack(">H", len(frame) + 2) + frame + struct.pack(">H", crc16_xmodem(frame))
    lines = []
    for i in range(0, len(raw), SERIAL_PIECE):
        marker = SERIAL_FIRST if i == 0 else SERIAL_CONT
        lines.append(marker + base64.b64encode(raw[i:i + SERIAL_PIECE]) + b"\n")
    return b"".join(lines)


class SerialDecoder:
    """Reassembles SMP frames from console lines; ignores text that is not a frame."""

    MAX_LINE = 4096  # a console line longer than this is garbage; drop it

    def __init__(self, max_packet=65535 + 4):
        self.max_packet = max_packet
        self.line = bytearray()
        self.packet = None  # bytearray of decoded raw bytes while a packet is open
        self.bad = 0  # packets dropped for CRC/base64/size errors

    def feed(self, data):
        """Consume bytes; return the list of complete, CRC-checked frames."""
        frames = []
        for byte in data:
            if byte == 0x0A:
                frame = self._line(bytes(self.line))
                self.line.clear()
                if frame is not None:
                    frames.append(frame)
            elif len(self.line) < self.MAX_LINE:
                self.line.append(byte)
        return frames

    def _line(self, line):
        line = line.rstrip(b"\r")
        if line.startswith(SERIAL_FIRST):
            self.packet = bytearray()
        elif not (line.startswith(SERIAL_CONT) and self.packet is not None):
            return None  # console text, prompt or log: ignored
        try:
            self.packet += base64.b64decode(line[2:], validate=True)
        except ValueError:
            self.packet, self.bad = None, self.bad + 1
            return None
        return self._complete()

    def _complete(self):
        pkt = self.packet
        if len(pkt) < 2:
            return None
        total = 2 + struct.unpack(">H", pkt[:2])[0]
        if total > self.max_packet or total < 4:
            self.packet, self.bad = None, self.bad + 1
            return None
        if len(pkt) < total:
            return None
        self.packet = None
        if len(pkt) > total or crc16_xmodem(pkt[2:total]) != 0:
            self.bad += 1
            return None
        return bytes(pkt[2:total - 2])


# ---------------------------------------------------------------------------
# MCUboot image parsing (SMP.md section 6)
# ---------------------------------------------------------------------------

def parse_version_text(text):
    """'maj.min.rev[+build]' -> (maj, min, rev, build)."""
    core, _, build = text.partition("+")
    parts = [int(p) for p in core.split(".")]
    parts += [0] * (3 - len(parts))
    return tuple(parts[:3]) + (int(build) if build else 0,)


def version_text(version):
    """Image-state form: maj.min.rev, plus .build when build != 0."""
    text = "%d.%d.%d" % version[:3]
    return text + (".%d" % version[3] if version[3] else "")


def parse_image(data):
    """Return {'version', 'hash', 'flags', 'size'} of an MCUboot image at the start of
    data, or None when the magic, the TLV area or the SHA-256 TLV is missing."""
    if len(data) < 32 or data[:4] != MCUBOOT_MAGIC_BYTES:
        return None
    hdr_size, prot_size, img_size, flags = struct.unpack_from("<HHII", data, 8)
    version = struct.unpack_from("<BBHI", data, 20)
    if hdr_size < 32:
        return None
    pos = hdr_size + img_size
    if prot_size:
        if pos + 4 > len(data) or struct.unpack_from("<H", data, pos)[0] != TLV_PROT_INFO_MAGIC:
            return None
        pos += prot_size
    if pos + 4 > len(data):
        return None
    magic, total = struct.unpack_from("<HH", data, pos)
    if magic != TLV_INFO_MAGIC or pos + total > len(data):
        return None
    end, pos = pos + total, pos + 4
    while pos + 4 <= end:
        ttype, tlen = struct.unpack_from("<HH", data, pos)
        if ttype == TLV_SHA256 and tlen == 32 and pos + 4 + 32 <= end:
            return {"version": version, "hash": bytes(data[pos + 4:pos + 36]),
                    "flags": flags, "size": end}
        pos += 4 + tlen
    return None


# ---------------------------------------------------------------------------
# Errors raised by handlers
# ---------------------------------------------------------------------------

class SmpError(Exception):
    """SMP-level error: answered {"rc": rc} under either version."""

    def __init__(self, rc):
        super().__init__("smp rc %d" % rc)
        self.rc = rc


class GroupError(Exception):
    """Group error: {"err": {...}} for v2, translated MGMT_ERR for v1."""

    def __init__(self, group, rc):
        super().__init__("group %d rc %d" % (group, rc))
        self.group, self.rc = group, rc


class NoReply(Exception):
    """The device went away while handling the request (reboot): nothing is sent."""


# ---------------------------------------------------------------------------
# Shell helpers: Zephyr-like argument parsing
# ---------------------------------------------------------------------------

class ShellArgError(Exception):
    """An argument failed to parse; the shell prints a warning and returns -EINVAL."""


def strtoul0(text):
    """Parse like shell_strtoul(text, 0): 0x hex, leading 0 octal, else decimal."""
    s = text.strip()
    neg = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    try:
        if s[:2].lower() == "0x":
            value = int(s[2:], 16) if s[2:] and all(c in "0123456789abcdefABCDEF"
                                                    for c in s[2:]) else None
        elif len(s) > 1 and s[0] == "0":
            value = int(s[1:], 8) if s[1:].isdigit() else None
        else:
            value = int(s, 10) if s.isdigit() else None
    except ValueError:
        value = None
    if value is None:
        raise ShellArgError(text)
    return -value if neg else value


def hex_arg(text, max_len):
    """Parse a hex string (odd lengths get a leading 0 nibble like Zephyr's hex2bin)."""
    s = text if len(text) % 2 == 0 else "0" + text
    try:
        data = bytes.fromhex(s)
    except ValueError:
        raise ShellArgError(text) from None
    if len(data) > max_len:
        raise ShellArgError(text)
    return data


def split_line(line):
    """Split a command line like the Zephyr shell: whitespace, double quotes."""
    args, cur, quoted, have = [], [], False, False
    for ch in line:
        if ch == '"':
            quoted, have = not quoted, True
        elif ch in " \t" and not quoted:
            if have:
                args.append("".join(cur))
            cur, have = [], False
        else:
            cur.append(ch)
            have = True
    if have:
        args.append("".join(cur))
    return args


FWID_MAX, METADATA_MAX = 16, 32


# ---------------------------------------------------------------------------
# Distributor (DFD) model and the distribution timeline
# ---------------------------------------------------------------------------

class Receiver:
    """One DFD target."""

    def __init__(self, addr, img_idx):
        self.addr, self.img_idx = addr, img_idx
        self.status, self.phase, self.blob_status = 0, TP_UNKNOWN, 0

    @property
    def alive(self):
        return self.status == 0

    def fail(self, status, phase, blob_status):
        self.status, self.phase, self.blob_status = status, phase, blob_status

    def as_dict(self):
        return {"addr": self.addr, "img_idx": self.img_idx, "status": self.status,
                "phase": self.phase, "blob_status": self.blob_status}


class SlotRecord:
    """A DFU slot record: metadata only, the image lives in slot 1."""

    def __init__(self, size, fwid, metadata, uri, slot_id):
        self.size, self.fwid, self.metadata, self.uri, self.id = size, fwid, metadata, uri, slot_id

    def as_dict(self):
        return {"size": self.size, "fwid": self.fwid.hex(), "metadata": self.metadata.hex(),
                "uri": self.uri, "id": self.id}


class Distributor:
    """DFD state machine of SMP.md 7.4 with a lazily advanced timeline.

    Time only moves when advance(now) is called (the simulator calls it before every
    request and inspection), so the model needs no thread of its own."""

    def __init__(self, cfg, clock):
        self.cfg, self.clock = cfg, clock
        self.receivers = collections.OrderedDict()
        self.slots = {}  # idx -> SlotRecord; persists across reboot
        self.next_slot_id = 1
        self.failures = {}  # addr -> (stage, at_percent, status, phase, blob_status)
        self.reset_runtime()

    def reset_runtime(self):
        """Forget what a reboot forgets: phase, receivers, the running transfer."""
        self.receivers.clear()
        self.phase, self.params, self.size = PH_IDLE, None, 0
        self.stage, self.stage_end = None, 0.0
        self.sent0, self.xfer_t0, self.sent = 0.0, None, 0.0
        self.xfer_done, self.percent = False, 0

    # -- timeline -----------------------------------------------------------------
    def advance(self, now=None):
        now = self.clock() if now is None else now
        for _ in range(32):  # each pass performs at most one transition
            if not self._step(now):
                return

    def _step(self, now):
        if self.phase == PH_ACTIVE and self.stage == "transfer":
            return self._step_transfer(now)
        if self.stage in ("verify", "apply", "cancel") and now >= self.stage_end:
            t = self.stage_end
            {"verify": self._end_verify, "apply": self._end_apply,
             "cancel": self._end_cancel}[self.stage](t)
            return True
        return False

    def _step_transfer(self, now):
        speed = max(self.cfg.speed, 1e-9)
        end = self.xfer_t0 + (self.size - self.sent0) / speed
        t = min(now, end)
        self.sent = min(float(self.size), self.sent0 + (t - self.xfer_t0) * speed)
        self.percent = self._block_percent()
        self._apply_failures("transfer")
        if self.phase != PH_ACTIVE:
            return False
        if now < end:
            return False
        self.sent, self.percent, self.xfer_done = float(self.size), 100, True
        # failures scripted at 100 % fire here even when the whole transfer fit one step
        self._apply_failures("transfer")
        if self.phase != PH_ACTIVE:
            return False
        for r in self._alive():
            r.phase = TP_VERIFY
        self.stage, self.stage_end = "verify", end + self.cfg.step_delay
        return True

    def _block_percent(self):
        blocks = -(-self.size // BLOB_BLOCK)
        if blocks == 0 or self.sent >= self.size:
            return 100
        return int(self.sent // BLOB_BLOCK) * 100 // blocks

    def _alive(self):
        return [r for r in self.receivers.values() if r.alive]

    def _apply_failures(self, stage):
        for r in self._alive():
            spec = self.failures.get(r.addr)
            if spec and spec[0] == stage and (stage != "transfer" or self.percent >= spec[1]):
                r.fail(*spec[2:])
        if not self._alive() and self.phase in (PH_ACTIVE, PH_APPLYING):
            self.phase, self.stage = PH_FAILED, None

    def _end_verify(self, t):
        self.stage = None
        self._apply_failures("verify")
        if self.phase == PH_FAILED:
            return
        for r in self._alive():
            r.phase = TP_VERIFY_OK
        if self.params["apply"]:
            self._begin_apply(t)
        else:
            self.phase = PH_SUCCESS

    def _begin_apply(self, t):
        self.phase = PH_APPLYING
        for r in self._alive():
            r.phase = TP_APPLYING
        self.stage, self.stage_end = "apply", t + self.cfg.step_delay

    def _end_apply(self, t):
        self.stage = None
        self._apply_failures("apply")
        if self.phase == PH_FAILED:
            return
        for r in self._alive():
            r.phase = TP_APPLY_OK
        self.phase = PH_COMPLETED

    def _end_cancel(self, t):
        self.stage, self.phase = None, PH_IDLE

    # -- commands (each returns a DFD status) -----------------------------------
    def start(self, params, now):
        same = params == self.params
        if self.phase == PH_SUSPENDED and same:
            self.phase, self.stage = PH_ACTIVE, "transfer"
            self.sent0, self.xfer_t0 = self.sent, now
            return ST_OK
        if self.phase in (PH_ACTIVE, PH_SUCCESS, PH_APPLYING, PH_COMPLETED) and same:
            return ST_OK
        if self.phase in BUSY_PHASES:
            return ST_BUSY
        if self.phase == PH_CANCELLING:
            return ST_WRONG_PHASE
        if not self.receivers:
            return ST_NO_RECEIVERS
        if params["app_idx"] not in self._app_keys():
            return ST_BAD_APPKEY
        slot = self.slots.get(params["slot_idx"])
        if slot is None:
            return ST_FW_NOT_FOUND
        self._begin_transfer(params, slot.size, now)
        return ST_OK

    def _app_keys(self):
        return {strtoul0(k) for k in self.cfg.app_keys.split(",") if k.strip()}

    def _begin_transfer(self, params, size, now):
        self.params, self.size, self.phase, self.stage = dict(params), size, PH_ACTIVE, "transfer"
        self.sent0, self.sent, self.xfer_t0, self.xfer_done, self.percent = 0.0, 0.0, now, False, 0
        for r in self.receivers.values():
            r.status, r.phase, r.blob_status = 0, TP_ACTIVE, 0
        self.advance(now)

    def suspend(self, now):
        if self.phase != PH_ACTIVE or self.stage != "transfer":
            return ST_WRONG_PHASE
        self.advance(now)
        if self.phase != PH_ACTIVE or self.stage != "transfer":
            return ST_WRONG_PHASE
        self.sent0, self.xfer_t0 = self.sent, None
        self.phase, self.stage = PH_SUSPENDED, None
        return ST_OK

    def cancel(self, now):
        if self.phase in (PH_IDLE, PH_CANCELLING):
            return ST_OK
        if self.phase in (PH_ACTIVE, PH_SUCCESS, PH_SUSPENDED):
            for r in self._alive():
                r.phase = TP_CANCELLED
            self.phase, self.stage = PH_CANCELLING, "cancel"
            self.stage_end = now + self.cfg.cancel_delay
            return ST_OK
        self.phase, self.stage = PH_IDLE, None  # from 3, 4 or 5
        return ST_OK

    def apply(self, now):
        if self.phase != PH_SUCCESS:
            return ST_WRONG_PHASE
        self._begin_apply(now)
        return ST_OK

    def progress(self):
        """Receivers-list progress: overall percent / 2 (SMP.md 7.5)."""
        if self.phase == PH_IDLE:
            return 50 if self.xfer_done else 0
        if self.phase == PH_ACTIVE and self.stage == "transfer":
            return self.percent // 2
        return 50 if self.xfer_done else self.percent // 2

    def snapshot(self):
        return {"phase": self.phase, "params": self.params, "size": self.size,
                "sent": int(self.sent), "progress": self.progress(), "stage": self.stage,
                "receivers": [r.as_dict() for r in self.receivers.values()],
                "slots": {str(i): s.as_dict() for i, s in sorted(self.slots.items())}}


# ---------------------------------------------------------------------------
# The mesh shell (group 9): command tree and exact output of SMP.md 7.2
# ---------------------------------------------------------------------------

class MeshShell:
    """Runs one command line against the Distributor and returns (output, ret)."""

    def __init__(self, sim):
        self.sim = sim
        self.cfg = sim.cfg
        self.dfd = sim.dfd
        # path -> (handler, mandatory args, optional args, needs DFD model)
        self.commands = {
            ("mesh", "models", "dfd", "get"): (self.dfd_get, 0, 0, True),
            ("mesh", "models", "dfd", "receivers-add"): (self.receivers_add, 1, 0, True),
            ("mesh", "models", "dfd", "receivers-delete-all"): (self.receivers_del, 0, 0, True),
            ("mesh", "models", "dfd", "receivers-get"): (self.receivers_get, 2, 0, True),
            ("mesh", "models", "dfd", "capabilities-get"): (self.capabilities, 0, 0, True),
            ("mesh", "models", "dfd", "start"): (self.dfd_start, 2, 5, True),
            ("mesh", "models", "dfd", "suspend"): (self.dfd_suspend, 0, 0, True),
            ("mesh", "models", "dfd", "cancel"): (self.dfd_cancel, 0, 0, True),
            ("mesh", "models", "dfd", "apply"): (self.dfd_apply, 0, 0, True),
            ("mesh", "models", "dfd", "fw-get"): (self.fw_get, 1, 0, True),
            ("mesh", "models", "dfd", "fw-get-by-idx"): (self.fw_get_by_idx, 1, 0, True),
            ("mesh", "models", "dfd", "fw-delete"): (self.fw_delete, 1, 0, True),
            ("mesh", "models", "dfd", "fw-delete-all"): (self.fw_delete_all, 0, 0, True),
            ("mesh", "models", "dfu", "slot", "add"): (self.slot_add, 2, 1, False),
            ("mesh", "models", "dfu", "slot", "del"): (self.slot_del, 1, 0, False),
            ("mesh", "models", "dfu", "slot", "del-all"): (self.slot_del_all, 0, 0, False),
            ("mesh", "models", "dfu", "slot", "get"): (self.slot_get, 1, 0, False),
        }
        self.prefixes = {path[:i] for path in self.commands for i in range(1, len(path))}

    # -- dispatch -----------------------------------------------------------------
    def run(self, args):
        """Return (lines, ret) for an already split argument list."""
        for n in range(len(args), 0, -1):
            entry = self.commands.get(tuple(args[:n]))
            if entry is not None:
                return self._call(entry, args[n - 1], args[n:])
        depth = 0
        while depth < len(args) and tuple(args[:depth + 1]) in self.prefixes:
            depth += 1
        word = args[depth] if depth < len(args) else args[-1]
        return [self._err("%s: command not found" % word)], ERRNO["ENOEXEC"]

    def _call(self, entry, name, rest):
        handler, mandatory, optional, needs_dfd = entry
        if needs_dfd and not self.cfg.dfd_enabled:
            return [], ERRNO["ENODEV"]
        if handler == self.slot_add and self.cfg.old_release:
            mandatory, optional = 1, 3
        if not mandatory <= len(rest) <= mandatory + optional:
            return [self._err("%s: wrong parameter count" % name)], ERRNO["EINVAL"]
        try:
            return handler(*rest)
        except ShellArgError:
            return [self._warn("Unable to parse input string argument")], ERRNO["EINVAL"]

    def _warn(self, text):
        return "\x1b[1;33m%s\x1b[0m" % text if self.cfg.vt100 else text

    def _err(self, text):
        return "\x1b[1;31m%s\x1b[0m" % text if self.cfg.vt100 else text

    def _addr(self, value):
        fmt = self.cfg.addr_format
        if fmt == "auto":
            fmt = "dec" if self.cfg.old_release else "hex"
        return "0x%04x" % value if fmt == "hex" else "%d" % value

    # -- dfd ----------------------------------------------------------------------
    def _status_line(self, status):
        d = self.dfd
        line = '{ "status": %d, "phase": %d' % (status, d.phase)
        if d.phase != PH_IDLE and d.params is not None:
            p = d.params
            line += (', "group": %s, "app_idx": %d, "ttl": %d, "timeout_base": %d, '
                     '"xfer_mode": %d, "apply": %d, "slot_idx": %d' % (
                         self._addr(p["group"]), p["app_idx"], p["ttl"], p["timeout_base"],
                         p["xfer_mode"], 1 if p["apply"] else 0, p["slot_idx"]))
        return line + " }"

    def _status_reply(self, status):
        return [self._status_line(status)], 0 if status == ST_OK else ERRNO["EINVAL"]

    def dfd_get(self):
        return [self._status_line(ST_OK)], 0

    def dfd_start(self, app_idx, slot_idx, group="0", policy="true", ttl="255",
                  timeout_base="0", xfer_mode="1"):
        params = {"app_idx": strtoul0(app_idx), "slot_idx": strtoul0(slot_idx),
                  "group": strtoul0(group), "apply": self._bool(policy),
                  "ttl": strtoul0(ttl), "timeout_base": strtoul0(timeout_base),
                  "xfer_mode": strtoul0(xfer_mode)}
        return self._status_reply(self.dfd.start(params, self.sim.now()))

    def _bool(self, text):
        """Policy argument: Zephyr 4.1 reads words and numbers; old releases only 'true'."""
        if self.cfg.old_release:
            return text == "true"
        low = text.lower()
        if low in ("true", "on", "enable", "yes"):
            return True
        if low in ("false", "off", "disable", "no"):
            return False
        return strtoul0(text) != 0

    def dfd_suspend(self):
        return self._status_reply(self.dfd.suspend(self.sim.now()))

    def dfd_cancel(self):
        return self._status_reply(self.dfd.cancel(self.sim.now()))

    def dfd_apply(self):
        return self._status_reply(self.dfd.apply(self.sim.now()))

    def receivers_add(self, spec):
        d = self.dfd
        if d.phase != PH_IDLE:
            return ['{"status": %d, "target_cnt": %d}' % (ST_BUSY, len(d.receivers))], \
                ERRNO["EBUSY"]
        for entry in spec.split(";"):
            parts = entry.split(",")
            try:
                if len(parts) != 2:
                    raise ShellArgError(entry)
                addr, img_idx = strtoul0(parts[0]), strtoul0(parts[1])
            except ShellArgError:
                return [self._warn("Unable to parse input string argument")], ERRNO["EINVAL"]
            if not 0 < addr < 0x8000:
                continue  # not a unicast address: silently skipped
            if addr in d.receivers:
                d.receivers[addr].img_idx = img_idx
            elif len(d.receivers) >= self.cfg.targets_max:
                return ['{"status": %d, "target_cnt": %d}' % (ST_NO_RES, len(d.receivers))], \
                    ERRNO["ENOSPC"]
            else:
                d.receivers[addr] = Receiver(addr, img_idx)
        return ['{"status": 0, "target_cnt": %d}' % len(d.receivers)], 0

    def receivers_del(self):
        d = self.dfd
        if d.phase != PH_IDLE:
            return ['{"status": %d, "target_cnt": %d}' % (ST_BUSY, len(d.receivers))], \
                ERRNO["EBUSY"]
        d.receivers.clear()
        return ['{"status": 0, "target_cnt": 0}'], 0

    def receivers_get(self, first, count):
        first, count = strtoul0(first), strtoul0(count)
        targets = list(self.dfd.receivers.values())
        if count <= 0 or first < 0 or first >= len(targets):
            return [], ERRNO["EINVAL"]
        page = targets[first:first + count]
        progress = self.dfd.progress()
        lines = ["{", '\t"target_cnt": %d,' % len(targets), '\t"targets": {']
        for i, r in enumerate(page):
            comma = "," if i < len(page) - 1 else ""
            lines.append('\t\t"%d": { "blob_addr": %s, "phase": %d, "status": %d, '
                         '"blob_status": %d, "progress": %d, "img_idx": %d }%s' % (
                             first + i, self._addr(r.addr), r.phase, r.status,
                             r.blob_status, progress, r.img_idx, comma))
        lines += ["\t}", "}"]
        return lines, 0

    def capabilities(self):
        used = sum(s.size for s in self.dfd.slots.values())
        space = self.cfg.slot_size
        return ['{ "targets_max": %d, "slot_cnt": %d, "slot_max_size": %d, "slot_space": %d, '
                '"remaining_space": %d, "oob_supported": false }' % (
                    self.cfg.targets_max, self.cfg.slot_cnt, self.cfg.slot_size, space,
                    max(0, space - used))], 0

    def _find_fwid(self, fwid):
        for idx, slot in sorted(self.dfd.slots.items()):
            if slot.fwid == fwid:
                return idx
        return None

    def fw_get(self, fwid_hex):
        fwid = hex_arg(fwid_hex, FWID_MAX)
        idx = self._find_fwid(fwid)
        cnt = len(self.dfd.slots)
        if idx is None:
            return ['{ "status": %d, "slot_cnt": %d, "idx": 65535, "fwid": "%s" }' % (
                ST_FW_NOT_FOUND, cnt, fwid.hex())], ERRNO["ENOENT"]
        return ['{ "status": 0, "slot_cnt": %d, "idx": %d, "fwid": "%s" }' % (
            cnt, idx, fwid.hex())], 0

    def fw_get_by_idx(self, idx_text):
        idx = strtoul0(idx_text)
        slot = self.dfd.slots.get(idx)
        cnt = len(self.dfd.slots)
        if slot is None:
            return ['{ "status": %d, "slot_cnt": %d, "idx": %d }' % (
                ST_FW_NOT_FOUND, cnt, idx)], ERRNO["ENOENT"]
        return ['{ "status": 0, "slot_cnt": %d, "idx": %d, "fwid": "%s" }' % (
            cnt, idx, slot.fwid.hex())], 0

    def fw_delete(self, fwid_hex):
        fwid = hex_arg(fwid_hex, FWID_MAX)
        status = ST_OK if self.dfd.phase == PH_IDLE else ST_BUSY
        if status == ST_OK:
            idx = self._find_fwid(fwid)
            if idx is not None:
                self._delete_slot(idx)
        return ['{ "status": %d, "slot_cnt": %d, "idx": 65535, "fwid": "%s" }' % (
            status, len(self.dfd.slots), fwid.hex())], 0 if status == ST_OK else ERRNO["EINVAL"]

    def fw_delete_all(self):
        status = ST_OK if self.dfd.phase == PH_IDLE else ST_BUSY
        if status == ST_OK:
            for idx in list(self.dfd.slots):
                self._delete_slot(idx)
        return ['{ "status": %d, "slot_cnt": %d, "idx": 65535 }' % (
            status, len(self.dfd.slots))], 0 if status == ST_OK else ERRNO["EINVAL"]

    def _delete_slot(self, idx):
        del self.dfd.slots[idx]
        if self.cfg.fw_delete_erases_slot1:
            self.sim.erase_slot1()

    # -- dfu slot -------------------------------------------------------------------
    def slot_add(self, size_text, fwid_hex="", meta_hex="", uri=""):
        size = strtoul0(size_text)
        fwid = hex_arg(fwid_hex, 255)
        meta = hex_arg(meta_hex, 255)
        lines = ["Adding slot (size: %d)" % size]
        free = [i for i in range(self.cfg.slot_cnt) if i not in self.dfd.slots]
        if not free:
            return lines + [self._err("Failed." if self.cfg.old_release
                                      else "Failed to reserve slot.")], 0
        err = 0
        if len(fwid) > FWID_MAX or len(meta) > METADATA_MAX or size > self.cfg.slot_size:
            err = ERRNO["EFBIG"]
        elif fwid and self._find_fwid(fwid) is not None:
            err = ERRNO["EEXIST"]
        if err:
            if self.cfg.old_release:
                return lines + [self._err("Failed.")], 0
            return lines + [self._err("Failed to commit slot: %d" % err)], err
        slot = SlotRecord(size, fwid, meta, uri, self.dfd.next_slot_id)
        self.dfd.next_slot_id += 1
        self.dfd.slots[free[0]] = slot
        if self.cfg.old_release:
            return lines + ["Slot added. ID: %d" % slot.id], 0
        return lines + ["Slot added. Index: %d" % free[0]], 0

    def _slot_in_use(self, idx):
        d = self.dfd
        return d.phase in BUSY_PHASES and d.params and d.params["slot_idx"] == idx

    def slot_del(self, idx_text):
        idx = strtoul0(idx_text)
        if idx not in self.dfd.slots:
            return ["No slot at %d" % idx], 0
        if self._slot_in_use(idx):
            return [self._err("Failed deleting slot %d (err: %d)" % (idx, ERRNO["EBUSY"]))], 0
        self._delete_slot(idx)
        return ["Slot %d deleted." % idx], 0

    def slot_del_all(self):
        for idx in list(self.dfd.slots):
            if self._slot_in_use(idx):
                return [self._err("Failed deleting slot %d (err: %d)" % (
                    idx, ERRNO["EBUSY"]))], 0
        for idx in list(self.dfd.slots):
            self._delete_slot(idx)
        return ["All slots deleted."], 0

    def slot_get(self, idx_text):
        idx = strtoul0(idx_text)
        slot = self.dfd.slots.get(idx)
        if slot is None:
            return ["No slot at %d" % idx], 0
        lines = ["Slot %d:" % idx, "\tSize:     %d bytes" % slot.size,
                 "\tFWID:     %s" % slot.fwid.hex(), "\tMetadata: %s" % slot.metadata.hex()]
        if self.cfg.old_release:
            lines.append("\tURI:      %s" % slot.uri)
        return lines, 0


# ---------------------------------------------------------------------------
# The simulator: transports, worker, scheduler, SMP handlers, fault injection
# ---------------------------------------------------------------------------

class Upload:
    """The one upload in progress (SMP.md 3.2)."""

    def __init__(self, length, sha, image):
        self.len, self.sha, self.image, self.off = length, sha, image, 0

    def as_dict(self):
        return {"len": self.len, "off": self.off, "image": self.image,
                "sha": self.sha.hex() if self.sha is not None else None}


class DistributorSim:
    """SMP server + mesh DFD simulator. Keyword arguments are OPTIONS names.

    clock: a callable returning seconds (monotonic); the distribution timeline uses it,
    so tests may pass a fake clock. All public methods are thread-safe."""

    def __init__(self, clock=time.monotonic, **options):
        self.cfg = SimConfig(**options)
        self.clock = clock
        self._lock = threading.RLock()  # all device state; held while a request runs
        self._fault_lock = threading.Lock()  # the RNG: transports never wait for _lock
        self._rng = random.Random(self.cfg.seed)
        self.dfd = Distributor(self.cfg, self.now)
        self.shell = MeshShell(self)
        self.slot1 = bytearray(b"\xff" * self.cfg.slot_size)
        self.slot1_pending = self.slot1_permanent = False
        self.upload = None
        self.boot_count = 1
        self.stats = collections.Counter()
        self._lost_command = False  # --lose-command has taken its one request
        self._reboot_at_bytes = None
        self._flash_fail_at = None
        self._down_until = 0.0
        self._stop = threading.Event()
        self._threads = []
        self._inbox = collections.deque()
        self._inbox_cv = threading.Condition()
        self._timers = []
        self._timers_cv = threading.Condition()
        self._timer_seq = 0
        self._sock = None
        self._pty_master = self._pty_slave = None
        self._serial_lock = threading.Lock()
        self.port = None
        self.pty_path = None
        self.log = []  # (group, id, request dict or None) of handled requests, last 200
        self.set_flash_fail_after(self.cfg.flash_fail_after)

    # -- lifecycle ----------------------------------------------------------------
    def start(self):
        """Open the transports and start the threads; returns self."""
        if self.cfg.udp:
            family = socket.AF_INET6 if ":" in self.cfg.bind else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._sock.bind((self.cfg.bind, self.cfg.udp_port))
            self._sock.settimeout(0.1)
            self.port = self._sock.getsockname()[1]
            self._spawn(self._udp_loop, "udp")
        if self.cfg.serial_pty:
            self._pty_master, self._pty_slave = os.openpty()
            tty.setraw(self._pty_slave)
            self.pty_path = os.ttyname(self._pty_slave)
            self._spawn(self._serial_loop, "serial")
        self._spawn(self._worker_loop, "worker")
        self._spawn(self._timer_loop, "timers")
        return self

    def stop(self):
        """Stop the threads and close the transports (idempotent)."""
        self._stop.set()
        with self._inbox_cv:
            self._inbox_cv.notify_all()
        with self._timers_cv:
            self._timers_cv.notify_all()
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads = []
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for fd in (self._pty_master, self._pty_slave):
            if fd is not None:
                os.close(fd)
        self._pty_master = self._pty_slave = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _spawn(self, fn, name):
        t = threading.Thread(target=fn, name="dfd-sim-" + name, daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def address(self):
        return (self.cfg.bind, self.port)

    def now(self):
        return self.clock()

    # -- transports -----------------------------------------------------------------
    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            data = data[:self.cfg.udp_rx_size]
            self._receive(data, lambda out, p=peer: self._udp_send(out, p), "udp")

    def _udp_send(self, data, peer):
        sock = self._sock
        if sock is not None:
            try:
                sock.sendto(data, peer)
            except OSError:
                pass

    def _serial_loop(self):
        decoder = SerialDecoder()
        while not self._stop.is_set():
            decoder.max_packet = self.cfg.buf_size
            try:
                ready, _, _ = select.select([self._pty_master], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(self._pty_master, 4096)
            except (OSError, ValueError, TypeError):
                return
            for frame in decoder.feed(chunk):
                self._receive(frame, self._serial_send, "serial")
            self.stats["serial_bad"] = decoder.bad

    def _serial_send(self, frame):
        self._serial_write(serial_encode(frame))

    def _serial_write(self, data):
        with self._serial_lock:
            fd = self._pty_master
            if fd is None:
                return
            try:
                while data:
                    ready = select.select([], [fd], [], 0.5)[1]
                    if not ready:
                        self.stats["serial_tx_overflow"] += 1
                        return  # nobody reads the console: drop like a full UART FIFO
                    data = data[os.write(fd, data):]
            except OSError:
                pass

    def _receive(self, data, reply, transport):
        """Transport entry: apply inbound faults, queue for the worker or drop."""
        self.stats["rx_" + transport] += 1
        with self._fault_lock:
            if self.cfg.mute or time.monotonic() < self._down_until:
                self.stats["rx_ignored"] += 1
                return
            if self.cfg.drop and self._rng.random() < self.cfg.drop:
                self.stats["rx_dropped"] += 1
                return
        with self._inbox_cv:
            if len(self._inbox) >= max(1, self.cfg.buf_count - 1):
                self.stats["rx_no_buffer"] += 1
                return  # no free server buffer: dropped silently (SMP.md 3.5)
            self._inbox.append((data, reply))
            self._inbox_cv.notify()

    def _worker_loop(self):
        while not self._stop.is_set():
            with self._inbox_cv:
                while not self._inbox and not self._stop.is_set():
                    self._inbox_cv.wait(0.2)
                if self._stop.is_set():
                    return
                data, reply = self._inbox.popleft()
            self._process_packet(data, reply)

    # -- scheduler (delayed responses, reboots) -------------------------------------
    def _schedule(self, delay, fn):
        with self._timers_cv:
            self._timer_seq += 1
            heapq.heappush(self._timers, (time.monotonic() + delay, self._timer_seq, fn))
            self._timers_cv.notify()

    def _timer_loop(self):
        while not self._stop.is_set():
            with self._timers_cv:
                now = time.monotonic()
                if not self._timers or self._timers[0][0] > now:
                    wait = self._timers[0][0] - now if self._timers else 0.2
                    self._timers_cv.wait(min(wait, 0.2))
                    continue
                fn = heapq.heappop(self._timers)[2]
            fn()

    def _emit(self, frame, reply):
        """Send one response frame through the outbound faults."""
        with self._fault_lock:
            rng, cfg = self._rng, self.cfg
            delay = cfg.delay + (rng.uniform(0, cfg.jitter) if cfg.jitter else 0.0)
            if cfg.reorder and rng.random() < cfg.reorder:
                delay += cfg.reorder_hold
                self.stats["tx_reordered"] += 1
            copies = 2 if cfg.duplicate and rng.random() < cfg.duplicate else 1
        self.stats["tx"] += 1
        self.stats["tx_duplicated"] += copies - 1
        for _ in range(copies):
            if delay > 0:
                self._schedule(delay, lambda: reply(frame))
            else:
                reply(frame)

    # -- SMP frame processing -------------------------------------------------------
    def _process_packet(self, data, reply):
        """Handle every frame in one datagram or serial packet, in order."""
        pos = 0
        for _ in range(16):  # bounded: a datagram holds only so many frames
            if len(data) - pos < HDR_LEN:
                return
            hdr = unpack_header(data[pos:pos + HDR_LEN])
            body = data[pos + HDR_LEN:pos + HDR_LEN + hdr["len"]]
            pos += HDR_LEN + hdr["len"]
            try:
                out = self._handle_frame(hdr, body)
            except NoReply:
                return
            if out is not None:
                self._emit(out, reply)

    def _handle_frame(self, hdr, body):
        """Return the response frame for one request (None: no answer)."""
        if hdr["op"] not in (OP_READ, OP_WRITE):
            return None  # a response or junk sent to the server: ignored
        mode = self.cfg.smp_mode
        if mode == "v1-only":
            rver = ver = 0  # an old server ignores the version bits
        else:
            ver = rver = min(hdr["ver"], 1)
        try:
            if mode != "v1-only" and hdr["ver"] > 1:
                raise SmpError(MGMT_TOO_NEW)
            if mode == "v2-only" and hdr["ver"] == 0:
                raise SmpError(MGMT_TOO_OLD)
            if len(body) < hdr["len"]:
                raise SmpError(MGMT_ECORRUPT)
            out = self._dispatch(hdr, body, ver)
        except SmpError as e:
            out = {"rc": e.rc}
            if self._bad("rsn"):
                out["rsn"] = RawText(b"rc %d: " % e.rc + BAD_TEXT)
        except GroupError as e:
            out = self._group_error(e, ver)
        return self._response(hdr, rver, out)

    def _dispatch(self, hdr, body, ver):
        try:
            req = decode_cbor_map(body) if body else None
        except Exception:  # any undecodable body is EINVAL, never a crash
            raise SmpError(MGMT_EINVAL) from None
        entry = DISPATCH.get((hdr["group"], hdr["id"]))
        fn = entry and entry[0 if hdr["op"] == OP_READ else 1]
        if fn is None:
            raise SmpError(MGMT_ENOTSUP)
        with self._lock:
            self.dfd.advance()
            self.log = (self.log + [(hdr["group"], hdr["id"], req)])[-200:]
            out = fn(self, req, ver)
        if self.cfg.legacy_rc and "rc" not in out:
            out = dict({"rc": 0}, **out)
        return out

    @staticmethod
    def _group_error(err, ver):
        if ver >= 1:
            return {"err": {"group": err.group, "rc": err.rc}}
        return {"rc": V1_FROM_GROUP.get(err.group, {}).get(err.rc, MGMT_EUNKNOWN)}

    def _response(self, hdr, rver, out):
        body = encode_cbor(out, self.cfg.definite)
        if HDR_LEN + len(body) > self.cfg.buf_size:
            body = encode_cbor({"rc": MGMT_EMSGSIZE}, self.cfg.definite)
        return pack_header(hdr["op"] + 1, rver, len(body), hdr["group"], hdr["seq"],
                           hdr["id"]) + body

    @staticmethod
    def _map(req):
        if req is None:
            raise SmpError(MGMT_EINVAL)
        return req

    # -- OS group -------------------------------------------------------------------
    def h_echo(self, req, ver):
        text = self._map(req).get("d")
        if not isinstance(text, str):
            raise SmpError(MGMT_EINVAL)
        if self._bad("echo"):
            return {"r": RawText(text.encode() + BAD_TEXT)}
        return {"r": text}

    def h_reset(self, req, ver):
        self._schedule(self.cfg.reset_delay, self.reboot)
        return {}

    def h_params(self, req, ver):
        if not self.cfg.params_supported:
            raise SmpError(MGMT_ENOTSUP)
        return {"buf_size": self.cfg.buf_size, "buf_count": self.cfg.buf_count}

    def h_os_info(self, req, ver):
        return {"output": "Zephyr dfd-sim 4.1.0 simulated distributor"}

    # -- image group ------------------------------------------------------------------
    def _slot1_busy(self):
        return self.dfd.phase in BUSY_PHASES

    def image_list(self):
        """The 'images' array of image state (slot 1 only if it holds a valid image)."""
        running = parse_version_text(self.cfg.running_version)
        images = [{"slot": 0, "version": version_text(running),
                   "hash": bytes.fromhex(self.cfg.running_hash), "bootable": True,
                   "pending": False, "confirmed": True, "active": True, "permanent": False}]
        info = parse_image(self.slot1)
        if info is not None:
            images.append({"slot": 1, "version": version_text(info["version"]),
                           "hash": info["hash"],
                           "bootable": not info["flags"] & IMAGE_F_NON_BOOTABLE,
                           "pending": self.slot1_pending, "confirmed": False,
                           "active": False, "permanent": self.slot1_permanent})
        return images

    def h_state_read(self, req, ver):
        images = self.image_list()
        if self._bad("version"):
            images = [dict(im, version=RawText(im["version"].encode() + BAD_TEXT))
                      for im in images]
        return {"images": images, "splitStatus": 0}

    def h_state_write(self, req, ver):
        req = self._map(req)
        want, confirm = req.get("hash"), bool(req.get("confirm", False))
        info = parse_image(self.slot1)
        if want is None or want == bytes.fromhex(self.cfg.running_hash):
            pass  # confirming the running image: already confirmed
        elif info is not None and want == info["hash"]:
            self.slot1_pending, self.slot1_permanent = True, confirm
        else:
            raise GroupError(GROUP_IMAGE, IMG_HASH_NOT_FOUND)
        return self.h_state_read(None, ver)

    def h_upload(self, req, ver):
        req = self._map(req)
        if self._slot1_busy():
            # slot 1 is being read by the distribution: treat it like a busy slot
            raise GroupError(GROUP_IMAGE, IMG_NO_FREE_SLOT)
        off, data = req.get("off"), req.get("data", b"")
        if not isinstance(off, int) or off < 0:
            raise GroupError(GROUP_IMAGE, IMG_NO_OFF)
        if not isinstance(data, bytes):
            raise SmpError(MGMT_EINVAL)
        if off == 0:
            return self._first_chunk(req, data)
        up = self.upload
        expected = up.off if up else 0
        if off != expected:
            self.stats["upload_wrong_off"] += 1
            return {"off": expected}
        if off + len(data) > up.len:
            raise GroupError(GROUP_IMAGE, IMG_OVERRUN)
        return self._write_chunk(up, data)

    def _first_chunk(self, req, data):
        length, sha = req.get("len"), req.get("sha")
        image, upgrade = req.get("image", 0), bool(req.get("upgrade", False))
        if len(data) < 32:
            raise GroupError(GROUP_IMAGE, IMG_SHORT_HDR)
        if not isinstance(length, int) or length < 0:
            raise GroupError(GROUP_IMAGE, IMG_NO_LEN)
        if data[:4] != MCUBOOT_MAGIC_BYTES:
            raise GroupError(GROUP_IMAGE, IMG_BAD_MAGIC)
        if sha is not None and (not isinstance(sha, bytes) or len(sha) > 32):
            raise GroupError(GROUP_IMAGE, IMG_SHA_LONG)
        if image != 0:
            raise GroupError(GROUP_IMAGE, IMG_INVALID_SLOT)
        up = self.upload
        if sha and up is not None and up.sha == sha:
            self.stats["upload_resumed"] += 1
            return {"off": up.off}
        if (self.cfg.image_check and sha is not None and len(sha) == 32
                and length <= len(self.slot1)
                and hashlib.sha256(self.slot1[:length]).digest() == sha):
            self.upload = None
            self.stats["upload_skipped"] += 1
            return {"off": length, "match": True}
        if self.slot1_pending or self.slot1_permanent:
            raise GroupError(GROUP_IMAGE, IMG_NO_FREE_SLOT)
        if length > self.cfg.slot_size:
            raise GroupError(GROUP_IMAGE, IMG_TOO_LARGE)
        if upgrade and struct.unpack_from("<BBHI", data, 20) <= \
                parse_version_text(self.cfg.running_version):
            raise GroupError(GROUP_IMAGE, IMG_NOT_NEWER)
        if len(data) > length:
            raise GroupError(GROUP_IMAGE, IMG_OVERRUN)
        self.upload = None
        self.erase_slot1()
        self.stats["upload_started"] += 1
        if self.cfg.erase_delay > 0:
            self._stop.wait(self.cfg.erase_delay)
        self.upload = Upload(length, sha, image)
        return self._write_chunk(self.upload, data)

    def _write_chunk(self, up, data):
        if self._flash_fail_at is not None and \
                self.stats["upload_bytes"] + len(data) >= self._flash_fail_at:
            self._flash_fail_at, self.upload = None, None
            raise GroupError(GROUP_IMAGE, IMG_FLASH_WRITE)
        self.slot1[up.off:up.off + len(data)] = data
        up.off += len(data)
        self.stats["upload_bytes"] += len(data)
        if self._reboot_at_bytes is not None and \
                self.stats["upload_bytes"] >= self._reboot_at_bytes:
            self._reboot_at_bytes = None
            self.reboot()
            raise NoReply()
        if up.off < up.len:
            return {"off": up.off}
        self.upload = None
        self.stats["upload_completed"] += 1
        out = {"off": up.len}
        if self.cfg.image_check and up.sha is not None and len(up.sha) == 32:
            out["match"] = hashlib.sha256(self.slot1[:up.len]).digest() == up.sha
        return out

    def h_erase(self, req, ver):
        slot = (req or {}).get("slot", 1)
        if slot == 0:
            raise GroupError(GROUP_IMAGE, IMG_NO_FREE_SLOT)  # active slot
        if slot != 1:
            raise GroupError(GROUP_IMAGE, IMG_INVALID_SLOT)
        if self.slot1_pending or self.slot1_permanent or self._slot1_busy():
            raise GroupError(GROUP_IMAGE, IMG_NO_FREE_SLOT)
        self.erase_slot1()
        return {}

    # -- shell group ------------------------------------------------------------------
    def h_shell_exec(self, req, ver):
        argv = self._map(req).get("argv")
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise SmpError(MGMT_EINVAL)
        if not argv:
            raise GroupError(GROUP_SHELL, SHELL_EMPTY)
        line = " ".join(argv)
        if (self.cfg.lose_command and not self._lost_command
                and line.startswith(self.cfg.lose_command)):
            self._lost_command = True
            self.stats["rx_lost_command"] += 1
            raise NoReply()
        if len(line) >= self.cfg.shell_line_max:
            raise GroupError(GROUP_SHELL, SHELL_LINE_TOO_LONG)
        args = split_line(line)
        if not args:
            raise GroupError(GROUP_SHELL, SHELL_EMPTY)
        if len(args) > 20:
            lines, ret = [self.shell._err("Too many arguments in the command.")], \
                ERRNO["ENOEXEC"]
        else:
            lines, ret = self.shell.run(args)
        data = (self._noise() + "".join(l + "\r\n" for l in lines)).encode()
        if self._bad("shell"):
            data = b"<err> log: " + BAD_TEXT + b"\r\n" + data
        data = data[:max(0, self.cfg.capture_size - 1)]
        # the capture buffer is cut at a byte count; a device sends that as it is
        text = RawText(data) if self._bad("shell") else data.decode("utf-8", "replace")
        return {"o": text, "rc" if self.cfg.legacy_rc else "ret": ret}

    def _bad(self, place):
        return self.cfg.bad_text == "all" or place in self.cfg.bad_text.split(",")

    def _noise(self):
        with self._fault_lock:
            if not (self.cfg.log_noise and self._rng.random() < self.cfg.log_noise):
                return ""
            second = self._rng.randrange(60)
        return "[00:00:%02d.000,000] <inf> bt_mesh_dfd_srv: simulated log line\r\n" % second

    # -- public: fault injection and control ----------------------------------------
    def configure(self, **options):
        """Change any OPTIONS value at run time (e.g. drop=0.3, capture_size=120)."""
        with self._lock:
            self.cfg.update(**options)
            if "seed" in options:
                with self._fault_lock:
                    self._rng.seed(self.cfg.seed)
            if "flash_fail_after" in options:
                self.set_flash_fail_after(self.cfg.flash_fail_after)

    def set_mute(self, on=True):
        self.configure(mute=on)

    def set_drop(self, rate):
        self.configure(drop=rate)

    def set_duplicate(self, rate):
        self.configure(duplicate=rate)

    def set_delay(self, delay=0.0, jitter=0.0, reorder=0.0):
        self.configure(delay=delay, jitter=jitter, reorder=reorder)

    def set_erase_delay(self, seconds):
        self.configure(erase_delay=seconds)

    def set_capture_size(self, size):
        self.configure(capture_size=size)

    def set_addr_format(self, fmt):
        self.configure(addr_format=fmt)

    def set_flash_fail_after(self, nbytes):
        """Fail the upload's flash write once nbytes more bytes are written (-1: off)."""
        with self._lock:
            self._flash_fail_at = None if nbytes is None or nbytes < 0 else \
                self.stats["upload_bytes"] + nbytes

    def reboot(self, downtime=None):
        """Reboot now: upload state, receivers and phase are lost; slot records and
        slot 1 stay. The device ignores everything for `downtime` seconds."""
        with self._lock:
            self.upload = None
            self.dfd.reset_runtime()
            self.boot_count += 1
            self.stats["reboots"] += 1
            down = self.cfg.reboot_downtime if downtime is None else downtime
            self._down_until = time.monotonic() + down
        with self._inbox_cv:
            self._inbox.clear()
        if self._pty_master is not None:
            self._schedule(down, lambda: self._serial_write(BOOT_BANNER))

    def reboot_after_upload_bytes(self, nbytes):
        """Reboot (without answering) once nbytes more upload bytes are written."""
        with self._lock:
            self._reboot_at_bytes = None if nbytes is None or nbytes < 0 else \
                self.stats["upload_bytes"] + nbytes

    def fail_receiver(self, addr, at_progress=0, stage="transfer", status=None, phase=None,
                      blob_status=None):
        """Script receiver `addr` to fail: during the transfer once the overall progress
        reaches at_progress percent, or at the verify or apply stage."""
        if stage not in FAIL_DEFAULTS:
            raise ValueError("stage must be one of %s" % ", ".join(FAIL_DEFAULTS))
        d_status, d_phase, d_blob = FAIL_DEFAULTS[stage]
        spec = (stage, int(at_progress), d_status if status is None else status,
                d_phase if phase is None else phase, d_blob if blob_status is None else blob_status)
        if spec[2] == 0:
            raise ValueError("a failed receiver needs a non-zero status")
        with self._lock:
            self.dfd.failures[int(addr)] = spec

    def clear_receiver_failures(self):
        with self._lock:
            self.dfd.failures.clear()

    def set_slot1_pending(self, pending=True, permanent=False):
        with self._lock:
            self.slot1_pending, self.slot1_permanent = pending, permanent

    def load_slot1(self, data):
        """Put bytes at the start of slot 1 (as if uploaded earlier)."""
        with self._lock:
            self.erase_slot1()
            self.slot1[:len(data)] = data

    def erase_slot1(self):
        with self._lock:
            self.slot1[:] = b"\xff" * self.cfg.slot_size
            self.slot1_pending = self.slot1_permanent = False
            self.upload = None

    def add_slot_record(self, size, fwid, metadata=b""):
        """Create a slot record directly (returns its index)."""
        with self._lock:
            free = [i for i in range(self.cfg.slot_cnt) if i not in self.dfd.slots]
            if not free:
                raise ValueError("no free slot record")
            self.dfd.slots[free[0]] = SlotRecord(size, bytes(fwid), bytes(metadata), "",
                                                 self.dfd.next_slot_id)
            self.dfd.next_slot_id += 1
            return free[0]

    def run_shell(self, *argv):
        """Run a shell command directly (no SMP); returns (output, ret)."""
        with self._lock:
            self.dfd.advance()
            out = self.h_shell_exec({"argv": list(argv)}, 1)
        return out["o"], out.get("ret", out.get("rc"))

    # -- public: inspection ---------------------------------------------------------
    @property
    def phase(self):
        with self._lock:
            self.dfd.advance()
            return self.dfd.phase

    def receivers(self):
        with self._lock:
            self.dfd.advance()
            return [dict(r.as_dict(), progress=self.dfd.progress())
                    for r in self.dfd.receivers.values()]

    def slot_records(self):
        with self._lock:
            return {i: s.as_dict() for i, s in sorted(self.dfd.slots.items())}

    def slot1_bytes(self, length=None):
        with self._lock:
            info = parse_image(self.slot1)
            n = length if length is not None else (info["size"] if info else 0)
            return bytes(self.slot1[:n])

    def upload_state(self):
        with self._lock:
            return self.upload.as_dict() if self.upload else None

    def snapshot(self):
        """JSON-friendly view of the whole state."""
        with self._lock:
            self.dfd.advance()
            images = [dict(i, hash=i["hash"].hex()) for i in self.image_list()]
            return {"boot_count": self.boot_count, "upload": self.upload_state(),
                    "images": images, "slot1_pending": self.slot1_pending,
                    "dfd": self.dfd.snapshot(), "stats": dict(self.stats),
                    "config": self.cfg.as_dict()}

    def wait_for(self, predicate, timeout=5.0, interval=0.01):
        """Poll predicate(self) until true or timeout; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value or time.monotonic() >= deadline:
                return value
            time.sleep(interval)


# (group, command id) -> (read handler, write handler)
DISPATCH = {
    (GROUP_OS, 0): (None, DistributorSim.h_echo),
    (GROUP_OS, 5): (None, DistributorSim.h_reset),
    (GROUP_OS, 6): (DistributorSim.h_params, None),
    (GROUP_OS, 7): (DistributorSim.h_os_info, None),
    (GROUP_IMAGE, 0): (DistributorSim.h_state_read, DistributorSim.h_state_write),
    (GROUP_IMAGE, 1): (None, DistributorSim.h_upload),
    (GROUP_IMAGE, 5): (None, DistributorSim.h_erase),
    (GROUP_SHELL, 0): (None, DistributorSim.h_shell_exec),
}


# ---------------------------------------------------------------------------
# Command-line program
# ---------------------------------------------------------------------------

# stdin control commands (one JSON object per line): name -> method of DistributorSim
CONTROL_COMMANDS = {
    "configure": "configure", "reboot": "reboot", "mute": "set_mute",
    "reboot_after_upload_bytes": "reboot_after_upload_bytes",
    "fail_receiver": "fail_receiver", "clear_receiver_failures": "clear_receiver_failures",
    "set_slot1_pending": "set_slot1_pending", "erase_slot1": "erase_slot1",
    "set_flash_fail_after": "set_flash_fail_after", "snapshot": "snapshot",
    "run_shell": "run_shell",
}


def build_parser():
    p = argparse.ArgumentParser(
        prog="dfd_sim.py",
        description="Simulated Zephyr SMP server with a Bluetooth-mesh firmware distributor "
        "(see SMP.md). Prints one JSON line {\"event\": \"ready\", \"udp_port\", \"pty\", ...} "
        "on stdout once serving, then runs until SIGTERM/SIGINT. Reads JSON control "
        "commands from stdin, one per line: {\"cmd\": NAME, \"args\": {...}} with NAME in "
        + ", ".join(sorted(CONTROL_COMMANDS)) + "; each is answered by a JSON line.")
    for opt in OPTIONS:
        if opt.kind is bool:
            p.add_argument(opt.flag, dest=opt.name, action="store_const",
                           const=not opt.default, default=opt.default, help=opt.help)
        else:
            p.add_argument(opt.flag, dest=opt.name, type=opt.kind, default=opt.default,
                           choices=opt.choices, help=opt.help + " (default %(default)s)")
    p.add_argument("--fail-receiver", action="append", default=[],
                   metavar="ADDR[:PERCENT[:STAGE]]",
                   help="script a receiver failure (stage transfer|verify|apply, default "
                   "transfer at 0%%); repeatable")
    p.add_argument("--reboot-after-bytes", type=int, default=-1, metavar="N",
                   help="reboot once N upload bytes have been written (-1: never)")
    p.add_argument("--preload-slot1", metavar="FILE",
                   help="file whose bytes are put into slot 1 at start")
    return p


def parse_fail_spec(text):
    parts = text.split(":")
    addr = strtoul0(parts[0])
    percent = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    stage = parts[2] if len(parts) > 2 else "transfer"
    return addr, percent, stage


def emit_json(obj):
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def control_loop(sim, stop):
    """Serve stdin control commands until EOF or stop."""
    for line in sys.stdin:
        if stop.is_set():
            return
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
            method = getattr(sim, CONTROL_COMMANDS[msg["cmd"]])
            args = msg.get("args", {})
            result = method(*args) if isinstance(args, list) else method(**args)
            emit_json({"event": "ok", "cmd": msg["cmd"], "result": result})
        except Exception as e:  # a bad control line must not kill the simulator
            emit_json({"event": "error", "detail": "%s: %s" % (type(e).__name__, e)})


def main(argv=None):
    args = build_parser().parse_args(argv)
    options = {o.name: getattr(args, o.name) for o in OPTIONS}
    sim = DistributorSim(**options)
    try:
        for spec in args.fail_receiver:
            addr, percent, stage = parse_fail_spec(spec)
            sim.fail_receiver(addr, at_progress=percent, stage=stage)
    except (ValueError, ShellArgError) as e:
        build_parser().error("bad --fail-receiver: %s" % e)
    if args.preload_slot1:
        with open(args.preload_slot1, "rb") as f:
            sim.load_slot1(f.read())
    sim.reboot_after_upload_bytes(args.reboot_after_bytes)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sim.start()
    emit_json({"event": "ready", "pid": os.getpid(), "bind": sim.cfg.bind,
               "udp_port": sim.port, "pty": sim.pty_path})
    threading.Thread(target=control_loop, args=(sim, stop), daemon=True).start()
    while not stop.wait(0.2):
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
