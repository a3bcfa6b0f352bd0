"""Feature-store figures: `python bench/bench_features.py [--events N] [--rows N] [--keys K] [--online N] [--repeats R] [--only pit|online]`.

(a) `point_in_time_join` on N events x N feature rows over K keys, side by side in one run, interleaved: loopkit's default
    engine (numba: one sort of the table's packed int64 keys, then a compiled merge pass and gather, in two threads on two cores), the same given the pandas DataFrames
    (Arrow conversion counted), pandas `merge_asof` on the same in-memory data, and loopkit's DuckDB engine (ASOF JOIN, the
    reference), one warm-up round then R timed rounds. Each call is timed whole: key encoding, sorting, output assembly. All get
    events in time order (as event logs are stored) and the feature rows in arbitrary order (pandas must sort them, which is
    part of its work). Rows are asserted equal (numba = pandas = DuckDB). Cases: integer keys with and without a TTL, string keys
    (HMAC tokens such as 'u_3f9a...', what ingest now writes), and `created_ts` (back-fill safe; pandas has no equivalent).
    Then the JIT cost: the first call in a fresh process with an empty numba cache (compiles) and with the cache filled.
(b) Online features (`OnlineFeatures` with `default_features()`, in-process `DictStore`): events/s of ingest alone and of
    lookup+ingest (replay), on one core (pure Python, single thread), the latency of one full-vector lookup (p50/p99), and
    of scoring one user x 100 candidate items: `lookup_many` against a loop of 100 `lookup` calls (p50/p99).
Prints markdown tables.
"""
import argparse, gc, os, platform, statistics, subprocess, sys, tempfile, time
import numpy as np, pandas as pd, pyarrow as pa
from loopkit.features.point_in_time import point_in_time_join
from loopkit.features.online import OnlineFeatures
from loopkit.features.definitions import default_features
from loopkit.ingest.synth import synth_events


def pit_data(n_events, n_rows, n_keys, seed=0, span=30 * 86_400):
    rng = np.random.default_rng(seed)
    ev = pd.DataFrame({"event_id": np.arange(n_events, dtype=np.int64), "user_id": rng.integers(0, n_keys, n_events),
                       "ts": np.sort(rng.integers(0, span, n_events))})
    ft = pd.DataFrame({"user_id": rng.integers(0, n_keys, n_rows), "fts": rng.integers(0, span, n_rows)})
    ft = ft.drop_duplicates(["user_id", "fts"]).reset_index(drop=True)
    ft["written"] = ft.fts + np.where(rng.random(len(ft)) < 0.1, rng.integers(1, 86_400, len(ft)), 0)
    for i in range(3): ft[f"f{i}"] = rng.random(len(ft))
    return ev, ft


def run_pandas(ev, ft, ttl):
    right = ft.drop(columns="written").sort_values("fts")
    return pd.merge_asof(ev, right, left_on="ts", right_on="fts", by="user_id", direction="backward",
                         allow_exact_matches=True, tolerance=ttl).drop(columns="fts")


def timed(f):
    "(wall seconds, process CPU seconds over all threads, result) of one call."
    t, c = time.perf_counter(), time.process_time(); out = f(); return (time.perf_counter() - t, time.process_time() - c), out


