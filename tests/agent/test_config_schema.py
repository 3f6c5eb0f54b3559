"""The JSON schema (``store-agent config schema``) bounds every number (ranges or a fixed set of values), and
loading refuses what is out of range."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config import ConfigError, config_schema, load_config

_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "const"}


def _numeric_unbounded(prop: dict[str, Any]) -> bool:
    variants = prop.get("anyOf", [prop])
    numeric = [v for v in variants if v.get("type") in ("integer", "number")]
    if prop.get("type") == "array" or any(v.get("type") == "array" for v in variants):
        items = [v.get("items", {}) for v in variants if v.get("type") == "array"]
        items += [i for v in variants for i in v.get("prefixItems", [])]
        return any(_numeric_unbounded(i) for i in items if isinstance(i, dict))
    return bool(numeric) and not any(_BOUNDS & set(v) for v in numeric)


def test_every_numeric_field_has_bounds() -> None:
    schema = config_schema()
    models = {"AgentConfig": schema, **schema["$defs"]}
    unbounded = [f"{model}.{name}" for model, definition in models.items()
                 for name, prop in definition.get("properties", {}).items() if _numeric_unbounded(prop)]
    assert unbounded == []


def test_the_walk_sees_unbounded_numbers() -> None:
    assert _numeric_unbounded({"type": "number"})
    assert _numeric_unbounded({"anyOf": [{"type": "integer"}, {"type": "null"}]})
    assert _numeric_unbounded({"type": "array", "items": {"type": "number"}})
    assert not _numeric_unbounded({"type": "integer", "minimum": 0})
    assert not _numeric_unbounded({"anyOf": [{"enum": [7, 8], "type": "integer"}, {"type": "null"}]})


def test_out_of_range_values_are_refused_with_their_path() -> None:
    for overlay, where in (({"identity": {"embedder_std": [0.5, 0.0, 0.5]}}, "identity.embedder_std"),
                           ({"identity": {"embedder_mean": [0.5, 1.5, 0.5]}}, "identity.embedder_mean"),
                           ({"scales": [{"name": "s", "port": "/dev/x", "protocol": "mt-sics",
                                         "tray_roi": [0.0, 0.0, 1.0, 1.2]}]}, "scales[0].tray_roi"),
                           ({"products": {"cameras": [{"scale": "s", "url": "/dev/video0",
                                                       "roi": [-0.1, 0.0, 0.5, 0.5]}]}}, "products.cameras[0].roi")):
        with pytest.raises(ConfigError) as info:
            load_config(None, env={}, overlay=overlay)
        assert any(p.path.startswith(where) for p in info.value.problems), (where, info.value.problems)
