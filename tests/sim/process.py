"""dfd_sim.py as a child process, for the test suites that drive the simulator from outside
(tests/api/test_mesh.py, tests/smp): start it, read its ready line (UDP port, pty path),
send it control commands on stdin, and stop it by pid. Imported, never run.
"""
import json
import os
import select
import signal
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "dfd_sim.py")
PYTHON = "/usr/bin/python3"
READY_TIMEOUT = 10.0
CMD_TIMEOUT = 10.0
# Fast simulator defaults: short verify/apply and cancel steps.
SIM_DEFAULTS = ["--step-delay", "0.02", "--cancel-delay", "0.05"]


class SimStartError(Exception):
    pass


class Sim:
    """dfd_sim.py as a subprocess: its ready line (port, pty), control commands, stop."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [PYTHON, SIM, "--udp-port", "0"] + SIM_DEFAULTS + [str(a) for a in args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        try:
            try:
                ready = self._line(READY_TIMEOUT)
                if ready.get("event") != "ready":
                    raise SimStartError(f"unexpected first line {ready!r}")
                self.bind = ready["bind"]
                self.port = ready["udp_port"]
                self.pty = ready["pty"]
            except (ValueError, KeyError, AttributeError) as e:  # not the ready line we know
                raise SimStartError(f"unreadable ready line: {e!r}") from e
        except BaseException:
            self.stop()  # by pid, whatever went wrong (^C included)
            raise
        self.ready = ready

    @property
    def udp(self):
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"{host}:{self.port}"

    def _line(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise SimStartError("simulator did not answer in time")
        line = self.proc.stdout.readline()
        if not line:
            raise SimStartError("simulator exited: " + self.proc.stderr.read()[-2000:])
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"cmd": name}
        if args is not None:
            msg["args"] = args
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        ans = self._line(CMD_TIMEOUT)
        assert ans.get("event") == "ok", ans
        return ans.get("result")

    def snapshot(self):
        return self.cmd("snapshot")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:  # unsent commands to a process that is gone
                pass
