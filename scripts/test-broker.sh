#!/usr/bin/env bash
# The test suite's private RabbitMQ: AMQP on 127.0.0.1:5673, AMQPS on 5674
# (self-signed CA under .rabbitmq/test/tls), steered by .rabbitmq/test/ctl.
# WABRIDGE_TEST_BROKER_PORT moves it (AMQPS on PORT+1, its own node and
# folder), so two checkouts on one machine can each run their own.
#   scripts/test-broker.sh start   start it (idempotent) and print its env
#   scripts/test-broker.sh stop    stop it
#   scripts/test-broker.sh env     print the env the tests read
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PORT="${WABRIDGE_TEST_BROKER_PORT:-5673}"
TLS_PORT=$((PORT + 1))
if [ "$PORT" = 5673 ]; then broker_env test "$PORT"; else broker_env "test-$PORT" "$PORT"; fi

print_env() {
  cat <<ENV
export WABRIDGE_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$PORT/"
export WABRIDGE_TEST_AMQPS_URL="amqps://guest:guest@localhost:$TLS_PORT/"
export WABRIDGE_TEST_TLS_DIR="$BROKER_DIR/tls"
export WABRIDGE_TEST_RABBITMQCTL="$BROKER_DIR/ctl"
export WABRIDGE_TEST_BROKER_PID_FILE="$RABBITMQ_PID_FILE"
ENV
}

case "${1:-start}" in
  start)
    make_test_tls
    cat > "$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = 127.0.0.1:$PORT
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $BROKER_DIR/tls/ca.pem
ssl_options.certfile = $BROKER_DIR/tls/server.pem
ssl_options.keyfile = $BROKER_DIR/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
loopback_users.guest = true
CONF
    cat > "$BROKER_DIR/ctl" <<CTL
#!/usr/bin/env bash
# rabbitmqctl for the test broker (its Erlang cookie lives under this folder).
export HOME="$HOME"
exec /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" "\$@"
CTL
    chmod +x "$BROKER_DIR/ctl"
    broker_start
    print_env
    ;;
  stop) broker_stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
