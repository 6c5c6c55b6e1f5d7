#!/usr/bin/env python3
"""Helpers for scripts/bench.

bench_table.py ports N
    Prints N distinct free TCP ports on 127.0.0.1 such that PORT+10000 is free too
    (SeaweedFS puts each gRPC listener at its HTTP port + 10000).

bench_table.py table --input ROUNDS.jsonl --systems LABEL=Title,... [--ratio A/B,C/B]
                     [--limits LIMITS.json] [--markdown OUT.md] [--title TEXT]
    Reads the JSON lines printed by `meridian-bench --json`, takes the median of every
    figure per system and workload over the rounds, and prints one Markdown table
    (rows: workloads, columns: systems, then each ratio A / B); writes it to OUT.md too.

bench_table.py latency --input ROUNDS.jsonl --systems LABEL=Title,... [--markdown OUT.md]
                       [--title TEXT]
    The same for the latency suite (`meridian-bench --suite latency`): one row per
    operation, mean / p50 / p99 per system (medians over the rounds).
"""

import argparse
import json
import random
import socket
import statistics
import sys


def port_free(port):
    """True when `port` can be bound on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count, low=20000, high=29999, attempts=5000):
    """`count` distinct ports in [low, high] with port and port+10000 both free."""
    chosen = []
    rng = random.Random()
    for _ in range(attempts):
        if len(chosen) == count:
            break
        port = rng.randint(low, high)
        if port in chosen or port + 10000 in chosen or port - 10000 in chosen:
            continue
        if port_free(port) and port_free(port + 10000):
            chosen.append(port)
    if len(chosen) < count:
        raise SystemExit(f"found only {len(chosen)} free loopback ports of {count}")
    return chosen


def size_label(size):
    """4096 -> '4 KiB', 67108864 -> '64 MiB'."""
    if size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    if size % 1024 == 0:
        return f"{size >> 10} KiB"
    return f"{size} B"


# (workload, JSON field, row text, unit, higher is better)
ROWS = [
    ("put_small", "ops_per_sec", "PUT ops/s", "", True),
    ("put_small", "p50_ms", "PUT p50", " ms", False),
    ("put_small", "p99_ms", "PUT p99", " ms", False),
    ("put_small", "server_cpu_ms_per_op", "PUT server CPU per op", " ms", False),
    ("put_small", "busiest_server_cpu_ms_per_op", "PUT CPU per op of the busiest server process", " ms", False),
    ("get_small", "ops_per_sec", "GET ops/s", "", True),
    ("get_small", "p50_ms", "GET p50", " ms", False),
    ("get_small", "p99_ms", "GET p99", " ms", False),
    ("get_small", "server_cpu_ms_per_op", "GET server CPU per op", " ms", False),
    ("put_large", "mb_per_sec", "PUT MB/s", "", True),
    ("get_large", "mb_per_sec", "GET MB/s", "", True),
]


def load(path):
    """Records of the JSON lines file; lines that are not JSON objects are skipped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def fmt(value, unit=""):
    """A figure with sensible precision."""
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + unit


