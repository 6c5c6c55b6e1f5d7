#!/usr/bin/env bash
# packaging/install.sh: installs Meridian on one host the way docs/deploy.md describes:
#
#   user and group `meridian` (system account, no login shell, home /var/lib/meridian)
#   /usr/local/bin/meridian                      the binary                    0755 root:root
#   /etc/systemd/system/meridian.service         the hardened unit             0644 root:root
#   /etc/meridian/                               configuration                 0750 root:meridian
#   /etc/meridian/cluster.toml.example           the production example        0640 root:meridian
#   /etc/meridian/meridian.env                   MERIDIAN_REGION=NAME          0640 root:meridian
#   /etc/meridian/tls/                           ca.crt, node.crt, node.key    0750 / 0640 root:meridian
#   /var/lib/meridian/, /var/lib/meridian/data   the node's state              0750 meridian:meridian
#   /usr/local/share/doc/meridian/               deploy.md, packaging README   0644
#
# It can run again at any time (an upgrade of the binary, a fixed mode): it never overwrites
# cluster.toml, meridian.env (unless --region is given) or the certificates, it only sets their
# owner and mode. It neither enables nor starts the service; it prints what to do next.
#
# Usage: packaging/install.sh [--binary PATH] [--region NAME]
#   --binary PATH   the meridian binary to install (default: target/release/meridian of this
#                   repository, built with `cargo build --release -p meridian-node`)
#   --region NAME   the [[region]] this host runs, written to /etc/meridian/meridian.env
# Run as root.
set -euo pipefail

MERIDIAN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly MERIDIAN_ROOT
readonly PACKAGING="${MERIDIAN_ROOT}/packaging"
readonly USER_NAME="meridian"
readonly BIN="/usr/local/bin/meridian"
readonly UNIT="/etc/systemd/system/meridian.service"
readonly CONF_DIR="/etc/meridian"
readonly TLS_DIR="${CONF_DIR}/tls"
readonly ENV_FILE="${CONF_DIR}/meridian.env"
readonly STATE_DIR="/var/lib/meridian"
readonly DOC_DIR="/usr/local/share/doc/meridian"

binary="${MERIDIAN_ROOT}/target/release/meridian"
region=""

say() { printf 'install: %s\n' "$*"; }
die() {
	printf 'install: %s\n' "$*" >&2
	exit 1
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--binary) binary="${2:?--binary needs a path}"; shift 2 ;;
	--region) region="${2:?--region needs a name}"; shift 2 ;;
	-h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
done

[[ "$(id -u)" -eq 0 ]] || die "run as root (it creates a system user and writes under /etc, /usr/local, /var/lib)"
[[ -x "${binary}" ]] || die "no executable at ${binary}: build it with \`cargo build --release -p meridian-node\` or pass --binary PATH"
"${binary}" --version >/dev/null || die "${binary} --version failed: not a meridian binary for this host?"
if [[ -n "${region}" && ! "${region}" =~ ^[a-z0-9-]+$ ]]; then
	die "--region ${region}: region names are lowercase letters, digits and '-'"
fi

# The account the node runs as: a system user with no shell, whose home is the state directory.
if ! getent group "${USER_NAME}" >/dev/null; then
	say "creating group ${USER_NAME}"
	groupadd --system "${USER_NAME}"
fi
if ! getent passwd "${USER_NAME}" >/dev/null; then
	say "creating user ${USER_NAME}"
	nologin="$(command -v nologin || echo /usr/sbin/nologin)"
	useradd --system --gid "${USER_NAME}" --home-dir "${STATE_DIR}" --no-create-home \
		--shell "${nologin}" --comment "Meridian node" "${USER_NAME}"
fi

# Directories: configuration readable by the node but owned by root (the node cannot change
# its own config or certificates); state owned by the node. `install -d` also fixes the owner
# and mode of a directory that already exists.
install -d -m 0750 -o root -g "${USER_NAME}" "${CONF_DIR}" "${TLS_DIR}"
install -d -m 0750 -o "${USER_NAME}" -g "${USER_NAME}" "${STATE_DIR}" "${STATE_DIR}/data"
install -d -m 0755 -o root -g root "${DOC_DIR}"

# The binary replaces the old one in one step (install unlinks first), so a running node keeps
# its old executable until it is restarted.
say "installing ${binary} as ${BIN} ($("${binary}" --version))"
install -m 0755 -o root -g root "${binary}" "${BIN}"
install -m 0644 -o root -g root "${PACKAGING}/systemd/meridian.service" "${UNIT}"
install -m 0640 -o root -g "${USER_NAME}" "${PACKAGING}/etc/meridian/cluster.toml.example" \
	"${CONF_DIR}/cluster.toml.example"
install -m 0644 -o root -g root "${MERIDIAN_ROOT}/docs/deploy.md" "${PACKAGING}/README.md" "${DOC_DIR}/"

# The region of this host, read by the unit's ExecStart.
if [[ -n "${region}" ]]; then
	say "this host runs region ${region} (${ENV_FILE})"
	tmp="$(mktemp "${CONF_DIR}/.meridian.env.XXXXXX")"
	{
		echo "# The [[region]] of /etc/meridian/cluster.toml this host runs (packaging/install.sh --region)."
		echo "MERIDIAN_REGION=${region}"
		if [[ -f "${ENV_FILE}" ]]; then
			grep -v -e '^MERIDIAN_REGION=' -e '^# The \[\[region\]\]' "${ENV_FILE}" || true
		fi
	} >"${tmp}"
	mv -f "${tmp}" "${ENV_FILE}"
fi

# Owner and mode of what the operator put in place: readable by the node, writable by root only.
for file in "${ENV_FILE}" "${CONF_DIR}/cluster.toml" "${TLS_DIR}"/*; do
	if [[ -f "${file}" && "${file}" != "${TLS_DIR}/ca.key" ]]; then
		chown root:"${USER_NAME}" "${file}"
		chmod 0640 "${file}"
	fi
done
if [[ -e "${TLS_DIR}/ca.key" ]]; then
	chown root:root "${TLS_DIR}/ca.key"
	chmod 0600 "${TLS_DIR}/ca.key"
	say "WARNING: ${TLS_DIR}/ca.key is on this node: the cluster CA's key belongs on the admin machine only (docs/deploy.md, Certificates)"
fi

if [[ -d /run/systemd/system ]]; then
	systemctl daemon-reload
fi

missing=()
[[ -f "${CONF_DIR}/cluster.toml" ]] || missing+=("write ${CONF_DIR}/cluster.toml (start from cluster.toml.example there)")
grep -qs '^MERIDIAN_REGION=.' "${ENV_FILE}" || missing+=("name this host's region: $0 --region NAME")
say "done."
if [[ ${#missing[@]} -gt 0 ]]; then
	for step in "${missing[@]}"; do
		say "next: ${step}"
	done
fi
say "then: systemctl enable --now meridian; journalctl -u meridian -f"
