#!/usr/bin/env python3
"""Read a Meridian cluster.toml and print what the shell scripts need.

Usage:
    cluster_config.py regions FILE   one line per [[region]], in file order, tab-separated:
                                     id  name  role  s3_url  web_url  internal_addr  data_dir
    cluster_config.py env FILE       shell-sourceable exports (the content of run/cluster.env)
    cluster_config.py dev-key FILE   access_key_id <TAB> secret_access_key
    cluster_config.py dev-auth FILE  host:port of the stand-in Auth service when [auth] points
                                     at a loopback address (cluster-up starts it); else nothing

URLs are client URLs: a wildcard listen host (0.0.0.0, ::) becomes the loopback address.
data_dir is absolute: a relative one is resolved against the config file's directory,
as `meridian node` does. Only the standard library is used (tomllib, Python >= 3.11).
Exit status 2 with a one-line message on stderr when the file is missing or malformed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        sys.stderr.write(f"cluster_config.py: needs Python >= 3.11 (tomllib); found {sys.version.split()[0]}\n")
        sys.exit(2)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ADDR_RE = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):(?P<port>[0-9]{1,5})$")
WILDCARD = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "[0:0:0:0:0:0:0:0]": "[::1]"}


class ConfigError(Exception):
    pass


def _client_addr(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f'{what}: expected a string "host:port", got {value!r}')
    m = ADDR_RE.match(value.strip())
    if not m or not 0 < int(m.group("port")) < 65536:
        raise ConfigError(f'{what}: expected "host:port", got {value!r}')
    host = WILDCARD.get(m.group("host"), m.group("host"))
    return f"{host}:{int(m.group('port'))}"


def _no_control(value: str, what: str) -> str:
    if any(c in value for c in "\t\n\r\0"):
        raise ConfigError(f"{what}: must not contain tabs or newlines")
    return value


def load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid TOML: {e}") from None
    base = os.path.dirname(os.path.abspath(path))

    raw_regions = doc.get("region")
    if not isinstance(raw_regions, list) or not raw_regions:
        raise ConfigError("no [[region]] tables")
    tls = doc.get("tls") if isinstance(doc.get("tls"), dict) else {}
    plain_networks = []
    for cidr in tls.get("plain_http_networks", []) or []:
        try:
            plain_networks.append(ipaddress.ip_network(cidr, strict=False))
        except (TypeError, ValueError):
            raise ConfigError(f"[tls] plain_http_networks: bad CIDR {cidr!r}") from None

    def scheme(addr: str) -> str:
        """http where the node answers plain HTTP (loopback, plain_http_networks), else https."""
        host = addr.rsplit(":", 1)[0].strip("[]")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return "https"
        return "http" if ip.is_loopback or any(ip in n for n in plain_networks) else "https"

    regions = []
    seen_names: set[str] = set()
    seen_ids: set[int] = set()
    for i, r in enumerate(raw_regions, 1):
        where = f"[[region]] #{i}"
        if not isinstance(r, dict):
            raise ConfigError(f"{where}: not a table")
        name = r.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ConfigError(f"{where}: name must match {NAME_RE.pattern}, got {name!r}")
        where = f"region {name!r}"
        if name in seen_names:
            raise ConfigError(f"{where}: duplicate name")
        seen_names.add(name)
        rid = r.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool) or rid < 0:
            raise ConfigError(f"{where}: id must be a non-negative integer, got {rid!r}")
        if rid in seen_ids:
            raise ConfigError(f"{where}: duplicate id {rid}")
        seen_ids.add(rid)
        role = r.get("role", "voter")
        if not isinstance(role, str) or not NAME_RE.match(role):
            raise ConfigError(f"{where}: bad role {role!r}")
        data_dir = r.get("data_dir")
        if not isinstance(data_dir, str) or not data_dir.strip():
            raise ConfigError(f"{where}: data_dir must be a non-empty string")
        data_dir = _no_control(data_dir, f"{where}: data_dir")
        data_dir = os.path.normpath(os.path.join(base, os.path.expanduser(data_dir)))
        regions.append(
            {
                "id": rid,
                "name": name,
                "role": role,
                "s3_url": scheme(s3 := _client_addr(r.get("s3"), f"{where}: s3")) + "://" + s3,
                "web_url": scheme(web := _client_addr(r.get("web"), f"{where}: web")) + "://" + web,
                "internal": _client_addr(r.get("internal"), f"{where}: internal"),
                "data_dir": data_dir,
            }
        )

    # [dev_key] is optional (a cluster off loopback has none); without it there are no
    # credentials to hand out, and keys come from `meridian key create`.
    key = doc.get("dev_key")
    dev_key = None
    if key is not None:
        if not isinstance(key, dict):
            raise ConfigError("[dev_key] must be a table")
        akid, secret = key.get("access_key_id"), key.get("secret_access_key")
        if not isinstance(akid, str) or not akid or not isinstance(secret, str) or not secret:
            raise ConfigError("[dev_key] needs non-empty access_key_id and secret_access_key")
        _no_control(akid, "[dev_key] access_key_id")
        _no_control(secret, "[dev_key] secret_access_key")
        dev_key = (akid, secret)
    auth = doc.get("auth")
    dev_auth = None
    if isinstance(auth, dict) and isinstance(auth.get("login_url"), str):
        m = re.match(r"^http://(?P<addr>[^/]+)/", auth["login_url"])
        if m:
            addr = _client_addr(m.group("addr"), "[auth] login_url")
            host = addr.rsplit(":", 1)[0]
            if host.startswith("127.") or host == "[::1]":
                dev_auth = addr
    return {"path": os.path.abspath(path), "regions": regions, "dev_key": dev_key, "dev_auth": dev_auth}


def cmd_regions(cfg: dict) -> None:
    for r in cfg["regions"]:
        print("\t".join(str(r[k]) for k in ("id", "name", "role", "s3_url", "web_url", "internal", "data_dir")))


def cmd_env(cfg: dict) -> None:
    regions = cfg["regions"]
    first = regions[0]
    values = [
        ("MERIDIAN_CONFIG", cfg["path"]),
        ("MERIDIAN_S3_ENDPOINTS", " ".join(r["s3_url"] for r in regions)),
        ("MERIDIAN_WEB_ENDPOINTS", " ".join(r["web_url"] for r in regions)),
        ("MERIDIAN_REGIONS", " ".join(r["name"] for r in regions)),
    ]
    if cfg["dev_key"]:
        akid, secret = cfg["dev_key"]
        values += [("AWS_ACCESS_KEY_ID", akid), ("AWS_SECRET_ACCESS_KEY", secret)]
    values += [
        ("AWS_REGION", first["name"]),
        # aws-cli v1 and boto3 read the region from AWS_DEFAULT_REGION, not AWS_REGION.
        ("AWS_DEFAULT_REGION", first["name"]),
        ("AWS_ENDPOINT_URL", first["s3_url"]),
    ]
    if cfg["dev_auth"]:
        values.append(("MERIDIAN_DEV_AUTH_URL", "http://" + cfg["dev_auth"]))
    print("# Meridian dev cluster, written by scripts/cluster-up. Use: . run/cluster.env")
    for k, v in values:
        print(f"export {k}={shlex.quote(v)}")


def cmd_dev_key(cfg: dict) -> None:
    # Nothing printed: the config has no [dev_key].
    if cfg["dev_key"]:
        print("\t".join(cfg["dev_key"]))


def cmd_dev_auth(cfg: dict) -> None:
    if cfg["dev_auth"]:
        print(cfg["dev_auth"])


COMMANDS = {"regions": cmd_regions, "env": cmd_env, "dev-key": cmd_dev_key, "dev-auth": cmd_dev_auth}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in COMMANDS:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    path = argv[2]
    try:
        cfg = load(path)
    except ConfigError as e:
        sys.stderr.write(f"cluster_config.py: {path}: {e}\n")
        return 2
    COMMANDS[argv[1]](cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
