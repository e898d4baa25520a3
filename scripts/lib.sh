# Shared helpers for scripts/run.sh and scripts/test.sh. Sourced, not run.
# Everything here is idempotent: safe to call when a previous run left a
# broker up, or when one was killed and left stale files behind.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# broker_env points HOME at the broker folder (for its Erlang cookie); keep ours.
USER_HOME="${USER_HOME:-${HOME:-/root}}"
APT_PACKAGES=(librabbitmq-dev libsqlite3-dev postgresql libssl-dev pkg-config openssl rabbitmq-server python3-venv python3-dev libsodium-dev zlib1g-dev libqrencode-dev zbar-tools chromium)

log() { printf '[wabridge] %s\n' "$*" >&2; }

# Install the Debian packages we need, only when one is missing.
ensure_apt_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing: ${missing[*]}"
  local SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # policy-rc.d keeps the package from starting a system-wide broker.
  $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# broker_env NAME PORT: exports the environment of a project-local broker.
# NAME is a folder under .rabbitmq/, PORT its AMQP port; the Erlang
# distribution port is PORT+20000, TLS (when configured) PORT+1.
broker_env() {
  local name="$1" port="$2"
  export BROKER_DIR="$ROOT/.rabbitmq/$name"
  export RABBITMQ_NODENAME="wabridge-$name@localhost"
  export RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$BROKER_DIR/log"
  export RABBITMQ_PID_FILE="$BROKER_DIR/broker.pid"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$port"
  export RABBITMQ_DIST_PORT=$((port + 20000))
  export RABBITMQ_CONFIG_FILE="$BROKER_DIR/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/enabled_plugins"
  export HOME="$BROKER_DIR/home"
  export BROKER_PORT="$port"
  mkdir -p "$BROKER_DIR/home" "$BROKER_DIR/log" "$BROKER_DIR/mnesia"
  [ -f "$RABBITMQ_ENABLED_PLUGINS_FILE" ] || echo "[]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
}

ctl() { /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" "$@"; }

broker_running() {
  [ -f "$RABBITMQ_PID_FILE" ] && kill -0 "$(cat "$RABBITMQ_PID_FILE" 2>/dev/null)" 2>/dev/null \
    && timeout 20 /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" -q status >/dev/null 2>&1
}

# Writes a self-signed CA plus server and client certificates for TLS tests.
make_test_tls() {
  local d="$BROKER_DIR/tls"
  [ -f "$d/client.key" ] && return 0
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=wabridge test CA" \
      -keyout ca.key -out ca.pem >/dev/null 2>&1
    for who in server client; do
      local cn=localhost; [ "$who" = client ] && cn=wabridge-client
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout $who.key -out $who.csr >/dev/null 2>&1
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > $who.ext
      openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile $who.ext -out $who.pem >/dev/null 2>&1
    done
    chmod 600 ./*.key
  )
}

# broker_start: starts the broker described by broker_env unless it already
# answers; a stale pid file or node from a killed run is cleaned up first.
broker_start() {
  if broker_running; then log "broker $RABBITMQ_NODENAME already running"; return 0; fi
  if [ -f "$RABBITMQ_PID_FILE" ]; then
    local old; old="$(cat "$RABBITMQ_PID_FILE" 2>/dev/null || true)"
    [ -n "$old" ] && kill -9 "$old" 2>/dev/null || true
    rm -f "$RABBITMQ_PID_FILE"
  fi
  # A killed node can linger in epmd or as an orphaned beam process.
  pkill -9 -f -- "-sname $RABBITMQ_NODENAME" 2>/dev/null || true
  pkill -9 -f -- "nodename $RABBITMQ_NODENAME" 2>/dev/null || true
  log "starting broker $RABBITMQ_NODENAME on 127.0.0.1:$BROKER_PORT"
  nohup /usr/lib/rabbitmq/bin/rabbitmq-server >"$BROKER_DIR/log/stdout.log" 2>&1 &
  echo $! > "$BROKER_DIR/launcher.pid"
  # rabbitmqctl wait needs the pid file to appear first.
  local i
  for i in $(seq 1 60); do [ -f "$RABBITMQ_PID_FILE" ] && break; sleep 0.5; done
  if ! timeout 120 /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" -q wait "$RABBITMQ_PID_FILE" >/dev/null 2>&1 \
     || ! timeout 120 /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" -q await_startup >/dev/null 2>&1; then
    log "broker failed to start; last log lines:"
    tail -n 40 "$BROKER_DIR/log/stdout.log" >&2 || true
    return 1
  fi
  log "broker ready"
}

broker_stop() {
  if [ -f "$RABBITMQ_PID_FILE" ]; then
    timeout 60 /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || {
      kill -9 "$(cat "$RABBITMQ_PID_FILE")" 2>/dev/null || true
    }
    rm -f "$RABBITMQ_PID_FILE"
  fi
}
