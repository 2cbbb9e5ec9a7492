#!/usr/bin/env bash
# A multi-node Ray cluster on this machine: one head and N worker nodes, each its own `ray start`
# (its own raylet), so scale-out code paths (RAY_ADDRESS, actors spread over nodes, node loss) run
# without a second machine. Only the processes this script started are stopped: each node runs in a
# session of its own and `down` kills those sessions (never `ray stop`, which is machine-wide). This is
# how tests/test_faults.py and tests/test_s3_lake.py start their two-node clusters.
#
#   deploy/local-cluster.sh up [WORKERS=2] [CPUS_PER_NODE=1]   # prints the RAY_ADDRESS to export
#   RAY_ADDRESS=127.0.0.1:<port> chipsweep submit spec.yaml --wait
#   deploy/local-cluster.sh status                              # nodes and CPUs (ray status)
#   deploy/local-cluster.sh down
#   (`start` and `stop` are aliases of `up` and `down`)
#
# The nodes inherit this shell's environment: export CHIPSWEEP_LAKE=s3://... and the AWS_* variables
# before `up` so the workers can write to an object-store lake.
# State (session ids, ports, Ray temp dir) lives in ${CHIPSWEEP_CLUSTER_DIR:-.chipsweep/cluster}.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RAY="${RAY:-$ROOT/.venv/bin/ray}"
[ -x "$RAY" ] || RAY="$(command -v ray)"
PY="$(dirname "$RAY")/python"
[ -x "$PY" ] || PY="$(command -v python3)"
STATE="${CHIPSWEEP_CLUSTER_DIR:-.chipsweep/cluster}"
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"  # nodes and drivers on one trusted machine
export RAY_USAGE_STATS_ENABLED=0

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

node_ports() {
  echo "--node-manager-port=$(free_port) --object-manager-port=$(free_port)" \
       "--dashboard-agent-listen-port=$(free_port) --dashboard-agent-grpc-port=$(free_port)" \
       "--metrics-export-port=$(free_port) --runtime-env-agent-port=$(free_port)"
}

# start a `ray start` in a new session; its daemons keep that session id, which we record
start_node() {
  local name="$1"; shift
  setsid "$RAY" start --disable-usage-stats "$@" >"$STATE/$name.log" 2>&1 &
  local pid=$!
  echo "$pid" >>"$STATE/sessions"
  wait "$pid" || { echo "ray start ($name) failed; see $STATE/$name.log" >&2; tail -20 "$STATE/$name.log" >&2; exit 1; }
}

cmd_start() {
  local workers="${1:-2}" cpus="${2:-1}"
  if [ -s "$STATE/sessions" ]; then
    echo "a cluster is already recorded in $STATE (run: $0 down)" >&2; exit 1
  fi
  mkdir -p "$STATE"
  : >"$STATE/sessions"
  local port tmp client
  port="$(free_port)"
  client="$(free_port)"
  tmp="$(mktemp -d /tmp/csray-XXXXXX)"  # short: Ray's socket paths must stay under ~100 characters
  echo "$port" >"$STATE/port"
  echo "$client" >"$STATE/client_port"
  echo "$tmp" >"$STATE/tmpdir"
  export RAY_TMPDIR="$tmp"
  # shellcheck disable=SC2046
  start_node head --head --port="$port" --num-cpus="$cpus" --include-dashboard=false \
    --ray-client-server-port="$client" $(node_ports)
  for i in $(seq 1 "$workers"); do
    # shellcheck disable=SC2046
    start_node "worker$i" --address="127.0.0.1:$port" --num-cpus="$cpus" $(node_ports)
  done
  echo "Ray cluster: 1 head + $workers worker node(s), $cpus CPU(s) each"
  echo "export RAY_ADDRESS=127.0.0.1:$port RAY_AUTH_MODE=$RAY_AUTH_MODE"
  echo "(Ray Client, from another machine or container: RAY_ADDRESS=ray://127.0.0.1:$client)"
}

cmd_status() {
  [ -s "$STATE/port" ] || { echo "no cluster recorded in $STATE"; exit 1; }
  echo "RAY_ADDRESS=127.0.0.1:$(cat "$STATE/port")"
  RAY_TMPDIR="$(cat "$STATE/tmpdir")" "$RAY" status --address="127.0.0.1:$(cat "$STATE/port")"
}

cmd_stop() {
  [ -s "$STATE/sessions" ] || { echo "no cluster recorded in $STATE"; exit 0; }
  while read -r sid; do
    ps -eo pid=,sid= | while read -r pid s; do
      [ "$s" = "$sid" ] && kill -9 "$pid" 2>/dev/null || true
    done
  done <"$STATE/sessions"
  rm -rf "$(cat "$STATE/tmpdir" 2>/dev/null || echo /nonexistent)"
  rm -f "$STATE/sessions" "$STATE/port" "$STATE/client_port" "$STATE/tmpdir"
  echo "stopped"
}

case "${1:-}" in
  up|start) shift; cmd_start "$@" ;;
  status) cmd_status ;;
  down|stop) cmd_stop ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
