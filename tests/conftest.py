"""Shared pytest fixtures: real mosquitto brokers, a throwaway PKI and a
fault-injecting TCP proxy -- all on 127.0.0.1 with random free ports.

Fixtures
    mosquitto            running plain (anonymous, no TLS) broker, per test
    mosquitto_factory    factory(**MosquittoBroker kwargs) -> started broker;
                         every broker it made is stopped at teardown
    pki                  TlsFiles for clients "store-a", "store-b", "cloud"
    tcp_proxy_factory    factory(target_host, target_port) -> started TcpProxy
    mqtt_client_factory  factory(prefix="c", **MqttTestClient kwargs) -> raw
                         paho v5 test client (unique client id), closed at teardown
    repo_root            Path of the repository root
    acl_stores_file      Path of configs/mosquitto/acl-stores.conf

Tests that need a broker are skipped (with a clear reason) only when the
mosquitto binary is not installed; CI installs it.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Make ``tests.support`` importable however pytest was launched (``pytest`` vs
# ``python -m pytest``, any rootdir/import mode).
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.certs import TlsFiles, make_pki  # noqa: E402
from tests.support.mosquitto import MosquittoBroker, mosquitto_available  # noqa: E402
from tests.support.mqttclient import MqttTestClient  # noqa: E402
from tests.support.proxy import TcpProxy  # noqa: E402

MOSQUITTO_MISSING = (
    "mosquitto broker binary not installed (apt-get install mosquitto); "
    "real-broker tests need it"
)


def _require_mosquitto() -> None:
    if not mosquitto_available():
        pytest.skip(MOSQUITTO_MISSING)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def acl_stores_file() -> Path:
    return REPO_ROOT / "configs" / "mosquitto" / "acl-stores.conf"


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., MosquittoBroker]]:
    """``factory(**kwargs) -> MosquittoBroker`` (already started).

    kwargs are those of :class:`MosquittoBroker` (tls=, require_certificate=,
    use_identity_as_username=, acl_file=, allow_anonymous=, extra_config=,
    port=, config_template=...). Pass ``start=False`` to get it unstarted.
    """
    _require_mosquitto()
    brokers: list[MosquittoBroker] = []

    def factory(*, start: bool = True, **kwargs) -> MosquittoBroker:  # noqa: ANN003
        kwargs.setdefault("workdir", tmp_path_factory.mktemp("mosquitto"))
        broker = MosquittoBroker(**kwargs)
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield factory
    for broker in reversed(brokers):
        try:
            broker.stop()
        except Exception:  # pragma: no cover - teardown must not mask test errors
            broker.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """A running plain broker: anonymous, no TLS, ``mqtt://127.0.0.1:<port>``."""
    return mosquitto_factory()


@pytest.fixture
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Throwaway CA + server cert (127.0.0.1/localhost) + client certs for
    ``store-a``, ``store-b`` and ``cloud`` + an unrelated "wrong" CA."""
    return make_pki(tmp_path_factory.mktemp("pki"), ["store-a", "store-b", "cloud"])


@pytest.fixture
def tcp_proxy_factory() -> Iterator[Callable[..., TcpProxy]]:
    """``factory(target_host, target_port) -> TcpProxy`` (already started);
    all proxies are stopped at teardown."""
    proxies: list[TcpProxy] = []

    def factory(target_host: str, target_port: int, **kwargs) -> TcpProxy:  # noqa: ANN003
        proxy = TcpProxy(target_host, target_port, **kwargs).start()
        proxies.append(proxy)
        return proxy

    yield factory
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def mqtt_client_factory() -> Iterator[Callable[..., MqttTestClient]]:
    """``factory(prefix="c", **kwargs) -> MqttTestClient`` (not yet connected;
    client id ``<prefix>-<random>``). kwargs: protocol=, ca_file=, certfile=,
    keyfile=, keepalive=, reconnect=, username=, password=. All are closed at
    teardown."""
    made: list[MqttTestClient] = []

    def factory(prefix: str = "c", **kwargs) -> MqttTestClient:  # noqa: ANN003
        client = MqttTestClient(f"{prefix}-{uuid.uuid4().hex[:8]}", **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()
