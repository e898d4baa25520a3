#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, prepares the Python
# test peers, starts a private RabbitMQ (AMQP 127.0.0.1:5673, AMQPS 5674)
# under .rabbitmq/test, a second one on 5683 (the several-broker tests) and a
# private PostgreSQL under .postgres/test, runs `swift test`, and stops them again.
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
# A second broker, 10 ports up (5683 beside the default 5673), for the
# several-URL tests; its variables get a _2 suffix (WABRIDGE_TEST_AMQP_URL_2).
PORT_2=$(( ${WABRIDGE_TEST_BROKER_PORT:-5673} + 10 ))
stop_servers() {
  "$ROOT/scripts/test-broker.sh" stop || true
  WABRIDGE_TEST_BROKER_PORT=$PORT_2 "$ROOT/scripts/test-broker.sh" stop || true
  "$ROOT/scripts/test-postgres.sh" stop || true
}
trap stop_servers EXIT
eval "$(WABRIDGE_TEST_BROKER_PORT=$PORT_2 "$ROOT/scripts/test-broker.sh" start | sed -E 's/^export (WABRIDGE_TEST_[A-Z_]+)=/export \1_2=/')"
eval "$("$ROOT/scripts/test-postgres.sh" start)"

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
  # The failures again, last, so a tail of the CI output names them.
  if [ "$failed" != "0" ]; then
    echo "wabridge: failures:"
    grep -E "error: -\[|: error: |Test Case '.*' failed" "$log" | cut -c1-600 | tail -40
  fi
  echo "wabridge: $((total - failed)) passed, $failed failed"
fi
exit "$status"
