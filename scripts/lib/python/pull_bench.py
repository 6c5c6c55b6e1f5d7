#!/usr/bin/env python3
"""Steps of scripts/pull-bench that a shell does badly: one raw TCP stream through the relay,
S3 uploads, and bounded polls of a node's /metrics and placement API.

Usage:
    pull_bench.py raw-tcp --sink-port P --relay-port P --mib N --timeout S
        Sends N MiB over one TCP connection to 127.0.0.1:relay-port (a relay route to a sink
        this command runs on sink-port) and prints the seconds until the sink had it all.
    pull_bench.py put --endpoint URL --access-key K --secret-key S --bucket B --key K --mib N
        Creates the bucket if needed and PUTs N MiB of random bytes (one PUT; the file is made
        under $TMPDIR and deleted). Prints nothing.
    pull_bench.py put-many --endpoint URL ... --bucket B --count N --kib K --threads T
        PUTs N objects of K KiB each, T at a time; prints the seconds it took.
    pull_bench.py metric --web URL --name NAME
        Prints the value of an unlabelled series of the node's /metrics (0 when absent).
    pull_bench.py wait-metric --web URL --name NAME --at-least V --timeout S
        Waits until the series reaches V; prints the seconds waited. Exit 1 on timeout.
    pull_bench.py wait-held --web URL --access-key K --secret-key S --bucket B --key K
                            --node ID --timeout S
        Waits until the placement API lists node ID as a holder; prints the seconds waited.
Only the standard library and boto3 are used.
"""

import argparse
import base64
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request


def raw_tcp(args):
    total = args.mib << 20
    got = {"bytes": 0, "done": None}
    server = socket.create_server(("127.0.0.1", args.sink_port))

    def sink():
        conn, _ = server.accept()
        with conn:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    break
                got["bytes"] += len(data)
                if got["bytes"] >= total and got["done"] is None:
                    got["done"] = time.monotonic()

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    block = os.urandom(1 << 20)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", args.relay_port), timeout=args.timeout) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(args.mib):
            conn.sendall(block)
            if time.monotonic() - start > args.timeout:
                raise SystemExit("raw-tcp: timed out sending")
        conn.shutdown(socket.SHUT_WR)
        thread.join(max(1.0, args.timeout - (time.monotonic() - start)))
    if got["done"] is None:
        raise SystemExit(f"raw-tcp: the sink got {got['bytes']} of {total} bytes in time")
    print(f"{got['done'] - start:.3f}")


def client(args):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5}, max_pool_connections=128),
    )


def ensure_bucket(s3, bucket):
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass


def put(args):
    s3 = client(args)
    ensure_bucket(s3, args.bucket)
    with tempfile.NamedTemporaryFile(dir=os.environ.get("TMPDIR")) as f:
        block = os.urandom(1 << 20)
        for _ in range(args.mib):
            f.write(block if _ % 2 else os.urandom(1 << 20))
        f.flush()
        f.seek(0)
        s3.put_object(Bucket=args.bucket, Key=args.key, Body=f, ContentLength=args.mib << 20)


def put_many(args):
    s3 = client(args)
    ensure_bucket(s3, args.bucket)
    body = os.urandom(args.kib << 10)
    errors = []
    counter = {"next": 0}
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = counter["next"]
                counter["next"] += 1
            if i >= args.count or errors:
                return
            try:
                s3.put_object(Bucket=args.bucket, Key=f"small/{i:06d}", Body=body[:-8] + i.to_bytes(8, "big"))
            except Exception as e:  # noqa: BLE001 - reported below, the run fails
                errors.append(repr(e))

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"put-many: {errors[0]}")
    print(f"{time.monotonic() - start:.3f}")


def metric_value(web, name):
    with urllib.request.urlopen(f"{web}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def metric(args):
    print(int(metric_value(args.web, args.name)))


def wait_metric(args):
    start = time.monotonic()
    while time.monotonic() - start < args.timeout:
        try:
            if metric_value(args.web, args.name) >= args.at_least:
                print(f"{time.monotonic() - start:.3f}")
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"wait-metric: {args.name} < {args.at_least} after {args.timeout}s")


def wait_held(args):
    url = f"{args.web}/api/v1/objects/{args.bucket}/{args.key}/placement"
    auth = base64.b64encode(f"{args.access_key}:{args.secret_key}".encode()).decode()
    start = time.monotonic()
    while time.monotonic() - start < args.timeout:
        try:
            req = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                placement = json.load(r)
            if any(h.get("node_id") == args.node for h in placement.get("holders", [])):
                print(f"{time.monotonic() - start:.3f}")
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"wait-held: node {args.node} does not hold {args.bucket}/{args.key} after {args.timeout}s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("raw-tcp")
    r.add_argument("--sink-port", type=int, required=True)
    r.add_argument("--relay-port", type=int, required=True)
    r.add_argument("--mib", type=int, required=True)
    r.add_argument("--timeout", type=float, default=600)
    for name in ("put", "put-many"):
        s = sub.add_parser(name)
        s.add_argument("--endpoint", required=True)
        s.add_argument("--access-key", required=True)
        s.add_argument("--secret-key", required=True)
        s.add_argument("--bucket", required=True)
        if name == "put":
            s.add_argument("--key", required=True)
            s.add_argument("--mib", type=int, required=True)
        else:
            s.add_argument("--count", type=int, required=True)
            s.add_argument("--kib", type=int, required=True)
            s.add_argument("--threads", type=int, default=64)
    m = sub.add_parser("metric")
    m.add_argument("--web", required=True)
    m.add_argument("--name", required=True)
    w = sub.add_parser("wait-metric")
    w.add_argument("--web", required=True)
    w.add_argument("--name", required=True)
    w.add_argument("--at-least", type=float, required=True)
    w.add_argument("--timeout", type=float, required=True)
    h = sub.add_parser("wait-held")
    h.add_argument("--web", required=True)
    h.add_argument("--access-key", required=True)
    h.add_argument("--secret-key", required=True)
    h.add_argument("--bucket", required=True)
    h.add_argument("--key", required=True)
    h.add_argument("--node", type=int, required=True)
    h.add_argument("--timeout", type=float, required=True)
    args = p.parse_args()
    {
        "raw-tcp": raw_tcp,
        "put": put,
        "put-many": put_many,
        "metric": metric,
        "wait-metric": wait_metric,
        "wait-held": wait_held,
    }[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
