# shellcheck shell=bash
# shellcheck disable=SC2034 # variables here are used by the scripts that source this file
# The three hosts of scripts/hosts-up and scripts/hosts-test: one network namespace per region,
# joined by a bridge in a namespace of its own, each with an address of a private /24 and a
# DNS name the others resolve through /etc/netns/<ns>/hosts. Source it after common.sh; it sets
# no shell options of its own (the callers use `set -euo pipefail`).
#
# Everything made here is named mrd-... and lives inside the namespaces made here: nothing is
# added to the root namespace but the namespaces' names and /etc/netns/mrd-*.

# Where the hosts cluster keeps its config, certificates, data, logs and pids.
HOSTS_DIR="${MERIDIAN_HOSTS_DIR:-$RUN_DIR/hosts}"
# The first three octets of the private /24 the hosts share.
HOSTS_SUBNET="${MERIDIAN_HOSTS_SUBNET:-10.77.0}"
HOSTS_DOMAIN="meridian.test"
# The namespace that holds the bridge joining the hosts.
HOSTS_NET_NS="mrd-net"
HOSTS_BRIDGE="mrd-br0"
# The listeners' ports: the same on every host, as on real machines.
HOSTS_S3_PORT=9000
HOSTS_WEB_PORT=8000
HOSTS_INTERNAL_PORT=7000

# One entry per host (same index = same host): region, short name (namespace mrd-<short>,
# DNS name <short>.meridian.test), latitude, longitude. Address: HOSTS_SUBNET.<index + 1>.
HOSTS_REGIONS=(frankfurt virginia singapore)
HOSTS_SHORT=(fra iad sin)
HOSTS_LAT=(50.1109 38.9586 1.3521)
HOSTS_LON=(8.6821 -77.3570 103.8198)

HOSTS_CONFIG="$HOSTS_DIR/cluster.toml"
HOSTS_ENV="$HOSTS_DIR/hosts.env"
HOSTS_LOG_DIR="$HOSTS_DIR/logs"
HOSTS_PID_DIR="$HOSTS_DIR/pids"
HOSTS_CA="$HOSTS_DIR/tls/ca.crt"

host_ns() { printf 'mrd-%s\n' "${HOSTS_SHORT[$1]}"; }
host_name() { printf '%s.%s\n' "${HOSTS_SHORT[$1]}" "$HOSTS_DOMAIN"; }
host_addr() { printf '%s.%s\n' "$HOSTS_SUBNET" "$(($1 + 1))"; }
host_s3_url() { printf 'https://%s:%s\n' "$(host_name "$1")" "$HOSTS_S3_PORT"; }
host_web_url() { printf 'https://%s:%s\n' "$(host_name "$1")" "$HOSTS_WEB_PORT"; }
host_pid_file() { printf '%s/%s.pid\n' "$HOSTS_PID_DIR" "${HOSTS_REGIONS[$1]}"; }
host_log() { printf '%s/%s.log\n' "$HOSTS_LOG_DIR" "${HOSTS_REGIONS[$1]}"; }

# host_index REGION|SHORT: the index of that host (status 1 if none).
host_index() {
	local i
	for i in "${!HOSTS_REGIONS[@]}"; do
		if [[ "$1" == "${HOSTS_REGIONS[$i]}" || "$1" == "${HOSTS_SHORT[$i]}" ]]; then
			printf '%s\n' "$i"
			return 0
		fi
	done
	return 1
}

# in_host I CMD...: runs CMD inside host I's namespace (its network, its /etc/hosts).
in_host() {
	local ns
	ns="$(host_ns "$1")"
	shift
	ip netns exec "$ns" "$@"
}

# require_netns: dies unless this runs as root with a working `ip netns`.
require_netns() {
	((EUID == 0)) || die "needs root (network namespaces, veth pairs, /etc/netns): run it as root, e.g. sudo $0"
	command -v ip >/dev/null 2>&1 || die "the ip command (iproute2) is missing: apt-get install iproute2"
	ip netns list >/dev/null 2>&1 || die "\`ip netns list\` fails: this kernel or container has no network namespaces"
}

# hosts_namespaces: the namespaces of the hosts layout that exist now.
hosts_namespaces() {
	local ns
	while read -r ns _; do
		case "$ns" in
		"$HOSTS_NET_NS" | mrd-fra | mrd-iad | mrd-sin) printf '%s\n' "$ns" ;;
		esac
	done < <(ip netns list 2>/dev/null)
}

