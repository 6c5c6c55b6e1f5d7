# shellcheck shell=bash
# shellcheck disable=SC2034 # variables here are used by the scripts that source this file
# Shared helpers for scripts/cluster-up, cluster-down, smoke, hosts-up and hosts-test.
# Source it; it sets no shell options of its own (the callers use `set -euo pipefail`).

# The repository root, found from this file's location (scripts/lib/common.sh).
MERIDIAN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="$MERIDIAN_ROOT/run"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
CLUSTER_ENV="$RUN_DIR/cluster.env"
# The config file the running cluster was started with (written by cluster-up).
CLUSTER_CONFIG_RECORD="$RUN_DIR/cluster.config"
CLUSTER_CONFIG_HELPER="$MERIDIAN_ROOT/scripts/lib/python/cluster_config.py"
DEFAULT_CONFIG="$MERIDIAN_ROOT/cluster.toml"
# The stand-in Auth service (`meridian dev-auth`) that cluster-up starts when [auth] points at
# loopback. Its pid file is outside PID_DIR, which holds node pids only.
DEV_AUTH_PID="$RUN_DIR/dev-auth.pid"
# The virtualenv with aws-cli and boto3 of scripts/smoke and scripts/hosts-test (setup_venv).
VENV="$RUN_DIR/venv"

# Seconds to wait for a node to exit after SIGTERM before SIGKILL.
: "${MERIDIAN_STOP_TIMEOUT:=15}"

# Prefix for messages: the calling script's name.
_PROG="$(basename "$0")"

info() { printf '%s: %s\n' "$_PROG" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$_PROG" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$_PROG" "$*" >&2
	exit 1
}

# abs_path PATH: PATH made absolute against the current directory (the file need not exist).
abs_path() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}

# cargo_target_dir: where cargo builds this workspace, as cargo itself says (CARGO_TARGET_DIR,
# a build.target-dir of some .cargo/config.toml, else target/ at the root).
cargo_target_dir() {
	local dir=""
	dir="$(cd "$MERIDIAN_ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null)" || dir=""
	printf '%s\n' "${dir:-${CARGO_TARGET_DIR:-$MERIDIAN_ROOT/target}}"
}

# require_python: checks that python3 >= 3.11 (tomllib) is on PATH.
require_python() {
	command -v python3 >/dev/null 2>&1 || die "python3 (>= 3.11) is required to read the cluster config"
	python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null ||
		die "python3 >= 3.11 is required (tomllib); found $(python3 --version 2>&1)"
}

