"""The doctor's local checks: config, data directory and database, disk, clock, serial ports,
command-signing keys and installed models. (The broker check lives in ``broker_check.py``.)"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from pathlib import Path

from agent.doctor.core import CheckResult, DoctorContext
from agent.store import StoreError, open_store
from models.registry import REGISTRY, pull_hint, verify_installed

#: A clock before this year means it was never set (no RTC battery, no NTP yet).
MIN_PLAUSIBLE_YEAR = 2025
DIALOUT_FIX = ("add the agent's user to the dialout group (`usermod -aG dialout store-agent`; the systemd unit "
               "sets SupplementaryGroups=dialout) or fix the device's permissions with a udev rule")


# -- config ----------------------------------------------------------------------------------------


def check_config(ctx: DoctorContext) -> CheckResult:
    """The config file loads; every problem is listed with its line."""
    if ctx.config_error is None:
        return CheckResult("config", "ok", f"{ctx.config_path} is valid")
    problems = ctx.config_error.problems or []
    lines = [p.format(str(ctx.config_path) if p.line is not None else None) for p in problems]
    lines = lines or [str(ctx.config_error)]
    count = f"{len(lines)} problem{'s' if len(lines) != 1 else ''}"
    if not ctx.config_path.exists():
        fix = f"copy configs/agent.example.toml to {ctx.config_path} and edit it, or pass --config FILE"
    else:
        fix = f"run `store-agent config validate {ctx.config_path}` and correct the listed keys"
    return CheckResult("config", "fail", "\n".join([f"{ctx.config_path}: {count}", *lines]), fix)


# -- data_dir and database -------------------------------------------------------------------------


def check_data_dir(ctx: DoctorContext) -> CheckResult:
    """``data_dir`` exists (or can be created) and is writable; the database opens and is intact."""
    data_dir = ctx.cfg.data_dir
    if not data_dir.exists():
        problem = _why_not_creatable(data_dir)
        if problem:
            return CheckResult("data_dir", "fail", f"data_dir {data_dir} does not exist and cannot be created: "
                               f"{problem}", "set data_dir to a writable directory (default /var/lib/store-agent)")
        return CheckResult("data_dir", "ok", f"data_dir {data_dir} does not exist yet; the agent can create it "
                           "at first start")
    if not data_dir.is_dir():
        return CheckResult("data_dir", "fail", f"data_dir {data_dir} is not a directory",
                           "set data_dir to a directory (default /var/lib/store-agent)")
    try:  # a real write, which also catches read-only file systems
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return CheckResult("data_dir", "fail", f"data_dir {data_dir} is not writable: {exc.strerror}",
                           f"`chown -R store-agent:store-agent {data_dir}` or set data_dir to a writable directory")
    db = ctx.cfg.db_path
    if not db.exists():
        # Creating it here could leave a root-owned database the service user cannot write.
        return CheckResult("data_dir", "ok", f"data_dir {data_dir} is writable; {db.name} is not created yet "
                           "(the agent creates it at first start)")
    return _check_database(data_dir, db)


def _why_not_creatable(path: Path) -> str:
    """Why ``mkdir -p path`` would fail, or "" if it would work (nothing is created)."""
    ancestor = path
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            return "no existing parent directory"
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable by this user"
    return ""


def _check_database(data_dir: Path, db: Path) -> CheckResult:
    try:
        open_store(data_dir, filename=db.name)  # applies pending migrations; refuses a schema newer than this agent
    except (StoreError, sqlite3.Error, OSError) as exc:
        return CheckResult("data_dir", "fail", f"database {db} does not open: {exc}", _db_fix(db))
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return CheckResult("data_dir", "fail", f"integrity check of {db} failed: {exc}", _db_fix(db))
    if rows != ["ok"]:
        shown = "; ".join(rows[:5]) + (f" (+{len(rows) - 5} more)" if len(rows) > 5 else "")
        return CheckResult("data_dir", "fail", f"database {db} is damaged: {shown}", _db_fix(db))
    size_mb = db.stat().st_size / 2**20
    return CheckResult("data_dir", "ok", f"data_dir {data_dir} is writable; {db.name} ({size_mb:.1f} MB) "
                       "passes the integrity check")


def _db_fix(db: Path) -> str:
    return (f"stop the agent (`systemctl stop store-agent`), keep a copy of {db}, then recover it with "
            f"`sqlite3 {db} .recover | sqlite3 {db}.recovered` and move the result in place "
            "(or delete it to start empty, losing unsent messages)")


# -- disk ------------------------------------------------------------------------------------------


def check_disk(ctx: DoctorContext) -> CheckResult:
    """Free space on data_dir's file system: fail under ``health.disk_min_free_mb``, warn under twice that."""
    target = ctx.cfg.data_dir
    while not target.exists() and target.parent != target:
        target = target.parent
    if not target.is_dir():
        target = target.parent
    minimum = ctx.cfg.health.disk_min_free_mb
    free_mb = shutil.disk_usage(target).free / 2**20
    detail = f"{free_mb:,.0f} MB free on the file system of {target} (minimum {minimum:,.0f} MB)"
    fix = ("free space on that file system (e.g. `journalctl --vacuum-size=200M`, remove old files) "
           "or lower health.disk_min_free_mb")
    if free_mb < minimum:
        return CheckResult("disk", "fail", detail, fix)
    if free_mb < 2 * minimum:
        return CheckResult("disk", "warn", detail + "; less than twice the minimum", fix)
    return CheckResult("disk", "ok", detail)


