"""What the fault and bad-input defences cost, side by side in one run, and the size of the probe suite.

    .venv/bin/python bench/bench_faults.py

1. The cache check: a pipeline that is all cached re-hashes every declared output by content. On the default pipeline's
   outputs (a features table of 50,000 impressions with its spec, a trained DeepFM folder with checkpoints, the events),
   the time to fingerprint them all, against the time to stat them (what a size + mtime memo costs), and against one
   kernel start (what a stage that runs costs at the least).
2. The serving log: flushing 10,000 rows, all valid, against the same rows with one row the log cannot hold (the batch
   is halved until that row is alone, which is set aside with its reason; the rest is written).
3. The edge: `Service._check_request` (ids, publish times, finite numbers) as a share of one in-process `rank`.
4. The probe suite: tests collected in tests/test_faults.py.
"""
import json, statistics, subprocess, sys, tempfile, time, warnings
from pathlib import Path

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat=5):
    "Median seconds of `fn()` over `repeat` calls."
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); out.append(time.perf_counter() - t0)
    return statistics.median(out)


def cache_check(work:Path) -> dict:
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.pipeline import fingerprint
    from loopkit.training.fit import fit
    import pyarrow.parquet as pq
    events = pseudonymize_events(synth_events(50_000, seed=0), b"bench-faults-key-0123456789")
    pq.write_table(events, work / "events.parquet", write_page_checksum=True)
    spec = build_table(events, work / "features")
    fit(work / "features" / "table.parquet", spec, model="deepfm", max_epochs=2, out_dir=work / "train").save(work / "train" / "model")
    outputs = [work / "events.parquet", work / "features" / "table.parquet", work / "features" / "spec.json", work / "train"]
    files = [p for o in outputs for p in ([o] if o.is_file() else o.rglob("*")) if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    hashed = timed(lambda: [fingerprint(o) for o in outputs])
    stat = timed(lambda: [(p.stat().st_size, p.stat().st_mtime_ns) for o in outputs for p in ([o] if o.is_file() else o.rglob("*"))])
    kernel = timed(lambda: subprocess.run([sys.executable, "-m", "ipykernel_launcher", "--help"], capture_output=True), repeat=3)
    return dict(files=len(files), mbytes=round(size / 2**20, 1), hash_s=hashed, stat_s=stat, hash_over_stat=hashed / stat,
                kernel_start_s=kernel, hash_over_kernel_start=hashed / kernel)


def serve_log(work:Path) -> dict:
    from loopkit.serving.log import ServeLog
    rows = [dict(ts=1_767_225_600 + i, event="impression", request_id=f"r{i // 10}", user_id="u_" + "0" * 24, item_id=i % 500,
                 position=i % 10, score=0.1, arm="champion", model_version="1", category="news") for i in range(10_000)]
    def flush(poison):
        log = ServeLog(work / f"log-{time.time_ns()}", flush_interval=3600)
        batch = [dict(r) for r in rows]
        if poison: batch[5000] = dict(batch[5000], item_id=10**30)
        log.append(batch); n = log.flush(); log.close()
        assert n == len(rows) - poison
    clean, poisoned = timed(lambda: flush(0)), timed(lambda: flush(1))
    return dict(clean_s=clean, poisoned_s=poisoned, poisoned_over_clean=poisoned / clean)


def edge(work:Path) -> dict:
    from loopkit.features.batch import build_table
    from loopkit.features.online import OnlineFeatures
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    from loopkit.models.ctr import save_model
    from loopkit.serving.service import Service
    from loopkit.serving.sources import LocalModels
    from loopkit.training.fit import fit
    events = pseudonymize_events(synth_events(3000, n_items=200, seed=1), b"bench-faults-key-0123456789")
    spec = build_table(events, work / "serve")
    save_model(fit(work / "serve" / "table.parquet", spec, model="lr", max_epochs=1).model, work / "v1")
    svc = Service(LocalModels({"1": work / "v1"}), OnlineFeatures(), key=b"bench-faults-key-0123456789").start()
    cands = [{"item_id": i, "category": "news", "publish_ts": 1_767_000_000} for i in range(100)]
    ctx = {"age_band": "25-34", "region": "north", "device": "ios"}
    t = 1_767_300_000
    rank = timed(lambda: [svc.rank(f"user{i}", cands, ctx, ts=t) for i in range(200)], repeat=3) / 200
    check = timed(lambda: [svc._check_request(f"user{i}", cands, ctx, None) for i in range(200)], repeat=3) / 200
    return dict(rank_ms=rank * 1e3, check_ms=check * 1e3, check_share=check / rank)


def probes() -> dict:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", str(ROOT / "tests" / "test_faults.py")],
                         capture_output=True, text=True, cwd=ROOT).stdout
    return dict(probes=sum(1 for line in out.splitlines() if "::" in line))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        result = dict(cache_check=cache_check(work), serve_log=serve_log(work), edge=edge(work), suite=probes())
    print(json.dumps(result, indent=1, default=lambda x: round(x, 5)))
