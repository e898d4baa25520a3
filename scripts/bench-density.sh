#!/usr/bin/env bash
# Density benchmark: one `wabridge serve` (release) holding N idle linked devices of
# `wabridge-sim` (its own process), on SQLite or PostgreSQL; see docs/benchmarks.md "Density".
#   scripts/bench-density.sh [DEVICES] [sqlite|postgres] [HOLD_SECONDS]   (defaults 10000 sqlite 60)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_apt_packages
eval "$("$ROOT/scripts/test-broker.sh" start)"
if [ "${2:-sqlite}" = postgres ]; then eval "$("$ROOT/scripts/test-postgres.sh" start)"; fi
for p in wabridge wabridge-sim density-bench; do swift build -c release --product "$p" >&2; done
"$ROOT/.build/release/density-bench" "$WABRIDGE_TEST_AMQP_URL" --devices "${1:-10000}" --store "${2:-sqlite}" --hold "${3:-60}"
