#!/usr/bin/env python3
"""The writing half of scripts/make-fixtures: fills a running cluster with data, records it.

Run with the venv's python (boto3 installed), against a cluster started by make-fixtures:

    fixture_writer.py write   --state FILE --s3 URL... --web URL... --key ID:SECRET --extra-key ID:SECRET \
                              --regions A,B,C
    fixture_writer.py pending --state FILE --s3 URL... --web URL... --key ID:SECRET --missing-region NAME

`write` makes every kind of record the old release stores (objects inline, blob and multipart,
odd keys, tags, metadata, a bucket per user, shares, an access key's writes) and waits until every
region holds every object; `pending` writes two more while one node is down, waits until every
live node holds them, and completes the state file, which make-fixtures then copies into the
fixture as manifest.json.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import boto3
from botocore.config import Config

KiB = 1024
MiB = 1024 * KiB
BUCKET = "fixtures"
# Each timeout below is a bound, polled every 0.2 s.
REPLICATION_TIMEOUT_S = 60


def body(seed: str, size: int) -> bytes:
    """Deterministic bytes from a seed: a random 4 KiB block, repeated with each copy's first 8 bytes
    set to its number, so every object differs and every 4 KiB of it too, yet the fixture's
    tarball stays small (gzip finds each copy in its window)."""
    block = bytearray()
    digest = hashlib.sha256(seed.encode()).digest()
    while len(block) < 4 * KiB:
        digest = hashlib.sha256(digest).digest()
        block += digest
    out = bytearray()
    n = 0
    while len(out) < size:
        out += n.to_bytes(8, "little") + block[8:]
        n += 1
    return bytes(out[:size])


def s3_client(endpoint: str, key: str) -> Any:
    ident, secret = key.split(":", 1)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="frankfurt",
        aws_access_key_id=ident,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
    )


def http(
    method: str,
    url: str,
    *,
    data: Any = None,
    headers: dict[str, str] | None = None,
    basic: str | None = None,
    bearer: str | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    hdrs = dict(headers or {})
    payload = None
    if data is not None:
        if isinstance(data, bytes):
            payload = data
        else:
            payload = json.dumps(data).encode()
            hdrs.setdefault("content-type", "application/json")
    if basic:
        hdrs["authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    if bearer:
        hdrs["authorization"] = "Bearer " + bearer
    req = urllib.request.Request(url, data=payload, method=method, headers=hdrs)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def json_ok(status: int, raw: bytes, what: str) -> Any:
    if status // 100 != 2:
        sys.exit(f"fixture_writer: {what}: HTTP {status}: {raw[:500]!r}")
    return json.loads(raw) if raw else None


def sign_in(web: str, login: str) -> str:
    status, raw, _ = http("POST", f"{web}/api/v1/session", data={"login": login, "password": f"{login}-password"})
    return json_ok(status, raw, f"sign in as {login}")["access_token"]


def record(
    state: dict,
    bucket: str,
    key: str,
    data: bytes,
    *,
    kind: str,
    tags: dict | None = None,
    metadata: dict | None = None,
    owner: str | None = None,
    writer: str,
) -> None:
    state["objects"].append(
        {
            "bucket": bucket,
            "key": key,
            "size": len(data),
            "md5": hashlib.md5(data).hexdigest(),
            "kind": kind,
            "tags": tags or {},
            "metadata": metadata or {},
            "owner": owner,
            "writer": writer,
        }
    )


def put(
    s3: Any,
    state: dict,
    bucket: str,
    key: str,
    size: int,
    *,
    kind: str,
    tags: dict | None = None,
    metadata: dict | None = None,
    writer: str,
) -> None:
    data = body(f"{bucket}/{key}", size)
    extra: dict[str, Any] = {}
    if tags:
        extra["Tagging"] = "&".join(f"{k}={v}" for k, v in tags.items())
    if metadata:
        extra["Metadata"] = metadata
    s3.put_object(Bucket=bucket, Key=key, Body=data, **extra)
    record(state, bucket, key, data, kind=kind, tags=tags, metadata=metadata, writer=writer)


def user_upload(web: str, token: str, state: dict, user: str, bucket: str, key: str, size: int) -> None:
    """A file uploaded the way the panel does it: a presigned PUT of POST /api/v1/uploads."""
    data = body(f"{bucket}/{key}", size)
    plan = json_ok(
        *http(
            "POST",
            f"{web}/api/v1/uploads",
            bearer=token,
            data={"bucket": bucket, "key": key, "size": size, "content_type": "text/plain"},
        )[:2],
        f"upload plan for {bucket}/{key}",
    )
    status, raw, _ = http("PUT", plan["put"]["url"], data=data, headers=plan.get("headers") or {})
    if status != 200:
        sys.exit(f"fixture_writer: presigned PUT of {bucket}/{key}: HTTP {status}: {raw[:300]!r}")
    record(state, bucket, key, data, kind="inline" if size <= 16 * KiB else "blob", owner=user, writer=f"user:{user}")


def wait_replicated(webs: list[str], key: str, objects: list[dict], regions: set[str]) -> None:
    """Until every object's placement names every region in `regions` as a holder (bounded)."""
    deadline = time.monotonic() + REPLICATION_TIMEOUT_S
    todo = list(objects)
    while todo:
        obj = todo[0]
        path = urllib.request.quote(f"{obj['bucket']}/{obj['key']}", safe="/")
        status, raw, _ = http("GET", f"{webs[0]}/api/v1/objects/{path}/placement", basic=key)
        if status == 200:
            holders = {h.get("region") for h in json.loads(raw)["holders"]}
            if regions <= holders:
                todo.pop(0)
                continue
        if time.monotonic() > deadline:
            sys.exit(
                f"fixture_writer: {obj['bucket']}/{obj['key']} not held by {sorted(regions)} within "
                f"{REPLICATION_TIMEOUT_S}s (last: HTTP {status} {raw[:300]!r})"
            )
        time.sleep(0.2)