# subnet_free: true unless the root namespace already has an address or route in HOSTS_SUBNET.0/24.
subnet_free() {
	local prefix="${HOSTS_SUBNET//./\\.}\\."
	! { ip -4 -o addr show; ip -4 route show table all; } 2>/dev/null | grep -Eq "(^|[^0-9])${prefix}[0-9]"
}

# hosts_net_up: the namespaces, the bridge, a veth pair per host, addresses, /etc/netns/<ns>/hosts.
hosts_net_up() {
	local i ns peer
	ip netns add "$HOSTS_NET_NS"
	ip -n "$HOSTS_NET_NS" link set lo up
	ip -n "$HOSTS_NET_NS" link add "$HOSTS_BRIDGE" type bridge
	ip -n "$HOSTS_NET_NS" link set "$HOSTS_BRIDGE" up
	for i in "${!HOSTS_REGIONS[@]}"; do
		ns="$(host_ns "$i")"
		peer="$ns-br" # the bridge's end of this host's cable
		ip netns add "$ns"
		ip -n "$ns" link set lo up
		# Both ends are made inside namespaces: the root namespace never sees them.
		ip -n "$HOSTS_NET_NS" link add "$peer" type veth peer name "$ns" netns "$ns"
		ip -n "$HOSTS_NET_NS" link set "$peer" master "$HOSTS_BRIDGE"
		ip -n "$HOSTS_NET_NS" link set "$peer" up
		ip -n "$ns" addr add "$(host_addr "$i")/24" dev "$ns"
		ip -n "$ns" link set "$ns" up
		mkdir -p "/etc/netns/$ns"
		hosts_file >"/etc/netns/$ns/hosts"
	done
}

# hosts_file: the /etc/hosts every host sees (`ip netns exec` bind-mounts it over /etc/hosts).
hosts_file() {
	local i
	printf '# written by scripts/hosts-up\n127.0.0.1\tlocalhost\n::1\tlocalhost\n'
	for i in "${!HOSTS_REGIONS[@]}"; do
		printf '%s\t%s %s\n' "$(host_addr "$i")" "$(host_name "$i")" "${HOSTS_SHORT[$i]}"
	done
}

# hosts_delay MS: every host's outgoing packets wait MS ms (netem on its end of the cable), so
# two hosts are MS ms apart one way. Status 1 (with a warning) when netem is unavailable.
hosts_delay() {
	local ms="$1" i ns err
	for i in "${!HOSTS_REGIONS[@]}"; do
		ns="$(host_ns "$i")"
		if ! err="$(tc -n "$ns" qdisc replace dev "$ns" root netem delay "${ms}ms" 2>&1)"; then
			warn "cannot add a ${ms} ms delay with tc netem on $ns ($err): the kernel has no sch_netem" \
				"module here; continuing WITHOUT a delay between hosts"
			for ns in "${HOSTS_SHORT[@]/#/mrd-}"; do
				tc -n "$ns" qdisc del dev "$ns" root >/dev/null 2>&1 || true
			done
			return 1
		fi
	done
}

