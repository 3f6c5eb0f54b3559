"""``store-agent prices import|list|show`` against a real store (CliRunner in-process, real SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from agent.cli.main import app

runner = CliRunner()


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(f'store_id = "s1"\ndata_dir = "{tmp_path / "data"}"\n\n[sync]\nenabled = false\n')
    return path


def test_import_then_list_and_show(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    csv = tmp_path / "prices.csv"
    csv.write_text("plu,name,price,unit,promo_price,promo_start,promo_end,barcode,weight_min_kg,weight_max_kg\n"
                   "4011,Bananas,\"1,99\",kg,,,,,,\n"
                   "20,苹果 Apples,2.5,piece,1.99,2020-01-01,2099-01-01,400638133393,0.15,0.3\n", encoding="utf-8")
    res = runner.invoke(app, ["prices", "import", str(csv), "-c", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["imported"] == 2
    res = runner.invoke(app, ["prices", "list", "-c", str(cfg), "--json"])
    listed = {a["plu"]: a for a in json.loads(res.stdout)["articles"]}
    assert listed["4011"]["price"] == 1.99 and listed["20"]["price_now"] == 1.99
    assert listed["20"]["barcode"] == "4006381333931" and listed["20"]["typical_weight_kg"] == [0.15, 0.3]
    res = runner.invoke(app, ["prices", "show", "20", "-c", str(cfg)])
    assert res.exit_code == 0 and "苹果 Apples" in res.stdout and "(promo)" in res.stdout


def test_a_bad_row_names_line_and_field_and_imports_nothing(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    csv = tmp_path / "bad.csv"
    csv.write_text("plu,name,price,unit\n1,Ok,1.0,kg\n2,Bad,abc,kg\n")
    res = runner.invoke(app, ["prices", "import", str(csv), "-c", str(cfg)])
    assert res.exit_code == 2 and "line 3.price" in res.output
    res = runner.invoke(app, ["prices", "list", "-c", str(cfg), "--json"])
    assert json.loads(res.stdout)["articles"] == []
    res = runner.invoke(app, ["prices", "show", "1", "-c", str(cfg)])
    assert res.exit_code == 1 and "unknown PLU" in res.output