# -- clock -----------------------------------------------------------------------------------------


def check_clock(ctx: DoctorContext) -> CheckResult:
    """The clock is plausible and, when ``timedatectl`` can tell, NTP-synchronised."""
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S UTC")
    if now.year < MIN_PLAUSIBLE_YEAR:
        return CheckResult("clock", "fail", f"system clock says {stamp}, which cannot be right; signed commands "
                           "and certificates will be rejected",
                           "enable NTP (`timedatectl set-ntp true`) or set the time (`timedatectl set-time ...`)")
    tool = shutil.which("timedatectl", path=ctx.env.get("PATH", os.defpath))
    if tool is None:
        return CheckResult("clock", "ok", f"{stamp}; NTP status unknown (timedatectl not available)")
    try:
        proc = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                              text=True, timeout=ctx.timeout_s, env=dict(ctx.env), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CheckResult("clock", "ok", f"{stamp}; NTP status unknown (timedatectl: {exc})")
    answer = proc.stdout.strip().lower()
    if proc.returncode != 0 or answer not in ("yes", "no"):
        reason = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[0]
        return CheckResult("clock", "ok", f"{stamp}; NTP status unknown (timedatectl: {reason})")
    if answer == "no":
        return CheckResult("clock", "warn", f"{stamp}; the clock is not NTP-synchronised",
                           "enable NTP: timedatectl set-ntp true")
    return CheckResult("clock", "ok", f"{stamp}; NTP-synchronised")


# -- devices, keys, models -------------------------------------------------------------------------


def check_serial_ports(ctx: DoctorContext) -> CheckResult:
    """Every configured scale's serial port exists and this user may read and write it."""
    scales = ctx.cfg.scales
    if not scales:
        return CheckResult("serial_ports", "ok", "no scales configured")
    lines: list[str] = []
    fixes: list[str] = []
    status = "ok"
    for index, scale in enumerate(scales):
        port = Path(scale.port)
        if not scale.enabled:  # the agent does not open it
            lines.append(f"{scale.name}: disabled, {port} not checked")
        elif not port.exists():
            status = "fail"
            lines.append(f"{scale.name}: {port} does not exist")
            fixes.append(f"connect the scale or correct scales[{index}].port (see `ls -l /dev/serial/by-id/`)")
        elif not stat.S_ISCHR(port.stat().st_mode):
            status = "fail"
            lines.append(f"{scale.name}: {port} is not a character device")
            fixes.append(f"correct scales[{index}].port (see `ls -l /dev/serial/by-id/`)")
        elif not os.access(port, os.R_OK | os.W_OK):
            status = "fail"
            lines.append(f"{scale.name}: {port} is not readable and writable by this user")
            fixes.append(DIALOUT_FIX)
        else:
            lines.append(f"{scale.name}: {port} ok")
    fix = "; ".join(dict.fromkeys(fixes))  # unique, in order
    return CheckResult("serial_ports", status, "\n".join(lines), fix)


def check_signing_keys(ctx: DoctorContext) -> CheckResult:
    """At least one trusted key for signed cloud commands."""
    keys = sorted(ctx.cfg.commands.trusted_keys)
    if not keys:
        return CheckResult("signing_keys", "warn", "no trusted command keys: the store will refuse every cloud "
                           "command", "add commands.trusted_keys or commands.trusted_keys_dir (public keys made "
                           "with `store-agent keys generate`)")
    return CheckResult("signing_keys", "ok", f"{len(keys)} trusted command key(s): {', '.join(keys)}")


def check_models(ctx: DoctorContext) -> CheckResult:
    """Installed models match their pinned size and sha256; every enabled camera's detector is installed, the
    face detector and embedder when a camera has identification on, the product embedder when a scale has a
    tray camera."""
    cfg = ctx.cfg
    model_dir = Path(cfg.models.dir)
    needed = {c.analytics.detector for c in cfg.cameras if c.enabled}
    if any(c.enabled and c.identification for c in cfg.cameras):
        needed |= {cfg.identity.face_detector, cfg.identity.face_embedder}
    if cfg.products.enabled and (cfg.products.cameras or any(s.camera for s in cfg.scales)):
        needed.add(cfg.products.embedder)
    required = sorted(n for n in needed if n in REGISTRY)
    entries = [(str(name), bool(ok), str(detail)) for name, ok, detail in verify_installed(model_dir, required)]
    bad = [name for name, ok, _ in entries if not ok]
    missing = [name for name, ok, detail in entries if ok and detail == "not installed"]
    good = [name for name, ok, detail in entries if ok and detail != "not installed"]
    summary = f"{len(good)} verified in {model_dir}" + (f" ({', '.join(good)})" if good else "")
    summary += f", {len(missing)} not installed" if missing else ""
    if not bad:
        return CheckResult("models", "ok", summary)
    lines = [f"{len(bad)} of {len(entries)} models failed verification; {summary}"]
    lines += [f"{name}: {detail}" for name, ok, detail in entries if not ok]
    return CheckResult("models", "fail", "\n".join(lines), "; ".join(pull_hint(name) for name in bad))
