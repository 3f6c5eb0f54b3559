#!/usr/bin/env bash
# README command 1: set everything up, then run the agent's main job on its built-in default.
# Extra arguments go to `store-agent demo` (e.g. --duration 30 --json).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Offline boxes (and this repository's CI) install the detector and the sample video from a mirror directory
# laid out as models/ and data/videos/; the project's shared folder next to the checkout is one.
if [ -z "${STORE_AGENT_MIRROR:-}" ] && [ -d ../shared/models ] && [ -d ../shared/data ]; then
  STORE_AGENT_MIRROR="$(cd ../shared && pwd)"
  export STORE_AGENT_MIRROR
fi
exec .venv/bin/store-agent demo "$@"
