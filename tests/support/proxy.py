"""A tiny loopback TCP proxy for network fault injection (threads + sockets).

``TcpProxy(target_host, target_port)`` listens on 127.0.0.1:<free port> and
forwards every accepted connection to the target. Faults:

* ``blackhole()`` -- simulates a half-open link. Existing connections stay
  open but every byte is swallowed in BOTH directions: the client's writes
  succeed (the proxy keeps reading, so kernel buffers never fill), nothing
  reaches the broker and nothing comes back. If the broker side closes (e.g.
  keep-alive timeout) the client side is *not* told. New connections are
  accepted and swallowed as well (no upstream connection is made, so a client
  never receives a CONNACK).
* ``restore()`` -- back to forwarding for NEW connections; all existing
  (swallowed) connections are closed (FIN by default, RST with
  ``abrupt=True``), as if the link came back and the dead flows were reaped.
* ``drop_all()`` -- closes every current connection abruptly (RST via
  SO_LINGER=0) on both sides; the mode is unchanged.

If the target refuses the upstream connection (broker down) the client
connection is reset right after being accepted.

Each connection is pumped by its own daemon thread using non-blocking sockets
and ``select`` with a short tick, so every control operation takes effect
within ~50 ms and ``stop()`` never hangs.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time

__all__ = ["TcpProxy"]

_TICK = 0.05
_MAX_BUFFER = 4 * 1024 * 1024


def _rst_close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _fin_close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Conn:
    """One client<->upstream flow, owned by a single pump thread."""

    def __init__(self, proxy: "TcpProxy", client: socket.socket, swallow: bool) -> None:
        self.proxy = proxy
        self.client: socket.socket | None = client
        self.upstream: socket.socket | None = None
        self.swallow = swallow  # sticky: once swallowed, never forwards again
        self.to_upstream = bytearray()
        self.to_client = bytearray()
        self.close_request: str | None = None  # "fin" | "rst"
        self.done = threading.Event()
        self.peer = client.getpeername()
        self.thread = threading.Thread(
            target=self._run, name=f"TcpProxy-conn-{self.peer[1]}", daemon=True
        )

    def request_close(self, how: str) -> None:
        if self.close_request != "rst":
            self.close_request = how

    # ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            if not self.swallow and not self._connect_upstream():
                _rst_close(self.client)
                self.client = None
                return
            self._pump()
        except Exception:  # pragma: no cover - defensive
            self._close_all("rst")
        finally:
            self.done.set()
            self.proxy._forget(self)

    def _connect_upstream(self) -> bool:
        try:
            up = socket.create_connection(
                (self.proxy.target_host, self.proxy.target_port), timeout=self.proxy.connect_timeout
            )
        except OSError:
            return False
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up.setblocking(False)
        self.upstream = up
        return True

    def _close_all(self, how: str) -> None:
        closer = _rst_close if how == "rst" else _fin_close
        closer(self.client)
        closer(self.upstream)
        self.client = self.upstream = None

    def _pump(self) -> None:
        assert self.client is not None
        self.client.setblocking(False)
        self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            if self.close_request is not None:
                self._close_all(self.close_request)
                return
            if not self.swallow and self.proxy._blackholed:
                self.swallow = True
            if self.swallow:
                self.to_upstream.clear()
                self.to_client.clear()

            rlist: list[socket.socket] = []
            wlist: list[socket.socket] = []
            if self.client is not None and len(self.to_upstream) < _MAX_BUFFER:
                rlist.append(self.client)
            if self.upstream is not None and len(self.to_client) < _MAX_BUFFER:
                rlist.append(self.upstream)
            if self.upstream is not None and self.to_upstream:
                wlist.append(self.upstream)
            if self.client is not None and self.to_client:
                wlist.append(self.client)
            if self.client is None:
                # Client gone: nothing left to do for this flow.
                self._close_all("fin")
                return
            try:
                readable, writable, _ = select.select(rlist, wlist, [], _TICK)
            except (OSError, ValueError):
                self._close_all("rst")
                return

            for sock in readable:
                is_client = sock is self.client
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = None  # reset
                if not data:
                    if is_client:
                        # Client went away (FIN or RST): close the whole flow.
                        self._close_all("fin" if data == b"" else "rst")
                        return
                    # Upstream went away.
                    if self.swallow:
                        # Half-open simulation: do NOT tell the client.
                        _fin_close(self.upstream)
                        self.upstream = None
                        continue
                    self._flush_to_client()
                    self._close_all("fin" if data == b"" else "rst")
                    return
                if self.swallow:
                    self.proxy._count(swallowed=len(data))
                    continue
                self.proxy._count(forwarded=len(data))
                (self.to_upstream if is_client else self.to_client).extend(data)

            for sock in writable:
                buf = self.to_upstream if sock is self.upstream else self.to_client
                if not buf:
                    continue
                try:
                    n = sock.send(buf)
                except BlockingIOError:
                    continue
                except OSError:
                    self._close_all("rst")
                    return
                del buf[:n]

    def _flush_to_client(self) -> None:
        if self.client is None or not self.to_client:
            return
        try:
            self.client.setblocking(True)
            self.client.settimeout(0.5)
            self.client.sendall(self.to_client)
        except OSError:
            pass
        self.to_client.clear()


class TcpProxy:
    """Loopback TCP proxy ``127.0.0.1:<port> -> target_host:target_port``.

    Thread-safe; ``start()``/``stop()`` or use as a context manager.
    ``target_port`` may be changed while running (affects new connections).
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 2.0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.listen_host = listen_host
        self._listen_port = listen_port
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._blackholed = False
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self.accepted = 0
        self.bytes_forwarded = 0
        self.bytes_swallowed = 0

    # ------------------------------------------------------------ info
    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("proxy not started")
        return self._listen_port

    @property
    def host(self) -> str:
        return self.listen_host

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_host, self.port

    @property
    def blackholed(self) -> bool:
        return self._blackholed

    @property
    def connection_count(self) -> int:
        with self._lock:
            return len(self._conns)

    def __repr__(self) -> str:
        mode = "blackhole" if self._blackholed else "forward"
        return (
            f"<TcpProxy {self.listen_host}:{self._listen_port} -> "
            f"{self.target_host}:{self.target_port} {mode} conns={self.connection_count}>"
        )

    # ------------------------------------------------------- lifecycle
    def start(self) -> "TcpProxy":
        if self._listener is not None:
            raise RuntimeError("proxy already started")
        self._stopping.clear()
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind((self.listen_host, self._listen_port))
        lsock.listen(128)
        lsock.settimeout(_TICK)
        self._listen_port = lsock.getsockname()[1]
        self._listener = lsock
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"TcpProxy-accept-{self._listen_port}", daemon=True
        )
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, RST every connection, join threads (bounded)."""
        if self._listener is None:
            return
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        try:
            self._listener.close()
        except OSError:
            pass
        self._close_conns("rst", timeout)
        self._listener = None
        self._accept_thread = None

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------- faults
    def blackhole(self) -> None:
        """Swallow all bytes both ways on existing and new connections."""
        with self._lock:
            self._blackholed = True
            conns = list(self._conns)
        for c in conns:
            c.swallow = True

    def restore(self, *, abrupt: bool = False, timeout: float = 2.0) -> None:
        """Close all existing connections, then forward new ones again."""
        with self._lock:
            self._blackholed = False
        self._close_conns("rst" if abrupt else "fin", timeout)

    def drop_all(self, timeout: float = 2.0) -> None:
        """Abruptly (RST) close every current connection on both sides."""
        self._close_conns("rst", timeout)

    def _close_conns(self, how: str, timeout: float) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.request_close(how)
        deadline = time.monotonic() + timeout
        for c in conns:
            c.done.wait(max(0.0, deadline - time.monotonic()))

    # --------------------------------------------------------- internals
    def _accept_loop(self) -> None:
        assert self._listener is not None
        lsock = self._listener
        while not self._stopping.is_set():
            try:
                client, _ = lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                time.sleep(_TICK)
                continue
            with self._lock:
                if self._stopping.is_set():
                    _rst_close(client)
                    return
                try:
                    conn = _Conn(self, client, swallow=self._blackholed)
                except OSError:  # peer already gone
                    _rst_close(client)
                    continue
                self._conns.add(conn)
                self.accepted += 1
            conn.thread.start()

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _count(self, forwarded: int = 0, swallowed: int = 0) -> None:
        with self._lock:
            self.bytes_forwarded += forwarded
            self.bytes_swallowed += swallowed
