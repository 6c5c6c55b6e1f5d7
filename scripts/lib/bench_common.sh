# shellcheck shell=bash
# Shared by scripts/bench and scripts/wan-bench: process bookkeeping, bounded waits, and
# Meridian nodes started from a generated config. Source it after setting:
#   BENCH_TAG     prefix of log lines (e.g. "bench")
#   LOG_DIR       where server logs go
#   MERIDIAN_BIN  the `meridian` binary (before calling start_meridian_nodes)
# It sets no shell options of its own (the callers use `set -euo pipefail`).

# Every process started here; stop_all ends them.
PIDS=()

log() { printf '[%s %s] %s\n' "$BENCH_TAG" "$(date +%H:%M:%S)" "$*" >&2; }

# shellcheck disable=SC2317  # run from the callers' EXIT traps
# Stops every process started here: SIGTERM to all, up to 20 s for them to exit, then SIGKILL.
stop_all() {
  local pid i alive
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for (( i = 0; i < 100; i++ )); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    (( alive )) || break
    sleep 0.2
  done
  for pid in "${PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# GETs URL and prints the HTTP status (000 when nothing answers); never waits over 2 s.
http_status() { curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

# Waits (at most $3 seconds) until URL $2 answers 200 while process $1 is alive.
wait_http_200() {
  local pid="$1" url="$2" limit="$3" i
  for (( i = 0; i < limit * 2; i++ )); do
    kill -0 "$pid" 2>/dev/null || { log "process $pid exited while waiting for $url"; return 1; }
    [[ "$(http_status "$url")" == 200 ]] && return 0
    sleep 0.5
  done
  log "no 200 from $url within ${limit}s"
  return 1
}

# make_cluster_certs CONFIG REGION...: the cluster CA of CONFIG's [tls] and a certificate per
# region, where the config looks for them (kept when they exist): nodes speak mutual TLS.
make_cluster_certs() {
  local config="$1" region; shift
  "$MERIDIAN_BIN" cert init --config "$config" --if-missing >/dev/null || { log "meridian cert init failed"; return 1; }
  for region in "$@"; do
    "$MERIDIAN_BIN" cert issue --config "$config" --region "$region" --if-missing >/dev/null ||
      { log "meridian cert issue --region $region failed"; return 1; }
  done
}

# start_meridian_nodes LABEL CONFIG: starts one `meridian node` per [[region]] of CONFIG (cwd:
# the config's directory, log: LOG_DIR/LABEL-REGION.log) and waits (90 s at most) until every
# /healthz answers 200. Sets NODE_IDS, NODE_NAMES, NODE_S3 and NODE_WEB (URLs) and NODE_PIDS,
# in config order.
start_meridian_nodes() {
  local label="$1" config="$2" dir id name s3 web pid i
  dir="$(dirname "$config")"
  NODE_IDS=() NODE_NAMES=() NODE_S3=() NODE_WEB=() NODE_PIDS=()
  while IFS=$'\t' read -r id name _ s3 web _ _; do
    NODE_IDS+=("$id") NODE_NAMES+=("$name") NODE_S3+=("$s3") NODE_WEB+=("$web")
  done < <(python3 "$(dirname "${BASH_SOURCE[0]}")/python/cluster_config.py" regions "$config")
  make_cluster_certs "$config" "${NODE_NAMES[@]}"
  for i in "${!NODE_NAMES[@]}"; do
    (cd "$dir" && exec "$MERIDIAN_BIN" node --config "$config" --region "${NODE_NAMES[$i]}") \
      >"$LOG_DIR/$label-${NODE_NAMES[$i]}.log" 2>&1 &
    pid="$!"
    PIDS+=("$pid")
    NODE_PIDS+=("$pid")
  done
  log "started $label: ${#NODE_NAMES[@]} node(s) (${NODE_NAMES[*]}), S3 ${NODE_S3[*]}"
  for i in "${!NODE_NAMES[@]}"; do
    wait_http_200 "${NODE_PIDS[$i]}" "${NODE_WEB[$i]}/healthz" 90
  done
}

# leader_index: the index (into NODE_*) of the leader named by the first node's
# GET /api/v1/cluster, once every node agrees on it (20 s at most); fails otherwise.
leader_index() {
  local i attempt id agreed
  for (( attempt = 0; attempt < 40; attempt++ )); do
    agreed=""
    for i in "${!NODE_WEB[@]}"; do
      id="$(curl -s --max-time 2 "${NODE_WEB[$i]}/api/v1/cluster" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["leader"] or "")' 2>/dev/null)" || id=""
      if [[ -z "$id" || ( -n "$agreed" && "$id" != "$agreed" ) ]]; then agreed="none"; break; fi
      agreed="$id"
    done
    if [[ -n "$agreed" && "$agreed" != none ]]; then
      for i in "${!NODE_IDS[@]}"; do [[ "${NODE_IDS[$i]}" == "$agreed" ]] && { echo "$i"; return 0; }; done
    fi
    sleep 0.5
  done
  log "the nodes did not agree on a leader within 20 s"
  return 1
}
