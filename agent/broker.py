"""A throwaway local MQTT broker for the demo and the benchmarks: Debian's mosquitto on loopback.

Production stores talk to the chain's broker; this exists so ``store-agent demo`` and ``bench`` run on a
fresh machine with nothing but the package installed (and mosquitto, which the README's command installs).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerUnavailable(RuntimeError):
    """No broker binary could be found or started."""


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None."""
    for candidate in MOSQUITTO_CANDIDATES:
        found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
        if found:
            return found
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBroker:
    """mosquitto on 127.0.0.1:<port>, anonymous, no persistence; ``with LocalBroker() as b: b.url``."""

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="store-agent-broker-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 5.0) -> LocalBroker:
        binary = find_mosquitto()
        if binary is None:
            raise BrokerUnavailable("mosquitto is not installed: `apt-get install mosquitto` (the README's set-up "
                                    "command does this), or point --broker at a running broker")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 100000\nset_tcp_nodelay true\n"
                        f"log_dest file {self.workdir / 'mosquitto.log'}\n")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerUnavailable(f"mosquitto exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"mosquitto did not listen on port {self.port}: {self._log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def _log_tail(self) -> str:
        log = self.workdir / "mosquitto.log"
        return log.read_text(errors="replace")[-500:] if log.exists() else ""

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
