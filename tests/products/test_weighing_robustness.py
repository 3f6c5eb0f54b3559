"""Bad input never stops the weighing service: a missing tray frame is counted, malformed confirmations are
refused with a reason, and the next weighing still works."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from agent.config.products_models import ProductsConfig
from agent.products.http_api import ConfirmError
from agent.products.rig import SimulatedScale
from agent.products.service import WeighingService
from agent.store import connect, open_store
from sync.outbox import Outbox


def _wait(cond, timeout: float = 8.0) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return bool(cond())


def test_missing_frame_and_bad_confirmations_do_not_stop_the_service(tmp_path: Path, grocery: Path,
                                                                     embedder) -> None:  # noqa: ANN001
    db_path = open_store(tmp_path / "data")
    tray = tmp_path / "tray.jpg"  # does not exist yet: the camera has nothing to show
    cfg = ProductsConfig(cameras=[{"scale": "s1", "url": str(tray)}])
    outbox = Outbox(db_path, store_id="s1", boot_id="b", priority_for=lambda s: 1, connect=connect)
    service = WeighingService(cfg, db_path=db_path, outbox=outbox, model_dir=tmp_path, embedder=embedder)
    stop = threading.Event()
    worker = threading.Thread(target=service.run, args=(stop,), daemon=True)
    worker.start()
    assert service.ready.wait(30)
    try:
        with SimulatedScale(service.on_scale_event, scale="s1") as rig:
            rig.place(0.3)
            assert _wait(lambda: service.counts["no_frame"] == 1)
            assert service.counts["candidates"] == 0 and service.latest("s1") is None

            with pytest.raises(ConfirmError) as err:
                service.confirm({"weighing_id": "", "plu": "4011"})
            assert err.value.status == 400
            with pytest.raises(ConfirmError) as err:
                service.confirm({"weighing_id": "01ABC", "plu": 42})
            assert err.value.status == 400
            service._on_bus_confirm("scale/s1/confirm", {"nonsense": True})  # logged, not raised
            with pytest.raises(ConfirmError) as err:
                service.confirm({"weighing_id": "01UNKNOWN", "plu": None})
            assert err.value.status == 404

            shutil.copy(grocery / "val/Fruit/Kiwi/Kiwi_001.jpg", tray)
            seq = rig.last_seq
            rig.clear()
            assert rig.wait_for("removed", after=seq, timeout=5) is not None
            rig.place(0.25)
            assert _wait(lambda: service.counts["candidates"] == 1)
            payload = service.latest("s1")
            assert payload["candidates"] == []  # empty gallery: no candidates, but a weighing to confirm
            record = service.confirm({"weighing_id": payload["weighing_id"], "plu": "4030"})
            assert record["chosen_rank"] is None and record["learned"]["added"] is True
            assert len(service.recognizer.gallery) == 1
        assert service.counts["errors"] == 0
    finally:
        stop.set()
        worker.join(10)
