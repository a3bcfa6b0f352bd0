"""Online feature state per tier, side by side in one run: latency of a full feature-vector lookup and memory per user.

    .venv/bin/python bench/bench_stores.py [--events 100000] [--lookups 2000]

The state of the default feature set is built once by ingesting synthetic events (one user in forty events, most with a week
of history), then copied into each store: the in-process dict, Redis (a redis-server this script starts on loopback and stops),
RocksDB on local disk and the parquet snapshot (cold). Each store then answers the same `OnlineFeatures.lookup` calls (one
user x one item, the full vector of every default definition) for users drawn with a realistic skew: a Zipf law over users
(s = 1.1), so a few users are most of the traffic and the long tail comes back rarely. The tiered store (hot LRU holding 2 % of
the users' states, warm RocksDB, cold parquet) is measured under the same draw, each lookup filed under the slowest tier it
touched ("miss": a state that exists nowhere yet, such as a user's first sight of an item, looked up in warm and, once, in cold). Memory per million users: the bytes the hot tier holds per user (tracemalloc), times a million.
"""
import argparse, json, shutil, socket, subprocess, sys, tempfile, time, tracemalloc, warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loopkit.features.online import DictStore, OnlineFeatures
from loopkit.features.stores import ParquetStates, RedisStore, RocksStore, TieredStore, redis_store, save_states
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.ingest.synth import synth_events


def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def percentiles(xs): return {"p50_ms": round(float(np.percentile(xs, 50)) * 1e3, 3), "p99_ms": round(float(np.percentile(xs, 99)) * 1e3, 3),
                             "n": len(xs)}


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--events", type=int, default=100_000); ap.add_argument("--lookups", type=int, default=2000)
    ap.add_argument("--bare-lookups", type=int, default=200, help="lookups of each whole store out of process (Redis, RocksDB, cold): each decodes the global states")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    events = pseudonymize_events(synth_events(args.events, seed=0), b"bench-stores-key-0123456789abcdef")
    cols = ["ts", "event_id", "user_id", "item_id", "category", "click"] + [c for c in events.column_names if c in ("age_band", "region", "device")]
    rows = events.sort_by([("ts", "ascending"), ("event_id", "ascending")]).select([c for c in cols if c in events.column_names]).to_pylist()
    base = OnlineFeatures()
    t0 = time.perf_counter()
    for r in rows: base.ingest(r)
    now = rows[-1]["ts"] + 60
    base.lookup(dict(rows[-1], ts=now))  # applies the last pending group
    build_s = time.perf_counter() - t0
    states = base.store_.data
    users = sorted({r["user_id"] for r in rows}); items = sorted({(r["item_id"], r["category"]) for r in rows})
    print(f"{len(rows):,} events -> {len(states):,} states of {len(users):,} users and {len(items):,} items in {build_s:.1f} s", flush=True)
    shared = {k: len(json.dumps(s)) for k, s in states.items() if not k[1]}  # states of no entity: the whole traffic's
    results_shared = {"keys": len(shared), "bytes": sum(shared.values()), "largest": max(shared.items(), key=lambda kv: kv[1])[0][0] if shared else None}
    print("states of the whole traffic (read by every lookup)", json.dumps(results_shared), flush=True)

    rng = np.random.default_rng(1)
    ranks = rng.zipf(1.1, size=args.lookups * 3)
    ranks = ranks[ranks <= len(users)][: args.lookups] - 1
    order = rng.permutation(len(users))  # which user is rank 0, 1, ...
    probes = [dict(user_id=users[order[k]], item_id=items[j][0], category=items[j][1], ts=now)
              for k, j in zip(ranks, rng.integers(0, len(items), len(ranks)))]

    def measure(store, name, extra=None, n=None):
        online = OnlineFeatures(store=store); online._setup(); online.clock_ = now
        expected = [base.lookup(p) for p in probes[:20]]
        assert [online.lookup(p) for p in probes[:20]] == expected, f"{name}: a lookup differs from the in-process store"
        out, tiers = [], {}
        for p in probes[:n]:
            before = dict(store.stats_) if extra else None
            t = time.perf_counter(); online.lookup(p); dt = time.perf_counter() - t
            out.append(dt)
            if extra:
                tier = next((t for t in ("cold", "warm", "miss") if store.stats_[t] > before[t]), "hot")  # the slowest tier touched
                tiers.setdefault(tier, []).append(dt)
        res = {"all": percentiles(out)}
        for tier, xs in tiers.items(): res[tier] = percentiles(xs)
        print(name, json.dumps(res), flush=True)
        return res

    results = {"events": len(rows), "states": len(states), "users": len(users), "lookups": len(probes), "shared_states": results_shared}
    results["memory"] = measure(DictStore(states), "memory")

    binary = shutil.which("redis-server")
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try: redis = redis_store(f"redis://127.0.0.1:{port}/0"); break
            except ConnectionError: time.sleep(0.1)
        items_ = list(states.items())
        for i in range(0, len(items_), 5000): redis.put_many(items_[i:i + 5000])
        results["redis"] = measure(redis, "redis", n=args.bare_lookups)
    finally:
        proc.terminate(); proc.wait(10)

    rocks = RocksStore(work / "rocks")
    items_ = list(states.items())
    for i in range(0, len(items_), 20000): rocks.put_many(items_[i:i + 20000])
    rocks.close(); rocks = RocksStore(work / "rocks")  # a reopened database: nothing in its block cache yet
    results["rocksdb"] = measure(rocks, "rocksdb", n=args.bare_lookups)
    snapshot = save_states(rocks, work / "cold.parquet", row_group_size=1024)
    rocks.close()
    results["cold"] = measure(ParquetStates(snapshot), "cold parquet", n=args.bare_lookups)

    # tiered: hot LRU of 2 % of the states, warm RocksDB holding items and the most active third of the users, cold the rest
    def user_of(k): return k[1][0] if k[1] and isinstance(k[1][0], str) else None
    active = {users[order[k]] for k in range(len(users) // 3)}
    warm = RocksStore(work / "tiered-warm")
    warm.put_many([(k, s) for k, s in states.items() if user_of(k) is None or user_of(k) in active])
    tiered = TieredStore(warm, ParquetStates(snapshot), hot_keys=max(100, len(states) // 50), idle_seconds=None)
    results["tiered"] = measure(tiered, "tiered (zipf users)", extra=True)
    results["tiered"]["hits"] = dict(tiered.stats_)
    tiered.close()

    # memory: the hot tier holding every user's states
    sample = [(k, s) for k, s in states.items() if user_of(k) is not None]
    tracemalloc.start()
    hot = TieredStore(DictStore(), hot_keys=len(sample) + 1, idle_seconds=None)
    for k, s in sample: hot.put(k, json.loads(json.dumps(s)))
    size, _ = tracemalloc.get_traced_memory(); tracemalloc.stop()
    results["hot_memory"] = {"states": len(sample), "bytes_per_user": round(size / len(users)), "mib_per_million_users": round(size / len(users) * 1e6 / 2**20)}
    print("hot memory", json.dumps(results["hot_memory"]), flush=True)
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
