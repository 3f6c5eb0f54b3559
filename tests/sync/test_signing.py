"""Ed25519 signatures over canonical JSON, and the key files (docs/architecture.md, "Commands")."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sync.signing import (
    SignatureError,
    canonical_bytes,
    generate_keypair,
    load_private_key,
    load_public_key,
    public_key_b64,
    sign,
    verify,
    write_private_key,
)

pytestmark = pytest.mark.timeout(30)

KEY_ID = "cloud-1"


@pytest.fixture(scope="module")
def keypair() -> tuple[object, dict[str, Ed25519PublicKey]]:
    key, pub = generate_keypair()
    return key, {KEY_ID: load_public_key(pub)}


def _command() -> dict[str, object]:
    return {"v": 1, "cmd_id": "01HZZZ", "kind": "config.update", "store_id": "s1", "issued_at": 1.5,
            "expires_at": 3601.5, "version": 3, "resource": "config",
            "body": {"config": {"health": {"interval_s": 30}}, "note": "prix réduit ✓", "list": [3, 1, 2]}}


def _reason(obj: dict[str, object], trusted: dict[str, Ed25519PublicKey]) -> str:
    with pytest.raises(SignatureError) as info:
        verify(obj, trusted)
    return info.value.reason


def test_sign_then_verify_round_trip(keypair) -> None:  # noqa: ANN001
    key, trusted = keypair
    cmd = _command()
    signed = sign(cmd, key, KEY_ID)
    assert signed["key_id"] == KEY_ID
    assert len(base64.b64decode(signed["sig"], validate=True)) == 64
    assert "sig" not in cmd and "key_id" not in cmd  # the input is not modified
    assert verify(signed, trusted) == KEY_ID
    # and through the wire: JSON text → dict → verify
    assert verify(json.loads(json.dumps(signed)), trusted) == KEY_ID


def test_resigning_replaces_an_old_signature(keypair) -> None:  # noqa: ANN001
    key, trusted = keypair
    signed = sign({**_command(), "sig": "garbage"}, key, KEY_ID)
    assert verify(signed, trusted) == KEY_ID


@pytest.mark.parametrize("tamper", [
    lambda c: c.update(store_id="s2"),
    lambda c: c.update(version=4),
    lambda c: c.update(expires_at=c["expires_at"] + 1),
    lambda c: c["body"]["config"]["health"].update(interval_s=31),
    lambda c: c["body"]["list"].reverse(),
    lambda c: c.update(extra_field=True),  # adding a field after signing breaks the signature
    lambda c: c.pop("resource"),
    lambda c: c.update(key_id=KEY_ID + "x") or None,
], ids=["store", "version", "expiry", "nested-body", "list-order", "added-field", "dropped-field", "key-id"])
def test_tampered_command_is_rejected(keypair, tamper) -> None:  # noqa: ANN001
    key, trusted = keypair
    signed = json.loads(json.dumps(sign(_command(), key, KEY_ID)))
    tamper(signed)
    reason = _reason(signed, trusted)
    # changing the key id makes it an unknown key; every other change breaks the signature
    assert reason == ("untrusted_key" if signed["key_id"] != KEY_ID else "bad_signature")


def test_tampered_body_is_bad_signature_even_for_a_trusted_key_id(keypair) -> None:  # noqa: ANN001
    key, trusted = keypair
    signed = sign(_command(), key, KEY_ID)
    signed["body"] = {"config": {"sync": {"broker": "mqtt://evil:1883"}}}
    assert _reason(signed, trusted) == "bad_signature"


def test_signature_of_another_key_is_bad_signature(keypair) -> None:  # noqa: ANN001
    _, trusted = keypair
    other, _ = generate_keypair()
    forged = sign(_command(), other, KEY_ID)  # claims the trusted key id
    assert _reason(forged, trusted) == "bad_signature"


def test_unknown_key_id_is_untrusted(keypair) -> None:  # noqa: ANN001
    key, trusted = keypair
    assert _reason(sign(_command(), key, "someone-else"), trusted) == "untrusted_key"
    assert _reason(sign(_command(), key, KEY_ID), {}) == "untrusted_key"
    signed = sign(_command(), key, KEY_ID)
    signed["key_id"] = 7  # not even a string
    assert _reason(signed, trusted) == "untrusted_key"


@pytest.mark.parametrize("sig", [None, "", 0, ["abc"], {"s": 1}])
def test_missing_or_empty_signature_is_unsigned(keypair, sig) -> None:  # noqa: ANN001
    key, trusted = keypair
    signed = sign(_command(), key, KEY_ID)
    if sig is None:
        del signed["sig"]
    else:
        signed["sig"] = sig
    assert _reason(signed, trusted) == "unsigned"


@pytest.mark.parametrize("sig", ["not base64!", "AAA", "====", "QUJD\n", "é"])
def test_non_base64_signature_is_bad_signature(keypair, sig: str) -> None:  # noqa: ANN001
    key, trusted = keypair
    signed = sign(_command(), key, KEY_ID)
    signed["sig"] = sig
    with pytest.raises(SignatureError) as info:
        verify(signed, trusted)
    assert info.value.reason == "bad_signature"
    assert isinstance(info.value, ValueError)


def test_truncated_signature_is_bad_signature(keypair) -> None:  # noqa: ANN001
    key, trusted = keypair
    signed = sign(_command(), key, KEY_ID)
    signed["sig"] = base64.b64encode(base64.b64decode(signed["sig"])[:-1]).decode()
    assert _reason(signed, trusted) == "bad_signature"


def test_canonical_form_ignores_key_order_and_sig() -> None:
    cmd = _command()
    reordered = dict(reversed(list(cmd.items())))
    reordered["body"] = dict(reversed(list(cmd["body"].items())))  # type: ignore[call-overload]
    assert list(reordered) != list(cmd)
    assert canonical_bytes(reordered) == canonical_bytes(cmd)
    assert canonical_bytes({**cmd, "sig": "anything"}) == canonical_bytes(cmd)
    text = canonical_bytes(cmd).decode("utf-8")
    assert text == json.dumps({k: cmd[k] for k in sorted(cmd)}, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False)
    assert " " not in text.replace("prix réduit ✓", "")
    assert "prix réduit ✓" in text  # UTF-8, not \u escapes


def test_signature_survives_reordering_and_unicode_escaping_on_the_wire(keypair) -> None:  # noqa: ANN001
    key, trusted = keypair
    signed = sign(_command(), key, KEY_ID)
    as_utf8 = json.dumps(dict(reversed(list(signed.items()))), ensure_ascii=False, indent=2)
    as_escaped = json.dumps(signed, ensure_ascii=True)
    assert "\\u00e9" in as_escaped and "é" in as_utf8
    for wire in (as_utf8, as_escaped):
        parsed = json.loads(wire)
        assert canonical_bytes(parsed) == canonical_bytes(signed)
        assert verify(parsed, trusted) == KEY_ID


def test_canonical_form_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"x": float("nan")})


def test_private_key_file_is_owner_only_and_loads_back(tmp_path: Path, keypair) -> None:  # noqa: ANN001
    _, trusted = keypair
    key, pub = generate_keypair()
    path = tmp_path / "cloud.key"
    write_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_private_key(path)
    assert public_key_b64(loaded) == pub
    assert verify(sign(_command(), loaded, "k2"), {"k2": load_public_key(pub)}) == "k2"


def test_overwriting_a_readable_key_file_makes_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "cloud.key"
    path.write_text("old")
    os.chmod(path, 0o644)
    key, _ = generate_keypair()
    write_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_load_private_key_rejects_non_ed25519(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.key"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="not an Ed25519 private key"):
        load_private_key(path)


def test_public_key_b64_is_32_raw_bytes_and_loads() -> None:
    key, pub = generate_keypair()
    assert len(base64.b64decode(pub)) == 32
    assert public_key_b64(key) == pub
    assert isinstance(load_public_key(pub + "\n"), Ed25519PublicKey)  # trailing newline of a .pub file


@pytest.mark.parametrize("n", [0, 16, 31, 33, 64])
def test_load_public_key_rejects_wrong_length(n: int) -> None:
    with pytest.raises(ValueError, match=f"32 bytes, got {n}"):
        load_public_key(base64.b64encode(b"\x01" * n).decode())


@pytest.mark.parametrize("text", ["not base64 at all!", "QUJD*"])
def test_load_public_key_rejects_non_base64(text: str) -> None:
    with pytest.raises(ValueError):
        load_public_key(text)
