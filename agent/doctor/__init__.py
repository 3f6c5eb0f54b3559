"""``store-agent doctor``: check that this box can run the agent, and say how to fix what cannot.

Typical use::

    from agent.doctor import exit_code, render_text, run_doctor

    results = run_doctor(Path("/etc/store-agent/agent.toml"))
    print(render_text(results))
    raise SystemExit(exit_code(results))      # 1 if any check failed

Adding a check (e.g. cameras) is one line in the module that owns it::

    register_check(check_cameras)             # check_cameras(ctx: DoctorContext) -> CheckResult
"""

from agent.doctor.broker_check import check_broker
from agent.doctor.capability_checks import check_label_fonts, check_local_bus, check_products
from agent.doctor.checks import (
    check_clock,
    check_config,
    check_data_dir,
    check_disk,
    check_models,
    check_serial_ports,
    check_signing_keys,
)
from agent.doctor.core import (
    Check,
    CheckResult,
    DoctorContext,
    register_check,
    registered_checks,
    run_doctor,
    unregister_check,
)
from agent.doctor.esl_check import check_esl_gateways
from agent.doctor.render import exit_code, render_text, results_to_json
from agent.identity.doctor_check import check_identity

# Built-in checks, in the order they run and are shown.
register_check(check_config, needs_config=False)
register_check(check_data_dir)
register_check(check_disk)
register_check(check_clock, needs_config=False)
register_check(check_broker)
register_check(check_serial_ports)
register_check(check_signing_keys)
register_check(check_models)
register_check(check_identity)
register_check(check_esl_gateways)
register_check(check_label_fonts)
register_check(check_products)
register_check(check_local_bus)

__all__ = [
    "Check",
    "CheckResult",
    "DoctorContext",
    "exit_code",
    "register_check",
    "registered_checks",
    "render_text",
    "results_to_json",
    "run_doctor",
    "unregister_check",
]