def wait_users(web: str, token: str, logins: set[str]) -> list[dict]:
    """The user list once it names every login in `logins` (the leader syncs it from Auth)."""
    deadline = time.monotonic() + REPLICATION_TIMEOUT_S
    while True:
        users = json_ok(*http("GET", f"{web}/api/v1/users", bearer=token)[:2], "users")["users"]
        if logins <= {u["login"] for u in users}:
            return users
        if time.monotonic() > deadline:
            sys.exit(f"fixture_writer: the user list lacks some of {sorted(logins)}: {users}")
        time.sleep(0.2)


def count_events(web: str, key: str) -> int:
    total, after = 0, "0"
    while True:
        status, raw, _ = http(
            "GET", f"{web}/api/v1/events?after={after}&limit=1000", basic=key, headers={"accept": "application/json"}
        )
        page = json_ok(status, raw, "events")
        total += len(page["events"])
        if not page["events"]:
            return total
        after = page["next"]


def cmd_write(args: argparse.Namespace) -> None:
    state: dict[str, Any] = {"objects": [], "shares": {}, "users": [], "regions": args.regions.split(",")}
    s3 = s3_client(args.s3[0], args.key)
    s3.create_bucket(Bucket=BUCKET)
    put(s3, state, BUCKET, "inline/small.txt", 1000, kind="inline", writer="dev-key")
    put(s3, state, BUCKET, "inline/empty", 0, kind="inline", writer="dev-key")
    put(s3, state, BUCKET, "inline/at-threshold.bin", 16 * KiB, kind="inline", writer="dev-key")
    put(s3, state, BUCKET, "blob/just-over.bin", 16 * KiB + 1, kind="blob", writer="dev-key")
    put(s3, state, BUCKET, "blob/300k.bin", 300 * KiB, kind="blob", writer="dev-key")
    put(
        s3,
        state,
        BUCKET,
        "tagged/with tags and meta.txt",
        5000,
        kind="inline",
        writer="dev-key",
        tags={"team": "catalog", "stage": "final"},
        metadata={"origin": "fixture", "reel": "7"},
    )
    put(
        s3,
        state,
        BUCKET,
        "tagged/blob-tags.bin",
        100 * KiB,
        kind="blob",
        writer="dev-key",
        tags={"codec": "h264"},
        metadata={"lang": "de"},
    )
    # Odd keys: spaces, unicode, a dot-dot segment (legal in S3: only a name), percent, very long.
    odd = [
        "dir with space/a+b%c#d?e.txt",
        "ünïcødé/файл 😀.bin",
        "a/../b",
        "./dot/./segment",
        "pct/100%25 done %2F not-a-slash.txt",
        "trailing-slash/",
        "long/" + "x" * 900,
    ]
    for i, key in enumerate(odd):
        put(
            s3,
            state,
            BUCKET,
            key,
            200 + i * 9000,
            kind="inline" if 200 + i * 9000 <= 16 * KiB else "blob",
            writer="dev-key",
        )
    # Multipart: two parts of 5 MiB.
    mkey = "multipart/two-parts.bin"
    data = body(f"{BUCKET}/{mkey}", 10 * MiB)
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=mkey, Metadata={"parts": "2"})
    parts = []
    for n in (1, 2):
        chunk = data[(n - 1) * 5 * MiB : n * 5 * MiB]
        r = s3.upload_part(Bucket=BUCKET, Key=mkey, UploadId=up["UploadId"], PartNumber=n, Body=chunk)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    done = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=mkey, UploadId=up["UploadId"], MultipartUpload={"Parts": parts}
    )
    record(state, BUCKET, mkey, data, kind="multipart", metadata={"parts": "2"}, writer="dev-key")
    state["objects"][-1]["etag"] = done["ETag"].strip('"')
    # The access key of `meridian key create`: its own bucket and object.
    s3k = s3_client(args.s3[1], args.extra_key)
    s3k.create_bucket(Bucket="keyed")
    put(s3k, state, "keyed", "written-by-created-key.txt", 777, kind="inline", writer="created-key")
    # A bucket per user, through the web API, with a file uploaded as that user.
    web = args.web[0]
    tokens = {}
    for user, size in (("alice", 40 * KiB), ("bob", 2 * KiB)):
        token = sign_in(web, user)
        tokens[user] = token
        bucket = f"{user}-files"
        json_ok(*http("POST", f"{web}/api/v1/buckets", bearer=token, data={"name": bucket})[:2], f"bucket {bucket}")
        user_upload(web, token, state, user, bucket, "notes/first.txt", size)
    # Shares as alice: a password link, a plain public link, and a read share with bob.
    alice = tokens["alice"]
    shared_key = "notes/first.txt"
    pw = "fixture-share-password"
    made = json_ok(
        *http(
            "POST",
            f"{web}/api/v1/shares",
            bearer=alice,
            data={"bucket": "alice-files", "key": shared_key, "password": pw},
        )[:2],
        "password share",
    )
    state["shares"]["password"] = {
        "id": made["share"]["id"],
        "url": made["url"],
        "password": pw,
        "bucket": "alice-files",
        "key": shared_key,
    }
    made = json_ok(
        *http("POST", f"{web}/api/v1/shares", bearer=alice, data={"bucket": "alice-files", "key": shared_key})[:2],
        "public share",
    )
    state["shares"]["public"] = {
        "id": made["share"]["id"],
        "url": made["url"],
        "bucket": "alice-files",
        "key": shared_key,
    }
    users = wait_users(web, alice, {"alice", "bob", "admin"})
    bob_id = next(u["id"] for u in users if u["login"] == "bob")
    made = json_ok(
        *http(
            "POST",
            f"{web}/api/v1/shares",
            bearer=alice,
            data={"bucket": "alice-files", "key": shared_key, "user": bob_id},
        )[:2],
        "user share",
    )
    state["shares"]["user"] = {"id": made["share"]["id"], "user": bob_id, "bucket": "alice-files", "key": shared_key}
    # One use of the plain link, so a share_use is in the history.
    status, raw, _ = http("GET", f"{web}{state['shares']['public']['url']}")
    if status != 302:
        sys.exit(f"fixture_writer: public link: HTTP {status}: {raw[:300]!r}")
    state["users"] = users
    ident, secret = args.extra_key.split(":", 1)
    state["created_key"] = {"access_key_id": ident, "secret_access_key": secret, "name": "fixture-key"}
    ident, secret = args.key.split(":", 1)
    state["dev_key"] = {"access_key_id": ident, "secret_access_key": secret}
    wait_replicated(args.web, args.key, state["objects"], set(state["regions"]))
    state["events_before_pending"] = count_events(web, args.key)
    with open(args.state, "w") as f:
        json.dump(state, f, indent=1)
    print(f"fixture_writer: wrote {len(state['objects'])} objects, every region holds them")


