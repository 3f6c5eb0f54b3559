"""``store-agent doctor`` check ``esl_gateways``: every configured shelf-label gateway answers over HTTP."""

from __future__ import annotations

from agent.doctor.core import CheckResult, DoctorContext, Status, worst
from devices.esl.backends import build_backend
from devices.esl.backends.base import GatewayError

_FIX = {
    "unreachable": "check that the gateway is powered and on the network (`curl {url}/sysinfo` for an "
                   "OpenEPaperLink AP) or correct esl_gateways[{index}].url",
    "busy": "the gateway is busy (starting up or updating); run the doctor again in a minute",
    "protocol": "esl_gateways[{index}].url does not point at a {backend} gateway: correct the URL or the backend",
}
_DEFAULT_FIX = "check the gateway's own log; correct esl_gateways[{index}].url or .backend"


def check_esl_gateways(ctx: DoctorContext) -> CheckResult:
    """Each ``[[esl_gateways]]`` entry answers its backend's status request within the doctor's timeout
    (a busy gateway warns; unreachable, refusing or not-a-gateway fails)."""
    gateways = ctx.cfg.esl_gateways
    if not gateways:
        return CheckResult("esl_gateways", "ok", "no shelf-label gateways configured")
    lines: list[str] = []
    fixes: list[str] = []
    statuses: list[Status] = []
    for index, gw in enumerate(gateways):
        # The gateway's own request timeout, capped by the doctor's so one dead gateway cannot stall the doctor.
        timeout = min(gw.request_timeout_s, ctx.timeout_s)
        backend = build_backend(gw.backend, gw.url, timeout_s=timeout)
        try:
            what = backend.probe()
        except GatewayError as exc:
            statuses.append("warn" if exc.reason == "busy" else "fail")
            lines.append(f"{gw.name} ({gw.backend}, {gw.url}): {exc.reason}: {exc.message}")
            fixes.append(_FIX.get(exc.reason, _DEFAULT_FIX).format(url=gw.url, index=index, backend=gw.backend))
        else:
            statuses.append("ok")
            lines.append(f"{gw.name} ({gw.backend}, {gw.url}): {what}")
        finally:
            backend.close()
    return CheckResult("esl_gateways", worst(statuses), "\n".join(lines), "; ".join(dict.fromkeys(fixes)))
