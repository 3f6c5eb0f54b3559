"""The doctor's broker check: client certificate, TCP, TLS handshake, then a real MQTT CONNECT.

Each stage stops the check at the first failure, so the result names the layer that is broken
(network, certificates, credentials/ACL). The MQTT client id is the agent's plus ``-doctor``: a
running agent keeps its session (a duplicate client id would disconnect it).
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config import AgentConfig, ConfigError, read_secret
from agent.doctor.core import CheckResult, DoctorContext, Status, worst

#: Warn when the client certificate expires within this many days.
CERT_WARN_DAYS = 30


class _Stop(Exception):
    """A stage failed: carries the failing result's detail and fix."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.fix = detail, fix


def check_broker(ctx: DoctorContext) -> CheckResult:
    """Reach the broker, complete TLS (if mqtts://) and get a successful CONNACK."""
    cfg = ctx.cfg
    if not cfg.sync.enabled:
        return CheckResult("broker", "ok", "sync disabled")
    found: list[str] = []
    statuses: list[Status] = ["ok"]
    fixes: list[str] = []
    try:
        context = None
        if cfg.sync.use_tls:
            context = _tls_context(cfg)
            cert_status, cert_detail, cert_fix = _client_cert_expiry(cfg)
            if cert_status == "fail":
                raise _Stop(cert_detail, cert_fix)
            if cert_detail:
                found.append(cert_detail)
                statuses.append(cert_status)
                fixes += [cert_fix] if cert_fix else []
        sock = _tcp(cfg, ctx.timeout_s)
        found.append(f"TCP {cfg.sync.host}:{cfg.sync.port} reachable")
        if context is not None:
            found.append(_tls_handshake(cfg, context, sock))
        else:
            sock.close()
        found.append(_mqtt_connect(cfg, ctx, context))
    except _Stop as stop:
        return CheckResult("broker", "fail", "; ".join([*found, stop.detail]), stop.fix)
    return CheckResult("broker", worst(statuses), "; ".join(found), "; ".join(fixes))


# -- stages ----------------------------------------------------------------------------------------


def _tls_context(cfg: AgentConfig) -> ssl.SSLContext:
    tls = cfg.sync.tls
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise _Stop(f"cannot load CA file {tls.ca_file}: {_reason(exc)}", "set sync.tls.ca_file to a readable "
                    "PEM file of the CA that signed the broker certificate") from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise _Stop(f"cannot load client certificate {tls.cert_file} / key {tls.key_file}: {_reason(exc)}",
                        "check sync.tls.cert_file and sync.tls.key_file: both PEM, readable by the agent "
                        "user, and the key must belong to the certificate") from None
    return context


def _client_cert_expiry(cfg: AgentConfig) -> tuple[Status, str, str]:
    cert_file = cfg.sync.tls.cert_file
    if cert_file is None:
        return "ok", "", ""
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    except (OSError, ValueError) as exc:
        return "warn", f"cannot read the expiry date of {cert_file}: {exc}", "check sync.tls.cert_file (PEM)"
    now = dt.datetime.now(dt.timezone.utc)
    expires = cert.not_valid_after_utc
    day = expires.strftime("%Y-%m-%d")
    renew = f"renew the store's client certificate ({cert_file}) before it expires and restart the agent"
    if cert.not_valid_before_utc > now:
        return ("fail", f"client certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                "check the system clock (see the clock check) or the certificate's validity dates")
    if expires <= now:
        return "fail", f"client certificate expired on {day}", renew
    days = (expires - now).total_seconds() / 86400
    if days < CERT_WARN_DAYS:
        return "warn", f"client certificate expires on {day} (in {days:.0f} days)", renew
    return "ok", f"client certificate valid until {day}", ""


def _tcp(cfg: AgentConfig, timeout_s: float) -> socket.socket:
    host, port = cfg.sync.host, cfg.sync.port
    try:
        return socket.create_connection((host, port), timeout=timeout_s)
    except socket.gaierror as exc:
        raise _Stop(f"cannot resolve broker host {host!r}: {exc.strerror}",
                    "check sync.broker and the box's DNS (`resolvectl status`, /etc/resolv.conf)") from None
    except TimeoutError:
        raise _Stop(f"no answer from {host}:{port} within {timeout_s:g} s",
                    f"check sync.broker and that the firewall allows outbound TCP to {host}:{port}") from None
    except OSError as exc:
        raise _Stop(f"cannot reach {host}:{port}: {exc.strerror or exc}",
                    f"check sync.broker, that the broker is running and that the network/firewall lets this box "
                    f"reach {host}:{port}") from None


def _tls_handshake(cfg: AgentConfig, context: ssl.SSLContext, sock: socket.socket) -> str:
    host = cfg.sync.host
    try:
        with context.wrap_socket(sock, server_hostname=host) as tls_sock:
            version = tls_sock.version()
    except ssl.SSLCertVerificationError as exc:
        message = exc.verify_message or _reason(exc)
        if "hostname" in message.lower() or "ip address mismatch" in message.lower():
            fix = f"use the name in the broker's certificate in sync.broker (now {host!r})"
        else:
            fix = ("set sync.tls.ca_file to the CA that signed the broker's certificate "
                   "(`openssl s_client -connect HOST:PORT -showcerts` shows the chain)")
        raise _Stop(f"broker certificate verification failed: {message}", fix) from None
    except (ssl.SSLError, OSError) as exc:
        raise _Stop(f"TLS handshake with {host}:{cfg.sync.port} failed: {_reason(exc)}", _TLS_FIX) from None
    verified = "not verified (insecure_skip_verify)" if cfg.sync.tls.insecure_skip_verify else "verified"
    return f"TLS handshake ok ({version}, broker certificate {verified})"


_TLS_FIX = ("check that the port speaks TLS (mqtts://, usually 8883) and, for mutual TLS, that "
            "sync.tls.cert_file is signed by the CA the broker trusts")


def _mqtt_connect(cfg: AgentConfig, ctx: DoctorContext, context: ssl.SSLContext | None) -> str:
    v5 = cfg.sync.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{cfg.mqtt_client_id}-doctor",
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        clean_session=None if v5 else True,
    )
    client.connect_timeout = ctx.timeout_s
    if cfg.sync.username:
        client.username_pw_set(cfg.sync.username, _password(cfg, ctx))
    if context is not None:
        client.tls_set_context(context)
    outcome: dict[str, object] = {}
    errors: list[str] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.setdefault("connack", reason)
    client.on_disconnect = lambda _c, _u, _f, reason, _p: outcome.setdefault("disconnect", reason)
    client.on_log = lambda _c, _u, level, text: errors.append(text) if level >= mqtt.MQTT_LOG_WARNING else None
    try:
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            client.connect(cfg.sync.host, cfg.sync.port, keepalive=cfg.sync.keepalive_s, clean_start=True,
                           properties=props)
        else:
            client.connect(cfg.sync.host, cfg.sync.port, keepalive=cfg.sync.keepalive_s)
        deadline = time.monotonic() + ctx.timeout_s
        while not outcome and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                outcome.setdefault("disconnect", None)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise _Stop(f"MQTT connect failed: {_reason(exc)}", _TLS_FIX if context else _NO_CONNACK_FIX) from None
    finally:
        _close(client, connected="connack" in outcome and not _failed(outcome["connack"]))
    return _connack_result(cfg, outcome, errors, ctx.timeout_s, tls=context is not None)


