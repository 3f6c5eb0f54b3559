"""Label model (types, palettes, ids, positions, links) and font discovery errors."""

from __future__ import annotations

import pytest

from devices.esl import fonts
from devices.esl.model import HW_TYPES, LABEL_TYPES, Label, Link, Planogram, Position, label_type, normalize_mac


def test_label_types_have_palettes_and_known_ap_ids() -> None:
    assert HW_TYPES[0x01].name == "29bwr" and (HW_TYPES[0x01].width, HW_TYPES[0x01].height) == (296, 128)
    assert HW_TYPES[0x00].width == HW_TYPES[0x00].height == 152 and HW_TYPES[0x02].width == 400
    for lt in LABEL_TYPES.values():
        assert lt.palette[0] == (255, 255, 255) and lt.palette[1] == (0, 0, 0)
    assert LABEL_TYPES["29bw"].color_index("accent") == 1  # no accent colour: black
    assert LABEL_TYPES["29bwr"].color_index("red") == 2 and LABEL_TYPES["29bwr"].color_index("on_accent") == 0
    assert LABEL_TYPES["29bwy"].color_index("on_accent") == 1  # black reads on yellow
    with pytest.raises(ValueError, match="unknown colour"):
        LABEL_TYPES["29bwr"].color_index("green")
    with pytest.raises(KeyError, match="known: 154bwr"):
        label_type("13bwr")


def test_labels_normalise_ids_and_validate_types() -> None:
    assert normalize_mac("00:00:02:a1:b2:c3:d4:e5") == "000002A1B2C3D4E5"
    with pytest.raises(ValueError, match="not a MAC"):
        normalize_mac("xyz")
    label = Label("aa-bb-cc-dd-ee-ff", "29bwr", Position("4", 2, 7), fridge_group="dairy-1")
    assert label.mac == "AABBCCDDEEFF" and label.label_type.hw_type == 0x01
    assert label.position.text() == "aisle 4, shelf 2, slot 7"
    with pytest.raises(ValueError, match="unknown label type"):
        Label("AABBCCDDEEFF", "99x")
    plan = Planogram()
    plan.add(label, "4011")
    plan.add(Label("AABBCCDDEE00", "154bwr"), "4011", template="compact")
    plan.add(Label("AABBCCDDEE01", "42bwr"))
    assert sorted(lbl.mac for lbl in plan.labels_of("4011")) == ["AABBCCDDEE00", "AABBCCDDEEFF"]
    assert plan.links["AABBCCDDEE00"] == Link("aabbccddee00", "4011", "compact")


def test_a_missing_font_names_the_files_dirs_and_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(fonts.FONT_FILES, "cjk", ("NoSuchFont.ttc",))
    monkeypatch.setenv(fonts.FONT_DIR_ENV, str(tmp_path))
    fonts.font_path.cache_clear()
    try:
        with pytest.raises(fonts.FontError) as info:
            fonts.font_path("cjk")
        message = str(info.value)
        assert "NoSuchFont.ttc" in message and str(tmp_path) in message and "fonts-wqy-microhei" in message
    finally:
        fonts.font_path.cache_clear()


def test_the_font_dir_env_is_searched_first(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    real = fonts.font_path("sans")
    (tmp_path / real.name).write_bytes(real.read_bytes())
    monkeypatch.setenv(fonts.FONT_DIR_ENV, str(tmp_path))
    fonts.font_path.cache_clear()
    try:
        assert fonts.font_path("sans") == tmp_path / real.name
    finally:
        fonts.font_path.cache_clear()
