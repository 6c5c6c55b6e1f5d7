#!/usr/bin/env python3
"""The boto3 part of scripts/smoke: awkward keys, multipart, every S3 endpoint.

Run with the venv's python (boto3 installed). Reads the cluster from the environment that
run/cluster.env sets: MERIDIAN_S3_ENDPOINTS (space-separated), AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.

Writes go through the first endpoint; reads go through each. A read through the writing
endpoint must see the write at once; a read through another endpoint may lag and is
retried for up to --consistency-wait seconds (the lag is reported).

Prints "ok   ..." / "FAIL ..." per check; writes "PASSED FAILED" to --counts-file.
Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
import traceback
import uuid

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

MiB = 1024 * 1024

# Keys that break naive URL, SigV4 and XML handling. Sizes in bytes.
SMALL_OBJECTS = [
    ("dir with space/a+b%c#d?e.txt", 1234),
    ("ünïcødé/файл 😀.bin", 40_000),
    ("pct/100%25 done %2F not-a-slash.txt", 77),  # must not be decoded twice
    ("sym/&$@=;:,!'()*~ x.txt", 4096),  # '&' and "'" also test XML escaping
    ("plain/nested/deeper/hello.txt", 15),
    ("plain/zero-bytes", 0),
    ("top level ü.txt", 999),  # no '/': a Contents entry at the root of a delimiter listing
]
MULTIPART_KEY = "multipart/big file ü.bin"
MULTIPART_SIZE = 12 * MiB + 123  # parts of 5 MiB: 5 + 5 + 2 MiB+123 B = 3 parts
MULTIPART_PARTS = 3
TRANSFER = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4, use_threads=True)


def describe(e: ClientError) -> str:
    err = e.response.get("Error", {})
    meta = e.response.get("ResponseMetadata", {})
    return (
        f"S3 error {err.get('Code')!r} (HTTP {meta.get('HTTPStatusCode')}): "
        f"{err.get('Message')!r} in {e.operation_name}"
    )


class Smoke:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.passed = 0
        self.failed = 0
        self.endpoints: list[str] = args.endpoints
        cfg = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        self.clients = {
            ep: boto3.client("s3", endpoint_url=ep, region_name=args.region, config=cfg) for ep in self.endpoints
        }
        self.writer = self.clients[self.endpoints[0]]
        self.bucket = f"smoke-boto3-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.work = args.work_dir
        self.src = os.path.join(self.work, "src")
        self.files: dict[str, tuple[str, int, str]] = {}  # key -> (path, size, sha256)
        self.bucket_created = False

    # ---- reporting ----
    def check(self, name: str, fn, *a, **kw) -> bool:
        t0 = time.monotonic()
        try:
            note = fn(*a, **kw)
        except AssertionError as e:
            return self._fail(name, str(e) or "assertion failed")
        except ClientError as e:
            return self._fail(name, describe(e))
        except (BotoCoreError, OSError) as e:
            return self._fail(name, f"{type(e).__name__}: {e}")
        except Exception:  # noqa: BLE001 - report anything else with its traceback
            return self._fail(name, traceback.format_exc().rstrip())
        dt = time.monotonic() - t0
        self.passed += 1
        suffix = f" ({note})" if note else ""
        print(f"ok   boto3: {name}{suffix} [{dt:.1f}s]", flush=True)
        return True

    def _fail(self, name: str, detail: str) -> bool:
        self.failed += 1
        print(f"FAIL boto3: {name}", flush=True)
        for line in detail.splitlines():
            print(f"       {line}", flush=True)
        return False

    def eventually(self, ep: str, fn):
        """fn() through endpoint ep; retried (other endpoints only) until it passes or the wait ends."""
        wait = 0.0 if ep == self.endpoints[0] else self.args.consistency_wait
        t0 = time.monotonic()
        retried = False
        while True:
            try:
                fn()
                return f"visible after {time.monotonic() - t0:.1f}s of retries" if retried else None
            except (AssertionError, ClientError) as e:
                if time.monotonic() - t0 >= wait:
                    if wait > 0:
                        msg = describe(e) if isinstance(e, ClientError) else str(e)
                        raise AssertionError(f"{msg}\n(still so after {wait:g}s of retries)") from None
                    raise
                retried = True
                time.sleep(0.2)

    # ---- data ----
    def make_files(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.src)
        objects = SMALL_OBJECTS + [(MULTIPART_KEY, MULTIPART_SIZE)]
        for i, (key, size) in enumerate(objects):
            path = os.path.join(self.src, f"obj{i}")
            data = os.urandom(size)
            with open(path, "wb") as f:
                f.write(data)
            self.files[key] = (path, size, hashlib.sha256(data).hexdigest())

    @staticmethod
    def sha256_file(path: str) -> str:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def expected_keys(self) -> list[str]:
        # S3 lists keys in the order of their UTF-8 bytes.
        return sorted(self.files, key=lambda k: k.encode("utf-8"))

    # ---- steps ----
    def create_bucket(self) -> None:
        self.writer.create_bucket(Bucket=self.bucket)
        self.bucket_created = True

    def head_bucket(self, ep: str):
        return self.eventually(ep, lambda: self.clients[ep].head_bucket(Bucket=self.bucket))

    def upload_small(self) -> str:
        for key, _size in SMALL_OBJECTS:
            path, _, _ = self.files[key]
            try:
                self.writer.upload_file(path, self.bucket, key)
            except Exception as e:  # noqa: BLE001 (boto3's transfer manager raises several unrelated types)
                raise AssertionError(f"upload_file of key {key!r} failed: {e}") from None
        return f"{len(SMALL_OBJECTS)} keys"

    def upload_multipart(self) -> str:
        path, size, _ = self.files[MULTIPART_KEY]
        self.writer.upload_file(path, self.bucket, MULTIPART_KEY, Config=TRANSFER)
        head = self.writer.head_object(Bucket=self.bucket, Key=MULTIPART_KEY)
        etag = head["ETag"].strip('"')
        assert head["ContentLength"] == size, f"head_object ContentLength {head['ContentLength']} != uploaded {size}"
        assert etag.endswith(f"-{MULTIPART_PARTS}"), (
            f"ETag {head['ETag']} does not end in -{MULTIPART_PARTS}: not stored as a "
            f"{MULTIPART_PARTS}-part multipart upload?"
        )
        return f"{size} bytes, ETag {head['ETag']}"

    def list_all(self, ep: str) -> None:
        def attempt():
            client = self.clients[ep]
            got: list[tuple[str, int]] = []
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, PaginationConfig={"PageSize": 3}
            )
            for page in pages:
                got += [(o["Key"], o["Size"]) for o in page.get("Contents", [])]
            want = [(k, self.files[k][1]) for k in self.expected_keys()]
            if got != want:
                missing = sorted(set(want) - set(got))
                extra = sorted(set(got) - set(want))
                lines = [f"listing (key, size) differs from what was uploaded through {self.endpoints[0]}:"]
                lines += [f"  missing: {k!r} size {s}" for k, s in missing]
                lines += [f"  unexpected: {k!r} size {s}" for k, s in extra]
                if not missing and not extra:
                    lines.append(f"  same keys, wrong order: got {[k for k, _ in got]!r}")
                raise AssertionError("\n".join(lines))

        return self.eventually(ep, attempt)

    def list_delimited(self, ep: str) -> None:
        def attempt():
            client = self.clients[ep]
            resp = client.list_objects_v2(Bucket=self.bucket, Delimiter="/")
            prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
            keys = [o["Key"] for o in resp.get("Contents", [])]
            want_prefixes = sorted({k.split("/", 1)[0] + "/" for k in self.files if "/" in k}, key=lambda p: p.encode())
            want_keys = [k for k in self.expected_keys() if "/" not in k]
            assert prefixes == want_prefixes, f"CommonPrefixes {prefixes!r} != expected {want_prefixes!r}"
            assert keys == want_keys, f"Contents keys {keys!r} != expected {want_keys!r}"

        return self.eventually(ep, attempt)

    def download_all(self, ep: str) -> str:
        client = self.clients[ep]
        out_dir = os.path.join(self.work, "down-" + ep.split("://", 1)[-1].replace(":", "_"))
        os.makedirs(out_dir, exist_ok=True)
        lag = None
        for i, key in enumerate(self.expected_keys()):
            _path, size, sha = self.files[key]
            dest = os.path.join(out_dir, f"obj{i}")

            def fetch(key=key, dest=dest):
                try:
                    client.download_file(self.bucket, key, dest, Config=TRANSFER)
                except ClientError as e:  # a missing key on a lagging node: retry
                    raise AssertionError(f"download_file of {key!r} failed: {e}") from None

            note = self.eventually(ep, fetch)
            lag = lag or note
            got_size = os.path.getsize(dest)
            got_sha = self.sha256_file(dest)
            assert got_size == size and got_sha == sha, (
                f"key {key!r}: downloaded {got_size} bytes sha256 {got_sha}, uploaded {size} bytes sha256 {sha}"
            )
        shutil.rmtree(out_dir, ignore_errors=True)
        total = sum(s for _, s, _ in self.files.values())
        return f"{len(self.files)} objects, {total} bytes, sha256 equal" + (f", {lag}" if lag else "")

    def range_across_parts(self, ep: str) -> str:
        path, _, _ = self.files[MULTIPART_KEY]
        start, end = 5 * MiB - 100, 5 * MiB + 99  # straddles the part 1 / part 2 boundary
        with open(path, "rb") as f:
            f.seek(start)
            want = f.read(end - start + 1)
        resp = self.clients[ep].get_object(Bucket=self.bucket, Key=MULTIPART_KEY, Range=f"bytes={start}-{end}")
        got = resp["Body"].read()
        status = resp["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 206, f"Range GET answered HTTP {status}, expected 206"
        assert got == want, f"Range bytes={start}-{end}: got {len(got)} bytes, not the uploaded ones"
        return f"bytes={start}-{end}, HTTP 206"

    def delete_all(self) -> str:
        keys = self.expected_keys()
        resp = self.writer.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": False}
        )
        errors = resp.get("Errors", [])
        deleted = sorted((d["Key"] for d in resp.get("Deleted", [])), key=lambda k: k.encode())
        assert not errors, f"delete_objects errors: {errors!r}"
        assert deleted == keys, f"delete_objects Deleted {deleted!r} != requested {keys!r}"
        return f"{len(keys)} keys"

    def list_empty(self, ep: str):
        def attempt():
            resp = self.clients[ep].list_objects_v2(Bucket=self.bucket)
            left = [o["Key"] for o in resp.get("Contents", [])]
            assert resp.get("KeyCount", 0) == 0 and not left, f"bucket still lists {left!r}"

        return self.eventually(ep, attempt)

    def delete_bucket(self) -> None:
        self.writer.delete_bucket(Bucket=self.bucket)
        self.bucket_created = False
        try:
            self.writer.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            code = e.response["ResponseMetadata"]["HTTPStatusCode"]
            assert code == 404, f"head_bucket after delete_bucket answered HTTP {code}, expected 404"
            return
        raise AssertionError("head_bucket still succeeds after delete_bucket")

    def cleanup(self) -> None:
        """Best effort, after a failure: leave no smoke bucket behind."""
        if not self.bucket_created:
            return
        try:
            for key in self.files:
                try:
                    self.writer.delete_object(Bucket=self.bucket, Key=key)
                except ClientError:
                    pass
            self.writer.delete_bucket(Bucket=self.bucket)
        except Exception as e:  # noqa: BLE001
            print(f"     (cleanup: could not delete bucket {self.bucket}: {e})", flush=True)

    def run(self) -> None:
        eps = self.endpoints
        print(f"--   boto3 {boto3.__version__}: bucket {self.bucket}, writes via {eps[0]}", flush=True)
        self.make_files()
        if not self.check(f"create_bucket {self.bucket} via {eps[0]}", self.create_bucket):
            return
        for ep in eps:
            self.check(f"head_bucket via {ep}", self.head_bucket, ep)
        ok = self.check("upload_file of keys with space + % # ? & ' and non-ASCII", self.upload_small)
        ok &= self.check(
            f"upload_file multipart ({MULTIPART_PARTS} parts of 5 MiB) of {MULTIPART_KEY!r}",
            self.upload_multipart,
        )
        if ok:
            for ep in eps:
                self.check(f"list_objects_v2 (pages of 3, exact keys, UTF-8 order) via {ep}", self.list_all, ep)
            for ep in eps:
                self.check(f"list_objects_v2 Delimiter='/' via {ep}", self.list_delimited, ep)
            for ep in eps:
                self.check(f"download_file every object, sha256 via {ep}", self.download_all, ep)
            self.check(f"get_object Range across a part boundary via {eps[-1]}", self.range_across_parts, eps[-1])
        if self.check("delete_objects of every key", self.delete_all):
            for ep in eps:
                self.check(f"bucket lists empty via {ep}", self.list_empty, ep)
            self.check(f"delete_bucket {self.bucket}, then head_bucket is 404", self.delete_bucket)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoints", nargs="+", default=os.environ.get("MERIDIAN_S3_ENDPOINTS", "").split())
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    p.add_argument("--work-dir", required=True, help="scratch directory (wiped)")
    p.add_argument("--counts-file", help='where to write "PASSED FAILED"')
    p.add_argument("--consistency-wait", type=float, default=10.0)
    args = p.parse_args()
    if not args.endpoints or not args.region:
        p.error("no endpoints / region: set MERIDIAN_S3_ENDPOINTS and AWS_REGION (source run/cluster.env)")

    smoke = Smoke(args)
    try:
        smoke.run()
    except Exception:  # noqa: BLE001 - a bug here must still count as a failure
        smoke._fail("unexpected error", traceback.format_exc().rstrip())
    finally:
        if smoke.failed:
            smoke.cleanup()
        shutil.rmtree(args.work_dir, ignore_errors=True)
        if args.counts_file:
            with open(args.counts_file, "w") as f:
                f.write(f"{smoke.passed} {smoke.failed}\n")
    return 1 if smoke.failed else 0


if __name__ == "__main__":
    sys.exit(main())
