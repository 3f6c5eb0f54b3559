"""Templates: every shipped one loads for its label type; malformed ones fail with the field named;
``store-agent esl preview`` writes the PNG or explains what is wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli.main import app
from devices.esl.model import LABEL_TYPES
from devices.esl.templates import TemplateError, available_templates, load_template, parse_template

GOOD = {"name": "t", "size": [296, 128], "element": [
    {"type": "text", "box": [0, 0, 296, 40], "text": "{name}", "size": 20},
    {"type": "price", "box": [100, 40, 196, 60]},
    {"type": "qr", "box": [0, 60, 60, 60], "data": "https://shop.example/p/{plu}"},
]}


def with_change(path: str, value: object) -> dict:
    data = copy.deepcopy(GOOD)
    target = data
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


DELETE = object()


@pytest.mark.parametrize(("path", "value", "needle"), [
    ("element.0.box", [0, 0, 296], "element[0].box"),
    ("element.0.box", [0, 0, 400, 40], "element[0].box: [0, 0, 400, 40] reaches outside"),
    ("element.0.box", [0, 0, -5, 40], "element[0].box"),
    ("element.0.text", "{name} {price_per_pound}", "element[0].text: unknown placeholder {price_per_pound}"),
    ("element.0.text", "{name", "element[0].text: bad placeholder"),
    ("element.0.text", DELETE, "element[0].text: required"),
    ("element.0.colour", "red", "element[0].colour: unknown key"),
    ("element.0.color", "green", "element[0].color: must be one of"),
    ("element.0.font", "comic", "element[0].font"),
    ("element.0.size", 1000, "element[0].size"),
    ("element.0.size", "big", "element[0].size"),
    ("element.0.type", "sparkle", "element[0].type"),
    ("element.1.when", "sometimes", "element[1].when"),
    ("element.2.data", DELETE, "element[2].data: required"),
    ("size", [296], "size:"),
    ("name", "", "name:"),
    ("element", [], "element: at least one"),
    ("margins", 4, "margins: unknown key"),
])
def test_malformed_templates_name_the_field(path: str, value: object, needle: str) -> None:
    with pytest.raises(TemplateError) as info:
        parse_template(with_change(path, value), source="bad.toml")
    assert needle in str(info.value) and str(info.value).startswith("bad.toml")


def test_the_good_template_parses() -> None:
    template = parse_template(GOOD)
    assert [e.kind for e in template.elements] == ["text", "price", "qr"]


def test_every_shipped_template_loads_for_every_type_of_its_size() -> None:
    loaded = 0
    for lt in LABEL_TYPES.values():
        template = load_template(lt.default_template, lt)
        assert template.size == (lt.width, lt.height)
        loaded += 1
    assert loaded == len(LABEL_TYPES) and len(available_templates()) >= 3


def test_template_files_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[[element]\n')
    with pytest.raises(TemplateError, match="not valid TOML"):
        load_template(broken)
    wrong_size = tmp_path / "small.json"
    wrong_size.write_text(json.dumps({**GOOD, "size": [152, 152], "element": [GOOD["element"][1] | {
        "box": [0, 0, 152, 60]}]}))
    with pytest.raises(TemplateError, match="size: template is for 152x152, the label is 296x128"):
        load_template(wrong_size, LABEL_TYPES["29bwr"])
    with pytest.raises(TemplateError, match="no template 'fancy' for 296x128"):
        load_template("fancy", LABEL_TYPES["29bwr"])
    image = tmp_path / "img.toml"
    image.write_text('name = "x"\n[[element]]\ntype = "image"\nbox = [0, 0, 10, 10]\npath = "nope.png"\n')
    with pytest.raises(TemplateError, match=r"element\[0\]\.path: image file .*nope.png does not exist"):
        load_template(image)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n\n[sync]\nenabled = false\n')
    return path


def test_esl_preview_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = _config(tmp_path)
    csv = tmp_path / "p.csv"
    csv.write_text("plu,name,price,unit,barcode\n4011,Bananas 香蕉,1.99,kg,4006381333931\n", encoding="utf-8")
    assert runner.invoke(app, ["prices", "import", str(csv), "-c", str(cfg)]).exit_code == 0
    out = tmp_path / "label.png"
    res = runner.invoke(app, ["esl", "preview", "4011", "--label-type", "42bwr", "-o", str(out), "-c", str(cfg),
                              "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    image = Image.open(out)
    assert image.size == (400, 300) and info["size"] == [400, 300] and len(info["hash"]) == 64
    assert set(np.unique(np.asarray(image)).tolist()) <= {0, 1, 2}
    res = runner.invoke(app, ["esl", "preview", "999", "--label-type", "29bwr", "-o", str(out), "-c", str(cfg)])
    assert res.exit_code == 1 and "unknown PLU '999'" in res.output
    res = runner.invoke(app, ["esl", "preview", "4011", "--label-type", "99x", "-o", str(out), "-c", str(cfg)])
    assert res.exit_code == 2 and "unknown label type" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[element]]\ntype = "text"\nbox = [0, 0, 10, 10]\ntext = "{nam}"\n')
    res = runner.invoke(app, ["esl", "preview", "4011", "--label-type", "29bwr", "-o", str(out), "-c", str(cfg),
                              "--template", str(bad)])
    assert res.exit_code == 2 and "element[0].text: unknown placeholder {nam}" in res.output
