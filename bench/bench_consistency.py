"""Online/offline feature skew through the real service, side by side in one run: `python bench/bench_consistency.py [--requests 600]`.

A logistic-regression model trained on the synthetic feed, served by `Service(log_features=True)` to 200 users, a
request every 10 s, 5 items shown; every shown item's outcome (from a click world) is sent back after a delay: at once,
60 s later, or 10 minutes later. Then `feature_mismatch` recomputes each served row's features offline from the events
the log became: the share of rows that disagree, per feature, for each delay. (A delay shorter than the time between a
user's requests changes nothing; a longer one leaves the user's next requests scored without the earlier outcomes.)
"""
import argparse, json, shutil, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from loopkit.features.batch import build_table
from loopkit.features.online import OnlineFeatures
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.ingest.synth import synth_events
from loopkit.models.ctr import save_model
from loopkit.monitoring.consistency import feature_mismatch
from loopkit.serving.log import log_events, log_to_events
from loopkit.serving.service import Service
from loopkit.serving.sources import LocalModels
from loopkit.training.fit import fit

ap = argparse.ArgumentParser(); ap.add_argument("--requests", type=int, default=600); args = ap.parse_args()
KEY, T0, CONTEXT = b"bench-consistency-key-012345", 1_767_400_000, {"age_band": "25-34", "region": "north", "device": "ios"}
d = Path(tempfile.mkdtemp())
events = pseudonymize_events(synth_events(3000, n_items=60, days=2, seed=3), KEY)
spec = build_table(events, d / "features")
save_model(fit(d / "features" / "table.parquet", spec, model="lr", max_epochs=1).model, d / "v1")
table = pd.read_parquet(d / "features" / "table.parquet").drop_duplicates("item_id").head(20)
candidates = [dict(item_id=int(i), category=c) for i, c in zip(table.item_id, table.category)]
out = {}
for delay in (0, 60, 600):
    rng = np.random.default_rng(0)
    svc = Service(LocalModels({"1": d / "v1"}), OnlineFeatures(), key=KEY, k=5, log_dir=d / f"log{delay}", log_features=True, feedback_window=3600)
    queue, t = [], T0
    t0 = time.perf_counter()
    for _ in range(args.requests):
        t += 10
        while queue and queue[0][0] <= t: due, rid, item, click = queue.pop(0); svc.feedback(rid, item, click, ts=due)
        res = svc.rank(int(rng.integers(200)), candidates, CONTEXT, ts=t)
        for pos, item in enumerate(res["items"]): queue.append((t + delay, res["request_id"], item, int(rng.random() < 0.3 / (1 + pos))))
    for due, rid, item, click in queue: svc.feedback(rid, item, click, ts=max(due, t))
    svc.close(); serve_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = feature_mismatch(d / f"log{delay}", log_to_events(log_events(d / f"log{delay}")))
    out[f"delay_{delay}s"] = {"rows": int(report.rows.iloc[0]), "mismatch_rate": {r.feature: round(r.mismatch_rate, 4) for r in report.itertuples()},
                              "serve_s": round(serve_s, 1), "check_s": round(time.perf_counter() - t0, 2)}
shutil.rmtree(d, ignore_errors=True)
print(json.dumps(out, indent=1))
