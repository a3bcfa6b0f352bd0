"""The event lake, side by side in one run.

    .venv/bin/python bench/bench_lake.py [--rows 200000] [--seconds 45] [--skip-reproduce]

1. Appends from the service: the serving log's files shipped into the lake (`loopkit.ingest.lake.ship_log`), one
   snapshot per shipment, at a few shipment sizes: snapshots per second and rows per second.
2. Request to queryable row: a `ServeLog` at its defaults (flush every 5 s) and a `LogShipper` at its default (every
   15 s), a request every 0.25 s for --seconds; a reader polls the lake and notes when each request's row appears
   (p50, p99, max).
3. Reading a snapshot vs a plain parquet file of the same rows (--rows synthetic events): the median of 5 reads each,
   and their ratio.
4. `loopkit reproduce` of the default pipeline's version: a fresh project under git runs `loopkit run` (the built-in
   pipeline as `make demo` runs it), then `loopkit reproduce 1`; its verdict, how many stage outputs are identical, and
   the time of each.
"""
import argparse, json, os, subprocess, sys, tempfile, threading, time, warnings
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]; sys.path.insert(0, str(ROOT))
from loopkit.ingest.lake import Lake, LogShipper, ship_log
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.ingest.synth import synth_events
from loopkit.serving.log import ServeLog

ap = argparse.ArgumentParser(); ap.add_argument("--rows", type=int, default=200_000); ap.add_argument("--seconds", type=float, default=45.0)
ap.add_argument("--skip-reproduce", action="store_true")
args = ap.parse_args()
tmp = Path(tempfile.mkdtemp()); out = {}
row = lambda i, t: {"ts": int(t), "event": "impression", "request_id": f"r{i}", "user_id": f"u_{i % 997:x}", "item_id": i % 500, "position": i % 10,
                    "score": 0.1, "arm": "champion", "model_version": "1"}

# 1. appends per second
for size in (10, 100, 1000):
    lake, log = Lake(f"sqlite:///{tmp / f'a{size}' / 'catalog.db'}"), ServeLog(tmp / f"a{size}" / "log", key_fingerprint="kf")
    n, t_ship = 20, 0.0
    for b in range(n):
        log.append([row(b * size + i, time.time()) for i in range(size)]); log.flush()
        t0 = time.perf_counter(); ship_log(log.path, lake); t_ship += time.perf_counter() - t0
    log.close()
    assert lake.read("serving_log").num_rows == n * size
    out[f"append_{size}_rows"] = {"snapshots_per_s": round(n / t_ship, 1), "rows_per_s": round(n * size / t_ship)}

# 2. request -> queryable row at the defaults
lake_uri = f"sqlite:///{tmp / 'live' / 'catalog.db'}"
log = ServeLog(tmp / "live" / "log", key_fingerprint="kf")
shipper = LogShipper(tmp / "live" / "log", lake_uri).start()
sent, seen, stop = {}, {}, threading.Event()
def reader():
    lake = Lake(lake_uri)
    while not stop.is_set():
        if "serving_log" in lake.tables():
            now = time.time()
            for r in lake.read("serving_log", columns=["request_id"])["request_id"].to_pylist(): seen.setdefault(r, now)
        time.sleep(0.25)
th = threading.Thread(target=reader); th.start()
i, t_end = 0, time.time() + args.seconds
while time.time() < t_end:
    sent[f"r{i}"] = time.time(); log.append([row(i, sent[f"r{i}"])]); i += 1; time.sleep(0.25)
deadline = time.time() + 60
while len(seen) < len(sent) and time.time() < deadline: time.sleep(0.5)
stop.set(); th.join(); log.close(); shipper.stop()
lat = np.array([seen[r] - t for r, t in sent.items() if r in seen])
out["request_to_queryable_s"] = {"requests": len(sent), "landed": len(lat), "p50": round(float(np.percentile(lat, 50)), 2),
                                 "p99": round(float(np.percentile(lat, 99)), 2), "max": round(float(lat.max()), 2),
                                 "log_flush_s": 5.0, "ship_every_s": 15.0}

# 3. a snapshot vs parquet
ev = pseudonymize_events(synth_events(args.rows, seed=0), b"b" * 32)
lake = Lake(f"sqlite:///{tmp / 'read' / 'catalog.db'}")
snap = lake.write("events", ev)
pq.write_table(ev, tmp / "events.parquet", compression="zstd")
def median(f, k=5):
    ts = []
    for _ in range(k): t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))
lake_s, parquet_s = median(lambda: lake.read("events", snapshot=snap)), median(lambda: pq.read_table(tmp / "events.parquet"))
assert lake.read("events", snapshot=snap).num_rows == ev.num_rows
out["read"] = {"rows": ev.num_rows, "lake_snapshot_s": round(lake_s, 3), "parquet_s": round(parquet_s, 3), "ratio": round(lake_s / parquet_s, 2)}

# 4. reproduce the default pipeline's version
if not args.skip_reproduce:
    LOOPKIT, env = Path(sys.executable).parent / "loopkit", {**os.environ, "LOOPKIT_HMAC_KEY": "bench-lake-key-0123456789abcdef"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proj = tmp / "project"
    subprocess.run([LOOPKIT, "init", proj], check=True, capture_output=True)
    (proj / ".gitignore").write_text(".loopkit/\nruns/\nreproduce/\n")
    for c in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "project"]):
        subprocess.run(["git", *c], cwd=proj, check=True, capture_output=True)
    t0 = time.perf_counter(); subprocess.run([LOOPKIT, "run", "-q"], cwd=proj, env=env, check=True, capture_output=True); run_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = subprocess.run([LOOPKIT, "reproduce", "1", "--json", "-q"], cwd=proj, env=env, capture_output=True, text=True)
    rep_s = time.perf_counter() - t0
    report = json.loads(p.stdout.strip().splitlines()[-1])
    matches = {}
    for r in report["outputs"]: matches[r["match"]] = matches.get(r["match"], 0) + 1
    out["reproduce"] = {"verdict": report["verdict"], "exit": p.returncode, "metrics_compared": report["metrics_compared"],
                        "metrics_differ": len(report["metrics_differ"]), "weights_differ": report["weights_differ"], "outputs": matches,
                        "differs": [f"{r['stage']}.{r['output']}" for r in report["outputs"] if r["match"] == "differs"],
                        "run_s": round(run_s, 1), "reproduce_s": round(rep_s, 1), "lake": report["lake"]}
print(json.dumps(out, indent=1))
