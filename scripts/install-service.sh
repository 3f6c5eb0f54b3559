#!/usr/bin/env bash
# Install (or upgrade) the Store Edge Agent as a systemd service. Idempotent: run it
# again after pulling a new version. See docs/install.md.
set -euo pipefail

readonly SERVICE_USER="store-agent"
readonly PREFIX="/opt/store-agent"
readonly VENV="${PREFIX}/.venv"
readonly CONFIG_DIR="/etc/store-agent"
readonly STATE_DIR="/var/lib/store-agent"
readonly UNIT_DST="/etc/systemd/system/store-agent.service"
readonly MODULES_CONF="/etc/modules-load.d/store-agent.conf"
readonly BIN_LINK="/usr/local/bin/store-agent"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="python3"
EXTRAS=""
UNINSTALL=0

usage() {
    cat <<EOF
Usage: sudo $(basename "$0") [--repo PATH] [--python PYTHON] [--extras LIST]
       sudo $(basename "$0") --uninstall

Install or upgrade the Store Edge Agent as the systemd service "store-agent":
  * system user and group ${SERVICE_USER} (also in the dialout and video groups)
  * virtualenv ${VENV} with the agent installed from the repository (pip install)
  * ${CONFIG_DIR}/agent.toml from configs/agent.example.toml, only if it does not exist
  * ${CONFIG_DIR}/credentials/ (root only) and ${CONFIG_DIR}/tls/ for secrets
  * ${UNIT_DST}, ${MODULES_CONF} and the command ${BIN_LINK}
It does not enable or start the service, and never overwrites an existing config.

Options:
  --repo PATH      repository to install from (default: ${REPO})
  --python PYTHON  Python 3.11+ used to create the virtualenv (default: python3)
  --extras LIST    optional extras to install, e.g. "ultralytics"
  --uninstall      stop and remove the service, virtualenv and command; keep
                   ${CONFIG_DIR} and ${STATE_DIR} (delete those by hand)
  -h, --help       show this help
EOF
}