# stop_pids PID...: SIGTERM, up to MERIDIAN_STOP_TIMEOUT seconds, then SIGKILL (bounded).
stop_pids() {
	local pid
	(($# > 0)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	all_gone_within "$MERIDIAN_STOP_TIMEOUT" "$@" && return 0
	for pid in "$@"; do
		if pid_alive "$pid"; then
			warn "pid $pid still running after ${MERIDIAN_STOP_TIMEOUT}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	all_gone_within 5 "$@" && return 0
	warn "pid(s) $* did not all exit even after SIGKILL"
}

# hosts_down: stops every process inside the hosts' namespaces (all started by these scripts:
# nothing else runs in them), then deletes the namespaces (and with them the veths and the
# bridge) and /etc/netns/mrd-*. Idempotent.
hosts_down() {
	local ns pid
	local -a pids=() namespaces=()
	mapfile -t namespaces < <(hosts_namespaces)
	for ns in "${namespaces[@]}"; do
		while read -r pid; do
			[[ -n "$pid" ]] && pids+=("$pid")
		done < <(ip netns pids "$ns" 2>/dev/null)
	done
	if ((${#pids[@]} > 0)); then
		info "stopping ${#pids[@]} process(es) in the hosts' namespaces: ${pids[*]}"
		stop_pids "${pids[@]}"
	fi
	rm -f "$HOSTS_PID_DIR"/*.pid 2>/dev/null || true
	for ns in "${namespaces[@]}"; do
		ip netns del "$ns" 2>/dev/null || warn "cannot delete namespace $ns"
	done
	for ns in "$HOSTS_NET_NS" mrd-fra mrd-iad mrd-sin; do
		rm -rf "/etc/netns/${ns:?}"
	done
	rmdir /etc/netns 2>/dev/null || true # only when empty: other namespaces' files stay
	((${#namespaces[@]} == 0)) || info "deleted namespaces ${namespaces[*]} (with their veths and bridge) and /etc/netns/mrd-*"
}

# start_host_node I: starts `meridian node` for host I inside its namespace (log appended to
# host_log I, pid in host_pid_file I); prints the pid. Needs MERIDIAN_BIN.
start_host_node() {
	local i="$1" region log pidf pid n
	region="${HOSTS_REGIONS[$i]}"
	log="$(host_log "$i")"
	pidf="$(host_pid_file "$i")"
	mkdir -p "$HOSTS_LOG_DIR" "$HOSTS_PID_DIR"
	rm -f "$pidf"
	printf '# %s: meridian node --config %s --region %s (namespace %s)\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" \
		"$HOSTS_CONFIG" "$region" "$(host_ns "$i")" >>"$log"
	# Its own session (setsid): the caller's Ctrl-C does not reach it. The child writes its own pid;
	# it holds none of its caller's locks and saved descriptors (fds 6 to 9).
	# shellcheck disable=SC2016 # $$ and $1 are for the inner shell
	in_host "$i" setsid bash -c 'echo "$$" >"$1"; shift; exec "$@"' meridian-launch \
		"$pidf" "$MERIDIAN_BIN" node --config "$HOSTS_CONFIG" --region "$region" \
		</dev/null >>"$log" 2>&1 6>&- 7>&- 8>&- 9>&- &
	for ((n = 50; n > 0; n--)); do
		pid="$(read_pid "$pidf")"
		[[ -n "$pid" ]] && break
		sleep 0.1
	done
	[[ -n "$pid" ]] || die "node $region did not start (no pid file after 5 s); see $log"
	printf '%s\n' "$pid"
}

# host_https_status I URL [CURL ARGS...]: the HTTP status of GET URL from inside host I, trusting
# the cluster CA ("000" when nothing answers within 3 s).
host_https_status() {
	local i="$1" url="$2" code
	shift 2
	code="$(in_host "$i" curl -s -o /dev/null -w '%{http_code}' --connect-timeout 2 --max-time 3 \
		--cacert "$HOSTS_CA" "$@" "$url" 2>/dev/null)" || true
	printf '%s\n' "${code:-000}"
}

# wait_hosts_healthy TIMEOUT I...: waits (at most TIMEOUT seconds, polling every 0.2 s) until the
# /healthz of each host I answers 200 over HTTPS from inside that host; dies (with the log's end)
# if a node exits or the time runs out.
wait_hosts_healthy() {
	local timeout="$1" i pid pending start=$SECONDS
	shift
	local -A ok=()
	while :; do
		pending=0
		for i in "$@"; do
			[[ -n "${ok[$i]:-}" ]] && continue
			pid="$(read_pid "$(host_pid_file "$i")")"
			if ! pid_alive "$pid"; then
				log_tail "$(host_log "$i")"
				die "node ${HOSTS_REGIONS[$i]} (pid ${pid:-?}) exited before answering /healthz"
			fi
			if [[ "$(host_https_status "$i" "$(host_web_url "$i")/healthz")" == 200 ]]; then
				ok[$i]=1
				info "${HOSTS_REGIONS[$i]} healthy after $((SECONDS - start))s"
			else
				pending=$((pending + 1))
			fi
		done
		((pending == 0)) && return 0
		if ((SECONDS - start >= timeout)); then
			for i in "$@"; do
				[[ -n "${ok[$i]:-}" ]] && continue
				info "${HOSTS_REGIONS[$i]}: $(host_web_url "$i")/healthz did not answer 200 within ${timeout}s"
				log_tail "$(host_log "$i")"
			done
			die "the hosts cluster did not become healthy within ${timeout}s"
		fi
		sleep 0.2
	done
}
