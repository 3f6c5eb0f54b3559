"""The doctor's checks of what the capabilities need besides devices and models: the local bus broker
(``local_bus``), the fonts shelf labels are drawn with (``label_fonts``) and the product recogniser's projection
head (``products``). Each is ``ok`` when its capability is not configured."""

from __future__ import annotations

import socket

from agent.config.sync_models import parse_broker_url
from agent.doctor.core import CheckResult, DoctorContext
from agent.products.runtime import effective_products_config
from devices.esl.fonts import FONT_FILES, FontError, font_path
from models.embedders import load_head

#: Fonts every label template needs (Latin text, prices, barcodes' digits); ``cjk`` only for CJK names.
REQUIRED_FONTS = ("sans", "sans-bold", "mono")


def check_local_bus(ctx: DoctorContext) -> CheckResult:
    """With ``[local_bus] enabled``: the local broker accepts a TCP connection (screens and staff alerts
    go through it)."""
    bus = ctx.cfg.local_bus
    if not bus.enabled:
        return CheckResult("local_bus", "ok", "local bus off ([local_bus] enabled = false)")
    address = parse_broker_url(bus.broker)
    try:
        with socket.create_connection((address.host, address.port), timeout=ctx.timeout_s):
            pass
    except OSError as exc:
        return CheckResult("local_bus", "fail", f"local broker {bus.broker} is not reachable: "
                           f"{exc.strerror or exc}", "start the store's broker on this box (`apt-get install "
                           "mosquitto && systemctl enable --now mosquitto`), correct local_bus.broker, or set "
                           "local_bus.enabled = false")
    return CheckResult("local_bus", "ok", f"local broker {bus.broker} reachable; topics under "
                       f"{ctx.cfg.local_topic_prefix}/")


def check_label_fonts(ctx: DoctorContext) -> CheckResult:
    """With shelf-label gateways configured: the label fonts are installed (a missing CJK font only warns)."""
    if not ctx.cfg.esl_gateways:
        return CheckResult("label_fonts", "ok", "no shelf-label gateways configured")
    found: list[str] = []
    missing: dict[str, str] = {}
    for name in FONT_FILES:
        try:
            # uncached: the doctor reports what is installed now
            found.append(f"{name}={font_path.__wrapped__(name).name}")
        except FontError as exc:
            missing[name] = str(exc)
    if not missing:
        return CheckResult("label_fonts", "ok", ", ".join(found))
    status = "fail" if any(name in missing for name in REQUIRED_FONTS) else "warn"
    packages = "fonts-dejavu-core fonts-wqy-microhei"
    return CheckResult("label_fonts", status, "\n".join(missing.values()),
                       f"apt-get install {packages} (or put the font files in $STORE_AGENT_FONT_DIR)")


def check_products(ctx: DoctorContext) -> CheckResult:
    """With a tray camera for a scale: the configured projection head loads (shipped heads are sha256-checked)."""
    products = effective_products_config(ctx.cfg)
    if not (products.enabled and products.cameras):
        return CheckResult("products", "ok", "no scale with a tray camera (product recognition idle)")
    scales = ", ".join(c.scale for c in products.cameras)
    if not products.head:
        return CheckResult("products", "ok", f"tray cameras for {scales}; no projection head")
    try:
        head = load_head(products.head)
    except Exception as exc:  # noqa: BLE001 - missing file, bad npz, sha256 mismatch: all reported
        return CheckResult("products", "fail", f"projection head {products.head!r} does not load: "
                           f"{type(exc).__name__}: {exc}", "set products.head to a shipped head "
                           "(grocery_wccn_lda) or an .npz from scripts/train_product_head.py, or '' for none; "
                           "reinstall the agent if a shipped head fails its sha256")
    return CheckResult("products", "ok", f"tray cameras for {scales}; projection head {products.head} "
                       f"({head.dim_in}→{head.dim_out})")
