"""The wire envelope and topic names (docs/architecture.md, "Topics" and "Envelope")."""

from __future__ import annotations

import json

import pytest

from sync.envelope import Envelope, Topics, dumps, new_msg_id, parse_up_topic

pytestmark = pytest.mark.timeout(30)


def _envelope(**kw: object) -> Envelope:
    fields: dict[str, object] = {
        "msg_id": new_msg_id(), "store_id": "s1", "boot_id": "boot-1", "stream": "telemetry/health",
        "seq": 7, "event_ts": 1_700_000_000.25, "body": {"cpu": 0.5, "name": "caisse é ✓", "n": [1, 2]},
    }
    fields.update(kw)
    return Envelope(**fields)  # type: ignore[arg-type]


def _wire(**override: object) -> dict[str, object]:
    data = _envelope().to_dict()
    data.update(override)
    return data


def test_round_trip_keeps_every_field() -> None:
    env = _envelope(expires_at=1_700_003_600.0, historical=True, schema="health/1")
    back = Envelope.from_json(env.to_json())
    assert back == env
    assert back.to_dict() == env.to_dict()
    # bytes payloads (what paho hands over) parse the same way
    assert Envelope.from_json(env.to_json().encode("utf-8")) == env


def test_wire_form_is_compact_utf8_json_with_every_field() -> None:
    env = _envelope()
    text = env.to_json()
    assert ", " not in text and ": " not in text
    assert "é" in text  # not \u-escaped
    assert set(json.loads(text)) == {"v", "msg_id", "store_id", "boot_id", "stream", "seq", "event_ts",
                                     "expires_at", "historical", "schema", "body"}
    assert json.loads(text)["v"] == 1


def test_defaults_when_optional_fields_are_absent() -> None:
    data = _wire()
    for optional in ("v", "expires_at", "historical", "schema"):
        del data[optional]
    env = Envelope.from_json(dumps(data))
    assert (env.v, env.expires_at, env.historical, env.schema) == (1, None, False, None)


def test_unknown_fields_are_kept_as_extra_and_ignored_by_equality() -> None:
    plain = _wire()
    env = Envelope.from_json(dumps({**plain, "future_field": {"x": 1}}))
    assert env.extra == {"future_field": {"x": 1}}
    assert env == Envelope.from_json(dumps(plain))
    assert "future_field" not in env.to_dict()


def test_msg_ids_are_unique_and_sortable_by_creation() -> None:
    ids = [new_msg_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 26 for i in ids)
    assert [i[:10] for i in ids] == sorted(i[:10] for i in ids)  # the time part never goes backwards


@pytest.mark.parametrize("payload", [b"", b"not json", b"{", b"\xff\xfe\x00", b"{'single': 1}"])
def test_from_json_rejects_non_json(payload: bytes) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        Envelope.from_json(payload)


@pytest.mark.parametrize("payload", ["[]", "[1,2]", "1", '"text"', "null", "true"])
def test_from_json_rejects_non_objects(payload: str) -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        Envelope.from_json(payload)


@pytest.mark.parametrize("missing", ["msg_id", "store_id", "boot_id", "stream", "seq", "event_ts", "body"])
def test_from_json_rejects_missing_required_field(missing: str) -> None:
    data = _wire()
    del data[missing]
    with pytest.raises(ValueError, match=f"lacks {missing}"):
        Envelope.from_json(dumps(data))


def test_from_json_names_every_missing_field() -> None:
    with pytest.raises(ValueError) as info:
        Envelope.from_json("{}")
    for name in ("msg_id", "store_id", "boot_id", "stream", "seq", "event_ts", "body"):
        assert name in str(info.value)


@pytest.mark.parametrize("seq", [-1, -100, True, False, 1.5, "3", None, [1]])
def test_from_json_rejects_bad_seq(seq: object) -> None:
    with pytest.raises(ValueError, match="seq must be a non-negative integer"):
        Envelope.from_json(dumps(_wire(seq=seq)))


def test_seq_zero_and_huge_are_accepted() -> None:
    assert Envelope.from_json(dumps(_wire(seq=0))).seq == 0
    assert Envelope.from_json(dumps(_wire(seq=2**62))).seq == 2**62  # never wraps


@pytest.mark.parametrize("override", [{"event_ts": None}, {"event_ts": [1]}, {"v": None}])
def test_from_json_rejects_mistyped_numbers_with_value_error(override: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Envelope.from_json(dumps(_wire(**override)))


def test_topics_of_a_store() -> None:
    t = Topics("store-042")
    assert t.root == "stores/store-042"
    assert t.state == "stores/store-042/up/state"
    assert t.up("telemetry/health") == "stores/store-042/up/telemetry/health"
    assert t.cmd_result == "stores/store-042/up/cmd-result"
    assert t.cmd_result == t.up("cmd-result")
    assert t.cmd("config.update") == "stores/store-042/down/cmd/config.update"
    assert t.cmd_filter == "stores/store-042/down/cmd/+"
    assert t.desired == "stores/store-042/down/desired"
    assert t.ack == "stores/store-042/down/ack"


@pytest.mark.parametrize(("topic", "expected"), [
    ("stores/s1/up/telemetry/health", ("s1", "telemetry/health")),
    ("stores/s1/up/cmd-result", ("s1", "cmd-result")),
    ("stores/s1/up/state", ("s1", "state")),
    ("stores/s-2/up/events/gap/cam/1", ("s-2", "events/gap/cam/1")),
])
def test_parse_up_topic_good(topic: str, expected: tuple[str, str]) -> None:
    assert parse_up_topic(topic) == expected
    sid, stream = expected
    assert parse_up_topic(Topics(sid).up(stream)) == expected  # inverse of Topics.up


@pytest.mark.parametrize("topic", [
    "", "stores", "stores/s1", "stores/s1/up", "stores/s1/up/", "stores//up/x", "stores/s1/down/cmd/ping",
    "store/s1/up/x", "Stores/s1/up/x", "other/s1/up/x", "/stores/s1/up/x", "stores/s1/UP/x",
])
def test_parse_up_topic_bad(topic: str) -> None:
    assert parse_up_topic(topic) is None
