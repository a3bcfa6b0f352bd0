"""Gate evaluation on a parquet events file: `python bench/bench_quality.py [--rows N] [--repeats R]`.

Writes N synthetic events (default 1M) to a zstd parquet file and evaluates the same 20 checks three ways, interleaved, in the
same run: `loopkit.quality.checks.validate` (every check one aggregate of a single DuckDB scan), one DuckDB query per check (20 scans of
the file), and pandas (read the file, then 20 vectorised expressions). All three must observe identical values. Also times the
collection and storage gates (`screen` + `repair`) on the same file. Prints a markdown table (best and median of R repeats).
"""
import argparse, os, platform, statistics, tempfile, time
from pathlib import Path
import duckdb
import pandas as pd
from loopkit.ingest.synth import synth_events
from loopkit.ingest.sources import write_events
from loopkit.quality.checks import Check, _aggregate_sql, parse_checks, validate
from loopkit.quality.screen import repair, screen

REF = 1_768_435_200  # 2026-01-15: the reference time for freshness (the synthetic feed spans 2026-01-01..15)


def twenty_checks():
    "20 checks of every kind: not-null, uniqueness, ranges, categories, freshness, coverage, size, SQL predicates, metrics."
    declared = parse_checks([
        {"check": "size", "min": 1000},
        {"check": "completeness", "column": ["event_id", "ts", "user_id", "item_id", "click"], "min": 1.0},
        {"check": "uniqueness", "column": "event_id"},
        {"check": "range", "column": "dwell", "min": 0, "max": 3600},
        {"check": "range", "column": "propensity", "min": 0, "max": 1},
        {"check": "range", "column": "position", "min": 0},
        {"check": "categories", "column": "device", "values": ["ios", "android", "web"]},
        {"check": "categories", "column": "region", "values": ["north", "south", "east", "west", "central"]},
        {"check": "categories", "column": "click", "values": [0, 1]},
        {"check": "freshness", "max_age_hours": 48},
        {"check": "coverage", "column": ["age_band", "category", "propensity"], "min": 0.95},
        {"check": "sql", "rule": "publish_ts <= ts"},
        {"check": "sql", "rule": "ts >= 631152000 AND ts < 4102444800"},
        {"check": "metric", "name": "click_rate", "rule": "avg(click)", "min": 0.005, "max": 0.5},
    ], reference_time=REF)
    assert len(declared) == 20, len(declared)
    return declared


def pandas_checks(df):
    "The same 20 observations as pandas expressions over a loaded DataFrame."
    n = len(df)
    nn = lambda c: df[c].notna()
    viol = lambda ok, *cols: int((~ok & pd.concat([nn(c) for c in cols], axis=1).all(axis=1)).sum())  # NULL passes, as in SQL
    return [
        n, *[df[c].notna().sum() / n for c in ("event_id", "ts", "user_id", "item_id", "click")],
        int(df["event_id"].notna().sum() - df["event_id"].nunique()),
        viol((df.dwell >= 0) & (df.dwell <= 3600), "dwell"), viol((df.propensity >= 0) & (df.propensity <= 1), "propensity"),
        viol(df.position >= 0, "position"), viol(df.device.isin(["ios", "android", "web"]), "device"),
        viol(df.region.isin(["north", "south", "east", "west", "central"]), "region"), viol(df.click.isin([0, 1]), "click"),
        (REF - df.ts.max()) / 3600.0, *[df[c].notna().sum() / n for c in ("age_band", "category", "propensity")],
        viol(df.publish_ts <= df.ts, "publish_ts", "ts"), viol((df.ts >= 631152000) & (df.ts < 4102444800), "ts"),
        df.click.mean(),
    ]


def one_scan(path, checks):
    return [r["observed"] for r in validate(path, checks).results]


def scan_per_check(path, checks):
    con = duckdb.connect()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{path}')")
    out = [con.execute(f"SELECT {_aggregate_sql(c)} FROM events").fetchone()[0] for c in checks]
    con.close()
    return out


def with_pandas(path, checks):
    return pandas_checks(pd.read_parquet(path))


def timed(fn, *args):
    t = time.perf_counter(); out = fn(*args); return time.perf_counter() - t, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rows', type=int, default=1_000_000)
    p.add_argument('--repeats', type=int, default=3)
    a = p.parse_args()
    path = Path(tempfile.mkdtemp())/'events.parquet'
    write_events(synth_events(a.rows, seed=0, truth=False), path)
    checks = twenty_checks()
    ways = {'loopkit validate: 20 checks in one DuckDB scan': one_scan,
            'DuckDB, one query (scan) per check': scan_per_check,
            'pandas: read parquet + 20 expressions': with_pandas}
    reference = one_scan(path, checks)  # warm-up, and the values everyone must match
    times = {k: [] for k in ways}
    for _ in range(a.repeats):
        for name, fn in ways.items():  # interleaved, so drift hits every way alike
            s, out = timed(fn, path, checks)
            assert all(abs(float(x) - float(y)) <= 1e-9 * max(1.0, abs(float(y))) for x, y in zip(out, reference)), (name, out, reference)
            times[name].append(s)
    gates = []
    for _ in range(a.repeats):
        t = time.perf_counter(); sc = screen(path); repair(sc.kept, impute={"region": "unknown"}); gates.append(time.perf_counter() - t)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"duckdb {duckdb.__version__}, pandas {pd.__version__}; {a.rows:,} events, {len(checks)} checks, {a.repeats} repeats")
    print('| way | best s | median s | vs one scan (median) |')
    print('|---|---:|---:|---:|')
    base = statistics.median(times[next(iter(ways))])
    for name, ts in times.items():
        print(f'| {name} | {min(ts):.2f} | {statistics.median(ts):.2f} | {statistics.median(ts) / base:.1f}x |')
    print(f'| gates 1+2: screen (bots, mis-clicks) + repair (dedupe, impute) | {min(gates):.2f} | {statistics.median(gates):.2f} | |')
    print(f'\nall ways observed identical values for the {len(checks)} checks; goal: validate < 2 s on 1M rows')


if __name__ == '__main__': main()
