"""Start, watch and stop the lab's background processes by pid, from this process or a later CLI invocation."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class LabProcessError(RuntimeError):
    """A lab process failed to start or to become ready; the message points at its log file."""


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_LAB_PORT = 10000
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ends of outgoing connections (Linux's default when unreadable)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _lab_port_candidates() -> range:
    """Ports the kernel never gives an outgoing connection: below its ephemeral range, else above it."""
    low, high = _ephemeral_range()
    if low - _LOWEST_LAB_PORT >= 1000:
        return range(_LOWEST_LAB_PORT, low)
    return range(high + 1, 65536)


def free_port(taken: set[int] | None = None) -> int:
    """A loopback TCP port that nothing listens on now, for a lab process to listen on soon.

    The port lies outside the kernel's ephemeral range: a lab process binds its port seconds after it was picked,
    and a port from that range can meanwhile become the local end of one of the lab's many loopback connections
    (CI saw Temporal's UI port taken so). No port is handed out twice by this process, nor twice into ``taken``.
    """
    taken = taken if taken is not None else set()
    candidates = _lab_port_candidates()
    with _handed_out_lock:
        while True:
            port = random.choice(candidates) if len(candidates) > 0 else _kernel_chosen_port()
            if port in taken or port in _handed_out or not port_is_free(port):
                continue
            taken.add(port)
            _handed_out.add(port)
            return port


def _kernel_chosen_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a loopback TCP port can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_process(argv: Sequence[str], log_file: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` in its own session (so it outlives the CLI that started it) and return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    return proc.pid


def _reap(pid: int) -> bool:
    """Collect ``pid`` if it is a finished child of ours; true when it is gone."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def is_running(pid: int) -> bool:
    """Whether ``pid`` names a live (not zombie) process."""
    if pid <= 0 or _reap(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop_process(pid: int, timeout: float = 10.0, *, graceful: bool = True) -> None:
    """Stop the process group led by ``pid``: SIGTERM, then SIGKILL after ``timeout`` seconds.

    With ``graceful`` false it is SIGKILL at once, as a crash or power loss would be.
    """
    if not is_running(pid):
        return
    steps = ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)) if graceful else ((signal.SIGKILL, 5.0),)
    for sig, wait in steps:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_running(pid):
                return
            time.sleep(0.05)
    raise LabProcessError(f"process {pid} did not stop after SIGKILL")


def wait_until(
    check: Callable[[], bool],
    what: str,
    timeout: float,
    pid: int | None = None,
    log_file: Path | None = None,
    interval: float = 0.2,
) -> None:
    """Poll ``check`` until it is true; fail early when ``pid`` exits, and show the tail of ``log_file``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        if pid is not None and not is_running(pid):
            raise LabProcessError(f"{what}: the process exited early{_log_tail(log_file)}")
        time.sleep(interval)
    raise LabProcessError(f"{what}: not ready after {timeout:.0f}s{_log_tail(log_file)}")


def _log_tail(log_file: Path | None, lines: int = 25) -> str:
    if log_file is None or not log_file.exists():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log_file} ---\n" + "\n".join(tail)


class ManagedProcess:
    """A lab process known by its pid (kept in the lab's state): start it once, probe it, stop it.

    Subclasses give the command line, the health probe, a name and a log file; ``pid_holder`` is the state object
    whose ``pid`` attribute is saved with the lab.
    """

    name = "process"
    start_timeout = 60.0
    probe_interval = 0.2

    def __init__(self, pid_holder: Any, log_file: Path) -> None:
        self.pid_holder = pid_holder
        self.log_file = log_file

    def argv(self) -> list[str]:
        """The command line."""
        raise NotImplementedError

    def healthy(self) -> bool:
        """One readiness probe."""
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        """Environment of the process (``None``: inherit)."""
        return None

    def start(self) -> None:
        """Start the process unless it runs, and wait until it is healthy."""
        if not is_running(self.pid_holder.pid):
            self.pid_holder.pid = start_process(self.argv(), self.log_file, env=self.env())
        wait_until(
            self.healthy,
            self.name,
            self.start_timeout,
            pid=self.pid_holder.pid,
            log_file=self.log_file,
            interval=self.probe_interval,
        )

    def stop(self) -> None:
        """Stop the process (no-op when it is not running)."""
        if self.pid_holder.pid:
            stop_process(self.pid_holder.pid)
            self.pid_holder.pid = 0

    def running(self) -> bool:
        """Whether its process is alive."""
        return is_running(self.pid_holder.pid)