def bench_pit(n_events, n_rows, n_keys, repeats):
    ev, ft = pit_data(n_events, n_rows, n_keys)
    token = lambda ids: "u_" + pd.Series(ids).map(lambda i: f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}")  # HMAC-token-like strings
    ev_s, ft_s = ev.assign(user_id=token(ev.user_id)), ft.assign(user_id=token(ft.user_id))
    arrow = lambda df: pa.Table.from_pandas(df, preserve_index=False)
    cases = [("int keys, ttl=none", ev, ft, None, None), ("int keys, ttl=1 day", ev, ft, 86_400, None),
             ("string keys (HMAC tokens), ttl=none", ev_s, ft_s, None, None), ("int keys, created_ts (back-fill safe)", ev, ft, None, "written")]
    rows, cpu = [], []
    for name, e, f, ttl, created in cases:
        e_a, f_a = arrow(e), arrow(f if created else f.drop(columns="written"))
        f_df = f if created else f.drop(columns="written")
        fast, from_pd, duck, pand = [], [], [], []
        for i in range(repeats + 1):  # interleaved, so a busy neighbour slows all alike; round 0 warms up (not timed)
            if i == 1: fast, from_pd, duck, pand = [], [], [], []
            t, got = timed(lambda: point_in_time_join(e_a, f_a, "user_id", feature_ts="fts", ttl=ttl, created_ts=created)); fast.append(t)
            t, got_pd = timed(lambda: point_in_time_join(e, f_df, "user_id", feature_ts="fts", ttl=ttl, created_ts=created)); from_pd.append(t)
            if created is None: t, want = timed(lambda: run_pandas(e, f, ttl)); pand.append(t)
            t, ref = timed(lambda: point_in_time_join(e_a, f_a, "user_id", feature_ts="fts", ttl=ttl, created_ts=created, engine="duckdb")); duck.append(t)
        pd.testing.assert_frame_equal(got.to_pandas(), ref.to_pandas(), check_dtype=False)  # numba engine = DuckDB engine
        assert got_pd.equals(got)
        if created is None:
            pd.testing.assert_frame_equal(got.to_pandas().reset_index(drop=True), want.reset_index(drop=True), check_dtype=False)
        med = lambda ts, i: statistics.median(t[i] for t in ts) if ts else None
        rows.append((name, med(fast, 0), med(from_pd, 0), med(pand, 0), med(duck, 0)))
        cpu.append((name, med(fast, 1), med(from_pd, 1), med(pand, 1), med(duck, 1)))
    for what, table in (("wall", rows), ("CPU (process time, all threads: steadier than wall on a shared machine)", cpu)):
        print(f"\n### point_in_time_join, {what}: {n_events:,} events x {len(ft):,} feature rows, {n_keys:,} keys "
              f"(median of {repeats} after one warm-up round, interleaved)\n")
        print("| join | loopkit default (numba), Arrow in s | same, pandas in s | pandas merge_asof s | loopkit engine='duckdb' s "
              "| default vs pandas | default (pandas in) vs pandas | default vs duckdb | rows equal |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for name, f, fp, p, d in table:
            print(f"| {name} | {f:.3f} | {fp:.3f} | {'n/a' if p is None else f'{p:.3f}'} | {d:.3f} | {'' if p is None else f'{p / f:.1f}x'} | "
                  f"{'' if p is None else f'{p / fp:.1f}x'} | {d / f:.1f}x | yes{'' if p is None else ' (all engines)'} |")
    bench_jit()


JIT_PROBE = '''
import time; t0 = time.perf_counter()
import pyarrow as pa
from loopkit.features.point_in_time import point_in_time_join
t1 = time.perf_counter()
ev = pa.table({"user_id": [1, 2], "ts": [5, 9]}); ft = pa.table({"user_id": [1, 2], "fts": [4, 9], "w": [4, 9], "v": [0.1, 0.2]})
t2 = time.perf_counter(); point_in_time_join(ev, ft.drop_columns(["w"]), "user_id", feature_ts="fts"); t3 = time.perf_counter()
point_in_time_join(ev, ft, "user_id", feature_ts="fts", created_ts="w"); t4 = time.perf_counter()
point_in_time_join(ev, ft.drop_columns(["w"]), "user_id", feature_ts="fts"); t5 = time.perf_counter()
print(t1 - t0, t3 - t2, t4 - t3, t5 - t4)
'''


def bench_jit():
    "First calls of the compiled engine in fresh processes: numba cache empty (compiles), then filled (loads)."
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        got = [list(map(float, subprocess.run([sys.executable, "-c", JIT_PROBE], env=env, capture_output=True, text=True, check=True).stdout.split()))
               for _ in range(2)]
    print("\n### point_in_time_join, JIT cost in a fresh process (tiny input; s)\n")
    print("| numba cache | import loopkit.features | first join | first join with created_ts | a later join |")
    print("|---|---:|---:|---:|---:|")
    for what, (imp, first, created, later) in zip(("empty (compiles)", "filled (loads)"), got):
        print(f"| {what} | {imp:.2f} | {first:.3f} | {created:.3f} | {later:.5f} |")


def bench_online(n_events, n_lookups=20_000):
    ev = synth_events(n_events, seed=0)
    cols = ["event_id", "ts", "user_id", "item_id", "category", "click"]
    rows = ev.select(cols).sort_by([("ts", "ascending"), ("event_id", "ascending")]).to_pylist()
    feats = default_features()
    cpu0, t = time.process_time(), time.perf_counter()
    online = OnlineFeatures(feats)
    for r in rows: online.ingest(r)
    ingest_s, ingest_cpu = time.perf_counter() - t, time.process_time() - cpu0
    cpu0, t = time.process_time(), time.perf_counter()
    OnlineFeatures(feats).replay(ev.select(cols))
    replay_s, replay_cpu = time.perf_counter() - t, time.process_time() - cpu0
    rng = np.random.default_rng(1)
    now = rows[-1]["ts"] + 1
    def latencies():
        lat = []
        for i in rng.integers(0, len(rows), n_lookups):
            req = {"user_id": rows[i]["user_id"], "item_id": rows[i]["item_id"], "category": rows[i]["category"]}
            t = time.perf_counter_ns(); online.lookup(req, now); lat.append(time.perf_counter_ns() - t)
        return np.array(lat) / 1000
    def ranking(n_requests=2_000, n_candidates=100):
        "One user x 100 candidate items per request: lookup_many against a loop of lookup, interleaved (microseconds)."
        many, loop = [], []
        for u in rng.integers(0, len(rows), n_requests):
            items = rng.integers(0, len(rows), n_candidates)
            cands = [{"user_id": rows[u]["user_id"], "item_id": rows[i]["item_id"], "category": rows[i]["category"]} for i in items]
            t = time.perf_counter_ns(); online.lookup_many(cands, now); many.append(time.perf_counter_ns() - t)
            t = time.perf_counter_ns(); [online.lookup(c, now) for c in cands]; loop.append(time.perf_counter_ns() - t)
        return np.array(many) / 1000, np.array(loop) / 1000
    lat = latencies()
    many, loop = ranking()
    gc.collect(); gc.freeze()  # what a serving process does once its state is loaded: no full-heap GC pauses over it
    frozen = latencies()
    many_f, loop_f = ranking()
    gc.unfreeze()
    print(f"\n### Online features: {len(feats)} features ({len(online.parts_)} per-key states), {n_events:,} synthetic events, one core\n")
    print("| path | events/s (wall) | events/s per CPU-second |")
    print("|---|---:|---:|")
    print(f"| ingest (state updates) | {n_events / ingest_s:,.0f} | {n_events / ingest_cpu:,.0f} |")
    print(f"| replay (lookup + ingest per event) | {n_events / replay_s:,.0f} | {n_events / replay_cpu:,.0f} |")
    print(f"\n| lookup of a full feature vector ({n_lookups:,} requests, {len(online.store_):,} keys in store) | p50 µs | p99 µs | max µs |")
    print("|---|---:|---:|---:|")
    for name, l in (("DictStore", lat), ("DictStore, after gc.freeze()", frozen)):
        print(f"| {name} | {np.percentile(l, 50):.1f} | {np.percentile(l, 99):.1f} | {l.max():.1f} |")
    print(f"\n| one user x 100 candidates (2,000 requests, interleaved) | p50 µs | p99 µs | max µs | p50 vs loop |")
    print("|---|---:|---:|---:|---:|")
    for name, l, ref in (("lookup_many (DataFrame out)", many, loop), ("loop of 100 lookup (dicts out)", loop, loop),
                         ("lookup_many, after gc.freeze()", many_f, loop_f), ("loop of 100 lookup, after gc.freeze()", loop_f, loop_f)):
        print(f"| {name} | {np.percentile(l, 50):.0f} | {np.percentile(l, 99):.0f} | {l.max():.0f} | {np.percentile(ref, 50) / np.percentile(l, 50):.1f}x |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000); ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keys", type=int, default=10_000); ap.add_argument("--online", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["pit", "online"], help="run one of the two benchmarks")
    a = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    if a.only != "online": bench_pit(a.events, a.rows, a.keys, a.repeats)
    if a.only != "pit": bench_online(a.online)
