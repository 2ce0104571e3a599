"""A local HTTP receiver for the outbound suites (webhooks, the http step): a threaded server
on a free 127.0.0.1 port that records every request and answers from a script.

    rx = Receiver().start()
    rx.script("/hook", [(500, b"no"), (500, b"no"), (200, b"{}")])  # then the default
    ... rx.url("/hook") ...
    rx.wait(lambda reqs: len(reqs) >= 4, timeout=20)
    rx.stop()

Each answer is (status, body) or (status, body, delay_seconds); a delay is cut short by stop().
A body may be a function of the Request that returns the bytes (e.g. an echo).
"""
import http.server
import json
import ssl
import threading
import time


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.time = time.monotonic()  # when it arrived (its body read)
        self.answered = None  # when the answer started to go out

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.method} {self.path} {self.body[:80]!r}>"


class Receiver:
    def __init__(self, default=(200, b'{"ok": true}')):
        self.default = default
        self.scripts = {}
        self.scheme = "http"
        self.requests = []
        self.lock = threading.Condition()
        self.stopping = threading.Event()
        self.httpd = None
        self.thread = None

    def start(self, port=0, tls=None, sock=None):
        """tls: (certificate file, key file) to serve HTTPS. sock: a TCP socket bound (and
        not listening) to serve on instead of port, so that its port stays the test's
        between the bind and the start."""
        rx = self
        self.scheme = "https" if tls else "http"

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                path = self.path.split("?")[0]
                req = Request(self.command, self.path, self.headers, body)
                with rx.lock:
                    rx.requests.append(req)
                    queue = rx.scripts.get(path)
                    answer = queue.pop(0) if queue else rx.default
                    rx.lock.notify_all()
                status, out = answer[0], answer[1]
                if callable(out):
                    out = out(req)
                if len(answer) > 2 and answer[2]:
                    rx.stopping.wait(answer[2])
                req.answered = time.monotonic()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass  # the client gave up (a timeout under test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        if sock is None:
            self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        else:
            self.httpd = http.server.ThreadingHTTPServer(sock.getsockname(), Handler,
                                                         bind_and_activate=False)
            self.httpd.socket.close()
            self.httpd.socket = sock
            self.httpd.server_address = sock.getsockname()
            self.httpd.server_activate()
        self.httpd.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def port(self):
        return self.httpd.server_address[1]

    def url(self, path="/hook", host="127.0.0.1"):
        return f"{self.scheme}://{host}:{self.port}{path}"

    def script(self, path, answers):
        with self.lock:
            self.scripts.setdefault(path, []).extend(answers)

    def received(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r.path.split("?")[0] == path]

    def wait(self, pred, timeout=20.0, path=None):
        """Waits until pred(requests to path) holds; returns those requests."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                reqs = [r for r in self.requests
                        if path is None or r.path.split("?")[0] == path]
                if pred(reqs):
                    return reqs
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver: condition not met in {timeout} s; "
                                         f"got {len(reqs)} requests: {reqs[-5:]}")
                self.lock.wait(min(left, 0.2))

    def stop(self):
        self.stopping.set()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
