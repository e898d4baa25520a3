#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, prepares the Python
# test peers, starts a private RabbitMQ (AMQP 127.0.0.1:5673, AMQPS 5674)
# under .rabbitmq/test and a private PostgreSQL under .postgres/test, runs
# `swift test`, and stops both again.
# Extra arguments go to `swift test` (e.g. --filter AMQPTests).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_apt_packages
command -v swift >/dev/null || { log "the Swift 6 toolchain is needed (swift not on PATH)"; exit 1; }

# Python peers: one venv per requirements file in Tests/Interop/peers/.
if compgen -G "$ROOT/Tests/Interop/peers/*.txt" >/dev/null; then
  for req in "$ROOT"/Tests/Interop/peers/*.txt; do
    name="$(basename "$req" .txt)"
    venv="$ROOT/.venv-peers/$name"
    stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
      log "preparing Python peer venv $name"
      rm -rf "$venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
      touch "$stamp"
    fi
  done
fi

eval "$("$ROOT/scripts/test-broker.sh" start)"
trap '"$ROOT/scripts/test-broker.sh" stop' EXIT
eval "$("$ROOT/scripts/test-postgres.sh" start)"
trap '"$ROOT/scripts/test-broker.sh" stop; "$ROOT/scripts/test-postgres.sh" stop' EXIT

swift build --build-tests
# XCTest only (no swift-testing tests here): its "Executed N tests" line is
# the summary CI reads. A plain "N passed, M failed" line closes the run.
log="$ROOT/.build/test-output.log"
set +e
swift test --skip-build --disable-swift-testing "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1)
if [ -n "$summary" ]; then
  total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
  failed=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
  echo "wabridge: $((total - failed)) passed, $failed failed"
fi
exit "$status"
