#!/usr/bin/env bash
# Bridge end-to-end benchmark: one `wabridge serve` (release), the test broker,
# the simulator; outbound commands and inbound events against a plain
# rabbitmq-c baseline moving the same number of messages in the same run.
#   scripts/bench-bridge.sh [COUNT] [ROUNDS] [DEVICES]   (defaults 2000 messages, 2 rounds, 1 device)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_apt_packages
eval "$("$ROOT/scripts/test-broker.sh" start)"
for p in wabridge bridge-bench amqp-bench-c; do swift build -c release --product "$p" >&2; done
"$ROOT/.build/release/bridge-bench" "$WABRIDGE_TEST_AMQP_URL" "${1:-2000}" "${2:-2}" "${3:-1}"