die() { echo "error: $*" >&2; exit 1; }
step() { echo "==> $*"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --repo) [[ $# -ge 2 ]] || die "--repo needs a path"; REPO="$(cd "$2" && pwd)"; shift 2 ;;
        --python) [[ $# -ge 2 ]] || die "--python needs a value"; PYTHON="$2"; shift 2 ;;
        --extras) [[ $# -ge 2 ]] || die "--extras needs a value"; EXTRAS="$2"; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

[[ ${EUID} -eq 0 ]] || die "run as root (sudo $0)"

# systemctl only works when systemd is PID 1 (not in a container or chroot).
have_systemd() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

uninstall() {
    if have_systemd; then
        step "stopping and disabling store-agent"
        systemctl disable --now store-agent.service 2>/dev/null || true
    fi
    step "removing ${UNIT_DST}, ${MODULES_CONF}, ${BIN_LINK} and ${PREFIX}"
    rm -f "${UNIT_DST}" "${MODULES_CONF}"
    if [[ -L "${BIN_LINK}" ]]; then rm -f "${BIN_LINK}"; fi
    rm -rf "${PREFIX}"
    if have_systemd; then systemctl daemon-reload; fi
    echo
    echo "Kept ${CONFIG_DIR} (config, secrets) and ${STATE_DIR} (database, unsent messages)."
    echo "Remove them, and the user, when the box leaves service:"
    echo "  rm -rf ${CONFIG_DIR} ${STATE_DIR} && userdel ${SERVICE_USER}"
}

if [[ ${UNINSTALL} -eq 1 ]]; then
    uninstall
    exit 0
fi

# ---- checks ----------------------------------------------------------------------------
[[ -f "${REPO}/pyproject.toml" && -f "${REPO}/scripts/store-agent.service" ]] \
    || die "${REPO} is not the store-agent repository (use --repo PATH)"
command -v "${PYTHON}" >/dev/null || die "${PYTHON} not found; install Python 3.11 or newer"
"${PYTHON}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$("${PYTHON}" --version 2>&1) is too old; Python 3.11 or newer is required (--python PATH)"
"${PYTHON}" -c 'import ensurepip, venv' 2>/dev/null \
    || die "the Python venv module is missing; on Debian/Ubuntu: apt-get install python3-venv"

# ---- user ------------------------------------------------------------------------------
if ! getent passwd "${SERVICE_USER}" >/dev/null; then
    step "creating system user ${SERVICE_USER}"
    useradd --system --user-group --home-dir "${STATE_DIR}" --no-create-home \
        --shell /usr/sbin/nologin --comment "Store Edge Agent" "${SERVICE_USER}"
fi
# The unit adds these groups itself; membership also lets `sudo -u store-agent
# store-agent doctor` see the same devices as the service.
for group in dialout video; do
    if getent group "${group}" >/dev/null; then usermod -a -G "${group}" "${SERVICE_USER}"; fi
done
# The data directory (systemd's StateDirectory= creates it too, but only at the first start): models can be
# pulled into it as the service user before that.
install -d -m 0750 -o "${SERVICE_USER}" -g "${SERVICE_USER}" "${STATE_DIR}"

# ---- program ---------------------------------------------------------------------------
step "installing the agent from ${REPO} into ${VENV}"
install -d -m 0755 "${PREFIX}"
if [[ ! -x "${VENV}/bin/python" ]]; then
    "${PYTHON}" -m venv "${VENV}"
fi
"${VENV}/bin/python" -m pip install --quiet --upgrade pip || echo "    warning: could not upgrade pip; continuing"
target="${REPO}"
if [[ -n "${EXTRAS}" ]]; then target="${REPO}[${EXTRAS}]"; fi
# A plain (not editable) install: the service does not depend on the checkout.
"${VENV}/bin/python" -m pip install --quiet --upgrade "${target}"
install -d -m 0755 "${PREFIX}/docs"
install -m 0644 "${REPO}/docs/install.md" "${PREFIX}/docs/install.md"
ln -sfn "${VENV}/bin/store-agent" "${BIN_LINK}"

# ---- configuration and secrets -----------------------------------------------------------
step "preparing ${CONFIG_DIR}"
# Readable by the service's group only: the config names devices and secret files.
install -d -m 0750 -o root -g "${SERVICE_USER}" "${CONFIG_DIR}"
# Source files for systemd LoadCredential=: root only (systemd reads them as root).
install -d -m 0700 -o root -g root "${CONFIG_DIR}/credentials"
# Client certificate and key for mutual TLS: readable by the service's group.
install -d -m 0750 -o root -g "${SERVICE_USER}" "${CONFIG_DIR}/tls"
# Public keys of the cloud's command signers (<key_id>.pub, not secret).
install -d -m 0755 -o root -g root "${CONFIG_DIR}/trusted-keys"
if [[ -e "${CONFIG_DIR}/agent.toml" ]]; then
    echo "    keeping the existing ${CONFIG_DIR}/agent.toml"
else
    install -m 0640 -o root -g "${SERVICE_USER}" "${REPO}/configs/agent.example.toml" "${CONFIG_DIR}/agent.toml"
    echo "    wrote ${CONFIG_DIR}/agent.toml from configs/agent.example.toml: edit it"
fi

# ---- systemd -------------------------------------------------------------------------------
step "installing ${UNIT_DST}"
install -m 0644 "${REPO}/scripts/store-agent.service" "${UNIT_DST}"
# The unit's DeviceAllow=char-ttyUSB/char-ttyACM/char-video4linux need these drivers loaded
# before the service starts, otherwise a scale plugged in later would be refused.
cat > "${MODULES_CONF}" <<'EOF'
# Store Edge Agent: device classes allowed by store-agent.service (DeviceAllow=).
usbserial
cdc_acm
videodev
EOF
if have_systemd; then
    systemctl daemon-reload
    # Load the drivers now too, without waiting for the next boot.
    systemctl restart systemd-modules-load.service || echo "    warning: some device drivers did not load"
else
    echo "    systemd is not running here: run 'systemctl daemon-reload' on the target system"
fi

# ---- next steps ----------------------------------------------------------------------------
version="$("${VENV}/bin/python" -c 'import importlib.metadata as m; print(m.version("store-edge-agent"))')"
echo
echo "Installed store-edge-agent ${version}."
if have_systemd && systemctl is-active --quiet store-agent.service; then
    echo "The service is running the previous version; restart it:"
    echo "  systemctl restart store-agent && journalctl -u store-agent -f"
else
    cat <<EOF
Next steps:
  1. Edit ${CONFIG_DIR}/agent.toml (store_id, sync.broker, TLS files, trusted keys), then
       store-agent config validate ${CONFIG_DIR}/agent.toml
  2. Put secrets in place (see docs/install.md): ${CONFIG_DIR}/tls/, ${CONFIG_DIR}/credentials/
  3. Check the box:
       sudo CREDENTIALS_DIRECTORY=${CONFIG_DIR}/credentials store-agent doctor --config ${CONFIG_DIR}/agent.toml
  4. Start the agent now and at every boot:
       systemctl enable --now store-agent
       store-agent status --config ${CONFIG_DIR}/agent.toml
       journalctl -u store-agent -f
EOF
fi
