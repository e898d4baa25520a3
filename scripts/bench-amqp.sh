#!/usr/bin/env bash
# AMQP layer benchmark: Swift AMQP vs plain rabbitmq-c on the test broker.
#   scripts/bench-amqp.sh [COUNT] [ROUNDS]     (defaults 20000 messages, 3 rounds)
# Prints a Markdown report (docs/benchmarks.md holds the latest one).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_apt_packages
eval "$("$ROOT/scripts/test-broker.sh" start)"
swift build -c release --product amqp-bench-c >&2
swift build -c release --product amqp-bench >&2
WABRIDGE_LOG_LEVEL=warning "$ROOT/.build/release/amqp-bench" "$WABRIDGE_TEST_AMQP_URL" "${1:-20000}" "${2:-3}" 2>/dev/null