def build_table(records, systems, ratios):
    """Markdown lines of the median table. `systems` is [(label, title)], `ratios` [(a, b)]."""
    by_key = {}
    sizes = {}
    errors = {}
    for r in records:
        key = (r.get("system"), r.get("workload"))
        by_key.setdefault(key, []).append(r)
        sizes.setdefault(r.get("workload"), r.get("object_size"))
        errors[r.get("system")] = errors.get(r.get("system"), 0) + int(r.get("errors", 0))

    header = ["Workload"] + [title for _, title in systems]
    titles = dict(systems)
    for a, b in ratios:
        header.append(f"{titles[a]} / {titles[b]}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload, field, text, unit, higher_better in ROWS:
        if workload not in sizes:
            continue
        if not any(r.get(field) is not None for s, _ in systems for r in by_key.get((s, workload), [])):
            continue
        size = sizes.get(workload)
        label = f"{size_label(size)} {text}" if size else text
        label += " (higher is better)" if higher_better else " (lower is better)"
        medians = {}
        cells = [label]
        for system, _ in systems:
            values = [
                r[field] for r in by_key.get((system, workload), []) if r.get(field) is not None and r.get("ops", 0) > 0
            ]
            medians[system] = statistics.median(values) if values else None
            n = len(values)
            cells.append(
                fmt(medians[system], unit)
                + (f" (n={n})" if 0 < n and n != max_rounds(by_key, systems, workload) else "")
            )
        for ra, rb in ratios:
            a, b = medians.get(ra), medians.get(rb)
            cells.append(f"{a / b:.2f}x" if a is not None and b else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    rounds = {s: max((len(by_key.get((s, w), [])) for w, *_ in ROWS), default=0) for s, _ in systems}
    lines.append("")
    lines.append(
        "Medians over rounds ("
        + ", ".join(f"{title}: {rounds[s]}" for s, title in systems)
        + "); failed operations in all rounds: "
        + ", ".join(f"{title}: {errors.get(s, 0)}" for s, title in systems)
        + "."
    )
    return lines


def max_rounds(by_key, systems, workload):
    """Largest number of rounds any system has for `workload` (cells with fewer show n=)."""
    return max((len(by_key.get((s, workload), [])) for s, _ in systems), default=0)


def table_main(argv):
    """The `table` subcommand."""
    p = argparse.ArgumentParser(prog="bench_table.py table")
    p.add_argument("--input", required=True)
    p.add_argument("--systems", required=True, help="label=Title,label=Title,...")
    p.add_argument("--ratio", help="labelA/labelB[,labelC/labelB...]")
    p.add_argument("--limits", help="JSON object of machine limits to print under the table")
    p.add_argument("--markdown", help="also write the table here")
    p.add_argument("--title", default="Benchmark")
    a = p.parse_args(argv)
    systems = []
    for item in a.systems.split(","):
        label, _, title = item.partition("=")
        systems.append((label, title or label))
    ratios = []
    for pair in (a.ratio or "").split(","):
        left, _, right = pair.partition("/")
        if left in dict(systems) and right in dict(systems):
            ratios.append((left, right))
    lines = [f"## {a.title}", ""] + build_table(load(a.input), systems, ratios)
    if a.limits:
        with open(a.limits, encoding="utf-8") as f:
            limits = json.load(f)
        lines += ["", "Machine limits measured in the same run (same disk):", ""]
        lines.append(
            f"- sequential write, `dd bs=1M count=1024 conv=fsync`: {fmt(limits.get('dd_seq_mb_per_sec'))} MB/s"
        )
        lines.append(
            f"- 4 KiB synchronous writes, `dd bs=4k count={limits.get('dsync_count')} oflag=dsync`: "
            f"{fmt(limits.get('dsync_writes_per_sec'))} writes/s"
        )
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.markdown:
        with open(a.markdown, "w", encoding="utf-8") as f:
            f.write(text)


def self_test():
    """Checks the median table on a tiny input."""
    recs = [
        {
            "system": "m",
            "workload": "put_small",
            "object_size": 4096,
            "ops": 10,
            "errors": 0,
            "ops_per_sec": v,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
        }
        for v in (100.0, 300.0, 200.0)
    ] + [
        {
            "system": "s",
            "workload": "put_small",
            "object_size": 4096,
            "ops": 10,
            "errors": 1,
            "ops_per_sec": v,
            "p50_ms": 2.0,
            "p99_ms": 4.0,
        }
        for v in (50.0, 100.0, 150.0)
    ]
    lines = build_table(recs, [("m", "M"), ("s", "S")], [("m", "s")])
    row = next(line for line in lines if "PUT ops/s" in line)
    assert "| 200 | 100 | 2.00x |" in row, row
    p50 = next(line for line in lines if "PUT p50" in line)
    assert "1.00 ms | 2.00 ms | 0.50x" in p50, p50
    assert "S: 3." in lines[-1], lines[-1]
    assert size_label(4096) == "4 KiB" and size_label(64 << 20) == "64 MiB"
    lat = [
        {"system": "l", "workload": w, "ops": 50, "errors": 0, "mean_ms": m, "p50_ms": m, "p99_ms": 2 * m}
        for w, m in (("put_small", 200.0), ("get_small", 1.0), ("get_small", 3.0))
    ]
    table = build_latency_table(lat, [("l", "L")])
    get = next(line for line in table if line.startswith("| GetObject"))
    assert "| 2.00 ms | 2.00 ms | 4.00 ms |" in get, get
    assert not any(line.startswith("| HeadObject") for line in table), table
    print("bench_table self-test: 2 passed, 0 failed")


# (workload, row text) of the latency suite, in the order it runs.
LATENCY_ROWS = [
    ("put_small", "PutObject 4 KiB"),
    ("get_small", "GetObject (known key)"),
    ("head_small", "HeadObject (known key)"),
    ("list_small", "ListObjectsV2 (10 keys)"),
    ("delete_small", "DeleteObject"),
]


def build_latency_table(records, systems):
    """Markdown lines: one row per operation, mean / p50 / p99 (medians over rounds) per system."""
    by_key = {}
    for r in records:
        by_key.setdefault((r.get("system"), r.get("workload")), []).append(r)
    header = ["Operation"]
    for _, title in systems:
        header += [f"{title} mean", f"{title} p50", f"{title} p99"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload, text in LATENCY_ROWS:
        if not any((s, workload) in by_key for s, _ in systems):
            continue
        cells = [text]
        for system, _ in systems:
            runs = [r for r in by_key.get((system, workload), []) if r.get("ops", 0) > 0]
            for field in ("mean_ms", "p50_ms", "p99_ms"):
                values = [r[field] for r in runs if field in r]
                cells.append(fmt(statistics.median(values), " ms") if values else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    counts = {s: max((len(v) for (sy, _), v in by_key.items() if sy == s), default=0) for s, _ in systems}
    ops = {
        s: max((r.get("ops", 0) for (sy, _), v in by_key.items() if sy == s for r in v), default=0) for s, _ in systems
    }
    errors = {
        s: sum(int(r.get("errors", 0)) for (sy, _), v in by_key.items() if sy == s for r in v) for s, _ in systems
    }
    lines.append("")
    lines.append(
        "Requests one at a time; "
        + "; ".join(
            f"{title}: {ops[s]} per operation, {counts[s]} round(s), {errors[s]} failed" for s, title in systems
        )
        + "."
    )
    return lines


def latency_main(argv):
    """The `latency` subcommand."""
    p = argparse.ArgumentParser(prog="bench_table.py latency")
    p.add_argument("--input", required=True)
    p.add_argument("--systems", required=True, help="label=Title,label=Title,...")
    p.add_argument("--markdown", help="also write the table here")
    p.add_argument("--title", default="Latency")
    a = p.parse_args(argv)
    systems = []
    for item in a.systems.split(","):
        label, _, title = item.partition("=")
        systems.append((label, title or label))
    text = "\n".join([f"## {a.title}", ""] + build_latency_table(load(a.input), systems)) + "\n"
    sys.stdout.write(text)
    if a.markdown:
        with open(a.markdown, "w", encoding="utf-8") as f:
            f.write(text)


def main():
    """Dispatches the subcommands."""
    if len(sys.argv) >= 2 and sys.argv[1] == "ports":
        print(" ".join(str(p) for p in free_ports(int(sys.argv[2]))))
    elif len(sys.argv) >= 2 and sys.argv[1] == "table":
        table_main(sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "latency":
        latency_main(sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "self-test":
        self_test()
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