def cmd_pending(args: argparse.Namespace) -> None:
    with open(args.state) as f:
        state = json.load(f)
    s3 = s3_client(args.s3[0], args.key)
    before = len(state["objects"])
    put(s3, state, BUCKET, "pending/while-down-1.bin", 64 * KiB, kind="blob", writer="dev-key")
    put(
        s3, state, BUCKET, "pending/while-down-2.bin", 200 * KiB, kind="blob", writer="dev-key", tags={"pending": "yes"}
    )
    new = state["objects"][before:]
    live = set(state["regions"]) - {args.missing_region}
    wait_replicated(args.web, args.key, new, live)
    state["pending_pull"] = {
        "region": args.missing_region,
        "objects": [{"bucket": o["bucket"], "key": o["key"]} for o in new],
    }
    state["events"] = count_events(args.web[0], args.key)
    with open(args.state, "w") as f:
        json.dump(state, f, indent=1)
    print(f"fixture_writer: 2 objects written while {args.missing_region} was down; {state['events']} events")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--extra-key", required=True)
    w.add_argument("--regions", required=True)
    pe = sub.add_parser("pending")
    pe.add_argument("--missing-region", required=True)
    for sp in (w, pe):
        sp.add_argument("--state", required=True)
        sp.add_argument("--s3", nargs="+", required=True)
        sp.add_argument("--web", nargs="+", required=True)
        sp.add_argument("--key", required=True)
    args = p.parse_args()
    {"write": cmd_write, "pending": cmd_pending}[args.cmd](args)


if __name__ == "__main__":
    main()