# load_regions CONFIG: fills the arrays REGION_IDS, REGION_NAMES, REGION_ROLES, REGION_S3,
# REGION_WEB, REGION_INTERNAL, REGION_DATA (same index = same region, config file order).
load_regions() {
	local config="$1" out id name role s3 web internal data
	[[ -f "$config" ]] || die "config file not found: $config"
	require_python
	out="$(python3 "$CLUSTER_CONFIG_HELPER" regions "$config")" || die "cannot read $config"
	REGION_IDS=() REGION_NAMES=() REGION_ROLES=() REGION_S3=() REGION_WEB=() REGION_INTERNAL=() REGION_DATA=()
	while IFS=$'\t' read -r id name role s3 web internal data; do
		REGION_IDS+=("$id")
		REGION_NAMES+=("$name")
		REGION_ROLES+=("$role")
		REGION_S3+=("$s3")
		REGION_WEB+=("$web")
		REGION_INTERNAL+=("$internal")
		REGION_DATA+=("$data")
	done <<<"$out"
	((${#REGION_NAMES[@]} > 0)) || die "no regions in $config"
}

# pid_file REGION
pid_file() { printf '%s/%s.pid\n' "$PID_DIR" "$1"; }

# pid_alive PID: true if PID is a live (non-zombie) process.
pid_alive() {
	local pid="$1" stat
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r "/proc/$pid/stat" ]]; then
		stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
		stat="${stat##*) }"
		[[ "${stat:0:1}" != Z ]] || return 1
	fi
	return 0
}

# is_node_pid PID: true if PID is alive and looks like a `meridian node` process
# (guards against a stale pid file whose pid was reused by something else).
is_node_pid() {
	local pid="$1" cmdline
	pid_alive "$pid" || return 1
	if [[ -r "/proc/$pid/cmdline" ]]; then
		cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
		[[ "$cmdline" == *meridian*" node "* || "$cmdline" == *" node "*"--region"* ]] || return 1
	fi
	return 0
}

# read_pid FILE: prints the pid stored in FILE (empty if unreadable).
read_pid() {
	local pid=""
	[[ -r "$1" ]] && read -r pid <"$1" 2>/dev/null
	printf '%s\n' "${pid:-}"
}

# live_nodes: prints "REGION PID" for every pid file whose node is alive;
# removes stale pid files (dead process, or pid reused by another program).
live_nodes() {
	local f region pid
	[[ -d "$PID_DIR" ]] || return 0
	for f in "$PID_DIR"/*.pid; do
		[[ -e "$f" ]] || continue
		region="$(basename "$f" .pid)"
		pid="$(read_pid "$f")"
		if is_node_pid "$pid"; then
			printf '%s %s\n' "$region" "$pid"
		else
			rm -f "$f"
		fi
	done
}

# stop_node_pids REGION=PID...: SIGTERM to each, waits up to MERIDIAN_STOP_TIMEOUT seconds
# (polling every 0.2 s), then SIGKILL to those still running. Removes their pid files.
# all_gone_within SECONDS PID...: waits (polling every 0.2 s) until none of PID... runs; fails if
# one still does after SECONDS.
all_gone_within() {
	local seconds="$1" n pid
	shift
	for ((n = seconds * 5; n > 0; n--)); do
		for pid in "$@"; do
			pid_alive "$pid" && break
			pid=""
		done
		[[ -z "$pid" ]] && return 0
		sleep 0.2
	done
	return 1
}

stop_node_pids() {
	local item region pid deadline
	local -a regions=() pids=()
	for item in "$@"; do
		regions+=("${item%%=*}")
		pids+=("${item#*=}")
	done
	((${#pids[@]} > 0)) || return 0
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	all_gone_within "$MERIDIAN_STOP_TIMEOUT" "${pids[@]}" || true
	local i
	for i in "${!pids[@]}"; do
		pid="${pids[$i]}"
		region="${regions[$i]}"
		if pid_alive "$pid"; then
			warn "node $region (pid $pid) still running after ${MERIDIAN_STOP_TIMEOUT}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	# After SIGKILL a process is gone almost at once; still, never wait for ever (5 s).
	deadline=25
	for pid in "${pids[@]}"; do
		while pid_alive "$pid" && ((deadline-- > 0)); do sleep 0.2; done
		pid_alive "$pid" && warn "pid $pid did not exit even after SIGKILL"
	done
	for region in "${regions[@]}"; do
		rm -f "$(pid_file "$region")"
	done
	return 0
}

# stop_all_nodes: stops every live node recorded in run/pids. Prints what it stops.
stop_all_nodes() {
	local region pid
	local -a items=()
	while read -r region pid; do
		[[ -n "$region" ]] || continue
		items+=("$region=$pid")
	done < <(live_nodes)
	if ((${#items[@]} == 0)); then
		return 0
	fi
	info "stopping ${#items[@]} node(s): ${items[*]/=/ pid }"
	stop_node_pids "${items[@]}"
}

# http_status URL: prints the HTTP status code of GET URL ("000" if no answer within 2 s).
http_status() {
	local url="$1" code
	if command -v curl >/dev/null 2>&1; then
		code="$(curl -s -o /dev/null -w '%{http_code}' --connect-timeout 1 --max-time 2 "$url" 2>/dev/null)" || true
	else
		code="$(python3 - "$url" <<'EOF' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
)" || true
	fi
	printf '%s\n' "${code:-000}"
}

# port_open HOST:PORT: true if something accepts TCP connections there (1 s bound).
port_open() {
	local addr="$1" host port
	host="${addr%:*}"
	port="${addr##*:}"
	host="${host#[}"
	host="${host%]}"
	# shellcheck disable=SC2016 # $0 and $1 are for the inner shell
	timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# url_addr URL: "http://host:port" -> "host:port"
url_addr() {
	local a="${1#*://}"
	printf '%s\n' "${a%%/*}"
}

# log_tail FILE [LINES]: prints the end of a node log, indented, to stderr.
log_tail() {
	local file="$1" lines="${2:-40}"
	if [[ -s "$file" ]]; then
		printf '%s: ---- last %s lines of %s ----\n' "$_PROG" "$lines" "$file" >&2
		tail -n "$lines" "$file" | sed 's/^/    /' >&2
		printf '%s: ---- end of %s ----\n' "$_PROG" "$file" >&2
	else
		printf '%s: (%s is empty or missing)\n' "$_PROG" "$file" >&2
	fi
}

# recorded_config: the config the last cluster-up used, else the default cluster.toml.
recorded_config() {
	local c=""
	[[ -r "$CLUSTER_CONFIG_RECORD" ]] && read -r c <"$CLUSTER_CONFIG_RECORD"
	if [[ -n "$c" && -f "$c" ]]; then
		printf '%s\n' "$c"
	else
		printf '%s\n' "$DEFAULT_CONFIG"
	fi
}

# dev_auth_addr CONFIG: host:port of the stand-in Auth service the config points at (empty when
# [auth] is absent or not on loopback: then there is nothing for cluster-up to start).
dev_auth_addr() {
	python3 "$CLUSTER_CONFIG_HELPER" dev-auth "$1"
}

# live_dev_auth: prints the pid of the running stand-in Auth service started by cluster-up
# (empty if none); removes a stale pid file.
live_dev_auth() {
	local pid cmdline
	pid="$(read_pid "$DEV_AUTH_PID")"
	[[ -n "$pid" ]] || return 0
	if pid_alive "$pid" && cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" &&
		[[ "$cmdline" == *" dev-auth "* ]]; then
		printf '%s\n' "$pid"
	else
		rm -f "$DEV_AUTH_PID"
	fi
}

# stop_dev_auth: stops the stand-in Auth service started by cluster-up, if it runs.
stop_dev_auth() {
	local pid
	pid="$(live_dev_auth)"
	[[ -n "$pid" ]] || return 0
	info "stopping the stand-in Auth service (pid $pid)"
	stop_node_pids "dev-auth=$pid"
	rm -f "$DEV_AUTH_PID"
}

# setup_venv: makes VENV with aws-cli and boto3 (pip) unless it has them already; installs
# Debian's python3-venv with apt-get when root and `python3 -m venv` fails without it.
setup_venv() {
	local py=python3
	if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import boto3, awscli' 2>/dev/null; then
		return 0
	fi
	if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
		rm -rf "$VENV"
		info "creating $VENV"
		if ! python3 -m venv "$VENV" >"$RUN_DIR/venv.log" 2>&1; then
			rm -rf "$VENV"
			if ! command -v apt-get >/dev/null 2>&1 || ((EUID != 0)); then
				die "python3 -m venv failed (see run/venv.log); install python3-venv"
			fi
			info "python3 -m venv failed; installing python3-venv with apt-get"
			export DEBIAN_FRONTEND=noninteractive
			apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
				{ apt-get update -qq && apt-get install -y -qq python3-venv; } ||
				die "apt-get install python3-venv failed"
			# Debian's python3-venv serves /usr/bin/python3, which may not be the python3 on PATH.
			if ! python3 -m venv "$VENV" >>"$RUN_DIR/venv.log" 2>&1; then
				rm -rf "$VENV"
				py=/usr/bin/python3
				"$py" -m venv "$VENV" >>"$RUN_DIR/venv.log" 2>&1 || die "cannot create $VENV (see run/venv.log)"
			fi
		fi
	fi
	info "installing awscli and boto3 into ${VENV#"$MERIDIAN_ROOT"/} (pip)"
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check awscli boto3 ||
		die "pip install awscli boto3 failed"
	"$VENV/bin/python" -c 'import boto3, awscli' || die "boto3/awscli not importable after pip install"
}