_NO_CONNACK_FIX = ("check that sync.broker points at an MQTT broker and uses the right scheme "
                   "(mqtt:// usually 1883, mqtts:// usually 8883)")
_CREDENTIALS_FIX = ("check sync.username and the password in sync.password_file (with mutual TLS: the client "
                    "certificate's CN must be the store id), and that the broker's password file and ACL "
                    "(configs/mosquitto/acl-stores.conf) allow this store")


def _connack_result(cfg: AgentConfig, outcome: dict[str, object], errors: list[str], timeout_s: float,
                    *, tls: bool) -> str:
    reason = outcome.get("connack")
    if reason is None:
        seen = f" ({errors[-1]})" if errors else ""
        if "disconnect" in outcome:
            raise _Stop(f"the broker closed the connection before CONNACK{seen}", _closed_fix(cfg, tls=tls))
        raise _Stop(f"no CONNACK within {timeout_s:g} s{seen}", _NO_CONNACK_FIX)
    if _failed(reason):
        raise _Stop(f"broker refused the connection: {reason}", _connack_fix(reason, cfg))
    as_user = f" as {cfg.sync.username!r}" if cfg.sync.username else ""
    return f"MQTT {'5' if cfg.sync.protocol == '5' else '3.1.1'} CONNECT{as_user} accepted (CONNACK: {reason})"


def _close(client: mqtt.Client, *, connected: bool) -> None:
    if connected:  # a polite DISCONNECT, so the broker does not log an unexpected close
        client.disconnect()
        client.loop(timeout=0.05)
    sock = client.socket()
    if sock is not None:
        sock.close()


def _closed_fix(cfg: AgentConfig, *, tls: bool) -> str:
    """Why a broker hangs up before CONNACK: with TLS 1.3 a refused client certificate shows up only here."""
    if not tls:
        return _NO_CONNACK_FIX
    if cfg.sync.tls.cert_file is None:
        return ("the broker probably requires a client certificate (mutual TLS): set sync.tls.cert_file and "
                "sync.tls.key_file to this store's certificate and key")
    return ("the broker probably refused the client certificate: sync.tls.cert_file must be signed by the CA "
            "the broker trusts (its cafile), with CN = the store id; check the broker log")


def _failed(reason: object) -> bool:
    return isinstance(reason, ReasonCode) and reason.is_failure


def _connack_fix(reason: object, cfg: AgentConfig) -> str:
    name = str(reason).lower()
    if "not authorized" in name or "user name or password" in name or "bad authentication" in name:
        return _CREDENTIALS_FIX
    if "client identifier" in name:
        return "set sync.client_id to a value the broker accepts (or leave it empty)"
    if "protocol version" in name:
        return 'the broker does not speak this MQTT version; set sync.protocol = "3.1.1"' if \
            cfg.sync.protocol == "5" else 'set sync.protocol = "5"'
    if "banned" in name:
        return "the broker has banned this client; ask the broker's operator"
    return "the broker is up but refuses connections; check its log (`journalctl -u mosquitto`)"


def _password(cfg: AgentConfig, ctx: DoctorContext) -> str | None:
    path = cfg.sync.password_file
    if path is None:
        return None
    credentials = ctx.env.get("CREDENTIALS_DIRECTORY")
    if not path.is_absolute() and credentials:  # resolve against the doctor's env, not os.environ
        path = Path(credentials) / path
    try:
        return read_secret(path, field="sync.password_file")
    except ConfigError as exc:
        raise _Stop(f"cannot read the MQTT password: {exc}",
                    "create sync.password_file (mode 0600, owned by the agent user) or the systemd credential "
                    "mqtt-password, see docs/install.md") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason} ({exc.strerror or exc})" if exc.strerror else str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return str(exc) or type(exc).__name__
