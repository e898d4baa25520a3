#!/usr/bin/env bash
# Runs the whole test suite: installs what it needs, prepares the Python
# test peers, starts a private RabbitMQ (AMQP 127.0.0.1:5673, AMQPS 5674)
# under .rabbitmq/test, runs `swift test`, and stops that broker again.
# Extra arguments go to `swift test` (e.g. --filter AMQPTests).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_apt_packages

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

broker_env test 5673
cat > "$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = 127.0.0.1:5673
listeners.ssl.default = 127.0.0.1:5674
ssl_options.cacertfile = $BROKER_DIR/tls/ca.pem
ssl_options.certfile = $BROKER_DIR/tls/server.pem
ssl_options.keyfile = $BROKER_DIR/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
loopback_users.guest = true
CONF
make_test_tls
broker_start
trap 'broker_stop' EXIT

# What the tests need to reach and steer the broker.
export WABRIDGE_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:5673/"
export WABRIDGE_TEST_AMQPS_URL="amqps://guest:guest@localhost:5674/"
export WABRIDGE_TEST_TLS_DIR="$BROKER_DIR/tls"
export WABRIDGE_TEST_RABBITMQCTL="$BROKER_DIR/ctl"
cat > "$WABRIDGE_TEST_RABBITMQCTL" <<CTL
#!/usr/bin/env bash
export HOME="$HOME"
exec /usr/sbin/rabbitmqctl -n "$RABBITMQ_NODENAME" "\$@"
CTL
chmod +x "$WABRIDGE_TEST_RABBITMQCTL"

# HOME points at the broker folder above; give Swift its usual one back.
export HOME="$USER_HOME"
swift build --build-tests
swift test --skip-build "$@"
