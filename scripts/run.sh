#!/usr/bin/env bash
# Runs the worker on a fresh Debian 12 machine: installs what it needs,
# starts a local RabbitMQ on 127.0.0.1:5672 under .rabbitmq/run, builds in
# release mode and runs `wabridge serve` with SQLite under ./data.
# Extra arguments are passed to `wabridge serve`. The broker keeps running
# between runs (it is reused); `scripts/run.sh --stop-broker` stops it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ "${1:-}" = "--stop-broker" ]; then
  broker_env run 5672
  broker_stop
  exit 0
fi
command -v swift >/dev/null || { log "the Swift 6 toolchain is needed (swift not on PATH)"; exit 1; }
ensure_apt_packages
(
  broker_env run 5672
  [ -f "$RABBITMQ_CONFIG_FILE" ] || cat > "$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = 127.0.0.1:5672
loopback_users.guest = true
CONF
  broker_start
)
swift build -c release --product wabridge
mkdir -p "$ROOT/data"
exec "$ROOT/.build/release/wabridge" serve --data-dir "$ROOT/data" "$@"
