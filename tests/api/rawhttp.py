"""Raw HTTP/1.1 over a socket, for tests that send what no client library would send and
check what comes back byte for byte: exactly one well-formed response, nothing after it."""
import json
import re
import socket
import ssl
import time

STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) [^\r\n]*")
HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*?)[ \t]*")


class Malformed(AssertionError):
    """The server's bytes are not one well-formed HTTP/1.1 response."""


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (lower-case name, value) as text
        self.body = body

    def header(self, name):
        """The value of a header sent once (None when absent); a repeated one is an error."""
        values = [v for k, v in self.headers if k == name.lower()]
        if len(values) > 1:
            raise Malformed(f"header {name} sent {len(values)} times: {self.headers}")
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


def parse(data, head_request=False):
    """Parses one response at the start of data; returns (Response, rest) or raises
    Malformed; returns (None, data) when data holds no complete response yet."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None, data
    lines = data[:end].split(b"\r\n")
    m = STATUS_LINE.fullmatch(lines[0])
    if not m:
        raise Malformed(f"bad status line {lines[0][:100]!r}")
    headers = []
    for line in lines[1:]:
        h = HEADER_LINE.fullmatch(line)
        if not h:
            raise Malformed(f"bad header line {line[:100]!r}")
        headers.append((h.group(1).decode().lower(), h.group(2).decode("latin-1")))
    r = Response(int(m.group(1)), headers, b"")
    rest = data[end + 4:]
    if 100 <= r.status < 200:
        return r, rest  # an interim answer (100 Continue): no body
    if r.header("transfer-encoding") is not None:
        raise Malformed("chunked answers are not expected here")
    length = r.header("content-length")
    if length is None or not length.isdigit():
        raise Malformed(f"no usable Content-Length: {headers}")
    n = 0 if head_request or r.status in (204, 304) else int(length)
    if len(rest) < n:
        return None, data
    r.body = rest[:n]
    return r, rest[n:]


def connect(port, tls=False, timeout=10.0, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0))
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    return s


def send_quietly(sock, data):
    """Sends data; a server that answered early and closed may reset the connection, which
    is not an error here (its answer is read afterwards)."""
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
        return False


def read_answers(sock, deadline, head_request=False, settle=0.3):
    """Reads until the server closes (or deadline), then parses every response in order.
    Returns (responses, trailing bytes that are not a complete response, closed)."""
    data = b""
    closed = False
    quiet_since = None
    while time.monotonic() < deadline:
        try:
            sock.settimeout(max(0.01, min(settle, deadline - time.monotonic())))
            chunk = sock.recv(65536)
        except socket.timeout:
            # keep-alive: the answer is complete once it parses and nothing more came
            if data and parse(data, head_request)[0] is not None:
                if quiet_since is None:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= settle:
                    break
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
        quiet_since = None
    answers = []
    while data:
        r, rest = parse(data, head_request)
        if r is None:
            break
        answers.append(r)
        data = rest
    return answers, data, closed


def exchange(port, data, timeout=10.0, tls=False, head_request=False, source="127.0.0.1"):
    """Sends data on a new connection from the source address (any of 127.0.0.0/8 reaches
    a server on 127.0.0.1) and returns (responses, trailing bytes, closed)."""
    deadline = time.monotonic() + timeout
    with connect(port, tls, timeout, source) as s:
        send_quietly(s, data)
        return read_answers(s, deadline, head_request)


def one_answer(port, data, timeout=10.0, **kw):
    """Exactly one well-formed response and no stray bytes after it; returns it."""
    answers, rest, _ = exchange(port, data, timeout, **kw)
    assert len(answers) == 1 and rest == b"", (answers, rest[:300])
    return answers[0]


def assert_json_error(r, status, code=None):
    """The error contract on a raw answer: status, JSON content type, code and detail."""
    assert r.status == status, r
    assert (r.header("content-type") or "").startswith("application/json"), r
    assert r.header("x-request-id"), r
    body = r.json()
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if code:
        assert body["code"] == code, body
    return body
