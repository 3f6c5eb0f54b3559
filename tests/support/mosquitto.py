"""Run a real mosquitto broker as a subprocess for tests.

Everything listens on loopback (127.0.0.1) on a free port chosen at start.
The broker writes its config, log and stderr into a private work directory;
``log_tail()`` is included in every start-up error so failures are debuggable.

Typical use (normally through the ``mosquitto`` / ``mosquitto_factory``
fixtures in ``tests/conftest.py``)::

    with MosquittoBroker() as broker:
        client.connect(broker.host, broker.port)
        broker.kill()       # SIGKILL: simulated crash, port closed at once
        broker.restart()    # same port, waits until it accepts again

Persistence is off, so a restart loses sessions, retained messages and queued
QoS>0 messages -- exactly what a crashed broker without a persistence file
does.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Iterable

from .certs import TlsFiles

__all__ = [
    "MosquittoBroker",
    "MosquittoError",
    "mosquitto_available",
    "mosquitto_binary",
    "free_port",
    "wait_for_port",
]

LOOPBACK = "127.0.0.1"
_FALLBACK_BINARY = "/usr/sbin/mosquitto"

_live_brokers: "weakref.WeakSet[MosquittoBroker]" = weakref.WeakSet()


class MosquittoError(RuntimeError):
    """The broker could not be started (message includes the log tail)."""


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable, or None when not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    if os.path.isfile(_FALLBACK_BINARY) and os.access(_FALLBACK_BINARY, os.X_OK):
        return _FALLBACK_BINARY
    return None


def mosquitto_available() -> bool:
    return mosquitto_binary() is not None


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if port_accepts(host, port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child
    """Linux: have the kernel SIGKILL the broker if the test process dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class MosquittoBroker:
    """A mosquitto subprocess with a generated config on 127.0.0.1:<port>.

    :param workdir: where config/log files go; a private temp dir (removed by
        ``close()``/``__exit__``) when omitted.
    :param port: fixed port; default: a free port picked at the first
        ``start()`` and kept for every ``restart()``.
    :param tls: PKI from ``tests.support.certs.make_pki``; enables TLS on the
        listener (cafile/certfile/keyfile) and makes ``url`` ``mqtts://``.
    :param require_certificate: clients must present a certificate signed by
        ``tls.ca_file`` (mutual TLS).
    :param use_identity_as_username: the client certificate CN becomes the
        MQTT username (used by ``%u`` in ACL patterns).
    :param acl_file: mosquitto ACL file (e.g. ``configs/mosquitto/acl-stores.conf``).
    :param allow_anonymous: ``allow_anonymous`` (mosquitto 2.0 defaults to
        false once a listener is configured, so we always write it).
    :param extra_config: extra config lines appended *after* the listener
        block (so listener options apply to our listener).
    :param start_timeout: seconds ``start()``/``restart()`` wait for the port.
    :param config_template: use this complete config instead of the generated
        one; ``{host}``, ``{port}``, ``{log_file}`` and ``{workdir}`` are
        substituted (plain text replacement, other braces are left alone).
        ``user root`` is appended when running as root. The listener must
        still be ``listener {port} {host}``.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        *,
        port: int | None = None,
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
        use_identity_as_username: bool = False,
        acl_file: Path | str | None = None,
        allow_anonymous: bool = True,
        extra_config: Iterable[str] | str = (),
        start_timeout: float = 5.0,
        binary: str | None = None,
        config_template: str | None = None,
    ) -> None:
        if (require_certificate or use_identity_as_username) and tls is None:
            raise ValueError("require_certificate/use_identity_as_username need tls=TlsFiles")
        self._binary = binary or mosquitto_binary()
        if self._binary is None:
            raise MosquittoError("mosquitto is not installed (not on PATH nor /usr/sbin/mosquitto)")
        self._owns_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="mosquitto-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self._port: int | None = port
        self._fixed_port = port is not None
        self.tls = tls
        self.require_certificate = require_certificate
        self.use_identity_as_username = use_identity_as_username
        self.acl_file = Path(acl_file).resolve() if acl_file is not None else None
        self.allow_anonymous = allow_anonymous
        self.extra_config = [extra_config] if isinstance(extra_config, str) else list(extra_config)
        self.start_timeout = start_timeout
        self.config_template = config_template
        self.config_file = self.workdir / "mosquitto.conf"
        self.log_file = self.workdir / "mosquitto.log"
        self.stderr_file = self.workdir / "mosquitto.stderr"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_fh = None
        self._lock = threading.RLock()
        self.starts = 0  # how many times the process was (successfully) started

    # ------------------------------------------------------------------ info
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("broker has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        port = self._port if self._port is not None else "?"
        return f"<MosquittoBroker {self.host}:{port} tls={bool(self.tls)} {state}>"

    # ------------------------------------------------------------- config
    def config_text(self) -> str:
        if self.config_template is not None:
            text = self.config_template
            for key, value in (
                ("{host}", self.host),
                ("{port}", str(self.port)),
                ("{log_file}", str(self.log_file)),
                ("{workdir}", str(self.workdir)),
            ):
                text = text.replace(key, value)
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                text += "\n# added by tests/support/mosquitto.py (running as root)\nuser root\n"
            return text
        lines = [
            "# generated by tests/support/mosquitto.py -- do not edit",
            "per_listener_settings false",
            "persistence false",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root mosquitto 2.x drops privileges to user "mosquitto", which
            # cannot read/write a 0700 pytest tmp dir. Stay root (test only).
            lines.append("user root")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        lines += ["", f"listener {self.port} {self.host}"]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                f"require_certificate {'true' if self.require_certificate else 'false'}",
            ]
            if self.use_identity_as_username:
                lines.append("use_identity_as_username true")
        lines += self.extra_config
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------ process
    def start(self) -> "MosquittoBroker":
        """Start the broker and wait (``start_timeout``) until it accepts TCP."""
        with self._lock:
            if self.running:
                raise RuntimeError(f"{self!r} is already running")
            if self._port is None:
                self._port = free_port(self.host)
            deadline = time.monotonic() + self.start_timeout
            attempt = 0
            reasons: list[str] = []
            while True:
                attempt += 1
                ok, reason = self._spawn_and_wait(deadline)
                if reason not in reasons:
                    reasons.append(reason)
                if ok:
                    self.starts += 1
                    return self
                if reason == "addr-in-use" and time.monotonic() < deadline:
                    if not self._fixed_port and self.starts == 0:
                        # First start and someone stole the free port: pick another.
                        self._port = free_port(self.host)
                    else:
                        time.sleep(0.1)  # restart on the same port: wait for it
                    continue
                tail = self.log_tail()
                raise MosquittoError(
                    f"mosquitto did not start on {self.host}:{self._port} "
                    f"(attempts: {attempt}; {'; '.join(reasons)}).\n--- config ---\n{self.config_text()}"
                    f"--- log tail ---\n{tail}"
                )

    def _spawn_and_wait(self, deadline: float) -> tuple[bool, str]:
        self.config_file.write_text(self.config_text())
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._close_stderr()
        self._stderr_fh = open(self.stderr_file, "ab")
        main_thread = threading.current_thread() is threading.main_thread()
        self._proc = subprocess.Popen(
            [self._binary, "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=self._stderr_fh,
            stderr=self._stderr_fh,
            cwd=self.workdir,
            start_new_session=True,
            # PDEATHSIG fires when the *forking thread* exits, so only use it
            # from the main thread.
            preexec_fn=_set_pdeathsig if main_thread else None,
        )
        _live_brokers.add(self)
        while True:
            if self._proc.poll() is not None:
                text = self._read_log_from(log_offset) + self._read(self.stderr_file)
                self._close_stderr()
                if "Address already in use" in text:
                    return False, "addr-in-use"
                return False, f"exited with code {self._proc.returncode}"
            if self._ready(log_offset):
                return True, "ok"
            if time.monotonic() >= deadline:
                self._terminate(signal.SIGKILL, 2.0)
                return False, f"port did not accept connections within {self.start_timeout}s"
            time.sleep(0.02)

    def _ready(self, log_offset: int) -> bool:
        # mosquitto logs "mosquitto version X running" only once every listener
        # is bound and listening -- this guards against a TCP probe succeeding
        # against somebody else's socket on the same port. For a plain listener
        # we also prove it with a TCP connect; for TLS we skip the probe
        # because a bare TCP connect makes mosquitto log a (harmless but
        # confusing) "Client connection ... failed: unexpected eof" line.
        if not re.search(r"mosquitto version \S+ running", self._read_log_from(log_offset)):
            return False
        if self.tls is not None or self.config_template is not None:
            return True
        return port_accepts(self.host, self.port, timeout=0.2)

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop: SIGTERM, wait ``timeout``, then SIGKILL."""
        with self._lock:
            self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL the broker (simulates a crash; connections die with RST/FIN)."""
        with self._lock:
            self._terminate(signal.SIGKILL, 5.0)

    def restart(self, delay: float = 0.0) -> "MosquittoBroker":
        """Stop (if running), optionally sleep ``delay``, start on the SAME port."""
        with self._lock:
            if self.running:
                self.stop()
            if delay:
                time.sleep(delay)
            return self.start()

    def _terminate(self, sig: int, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        self._close_stderr()
        _live_brokers.discard(self)

    def close(self) -> None:
        """Stop and remove the private work dir (only if we created it)."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "MosquittoBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- logs
    def _close_stderr(self) -> None:
        if self._stderr_fh is not None:
            try:
                self._stderr_fh.close()
            finally:
                self._stderr_fh = None

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _read_log_from(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_text(self) -> str:
        """Whole broker log plus anything written on stdout/stderr."""
        text = self._read(self.log_file)
        err = self._read(self.stderr_file)
        if err.strip():
            text += "\n--- stderr ---\n" + err
        return text

    def log_tail(self, lines: int = 40) -> str:
        log = self._read(self.log_file).splitlines()[-lines:]
        err = [
            line
            for line in self._read(self.stderr_file).splitlines()
            if "should not be run as root" not in line
        ][-lines:]
        out = "\n".join(log) or "(empty log)"
        if err:
            out += "\n--- stderr ---\n" + "\n".join(err)
        return out

    def wait_for_log(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """Wait until a regex appears in the broker log; AssertionError on timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self._read(self.log_file))
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{pattern!r} not in mosquitto log after {timeout}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)


@atexit.register
def _kill_leftovers() -> None:
    for broker in list(_live_brokers):
        try:
            broker.kill()
        except Exception:
            pass
