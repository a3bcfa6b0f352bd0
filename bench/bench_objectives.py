"""A ramp that judges the product owner's objectives, side by side in one run: `python bench/bench_objectives.py [--runs 10]`.

A real `Service` ramps a challenger (25 %, 50 %, 100 % of users, each step held 10 minutes of event time, the default
click-rate check: at most 10 % below the champion beyond noise) over 1,000 requests from 200 users, 5 of 20 items shown,
every click drawn from a known world. The champion scores with the world's click-rates plus a fixed error per item.
Three challengers: one that fills every list with the items of a single category (as clickable as the champion's picks,
no variety), a copy of the champion, and one that knows the world's click-rates (more clicks, as varied). Each is ramped
with the click-rate checks alone, with strict objectives {ctr: min_change -0.02, diversity: min_change -0.1, weights 1}
and with lenient ones {ctr: min_change -0.02, weight 1; diversity: min_change -0.15, weight 0.5}, over --runs seeds; reported: how often each is promoted, and the arms' click-rate and diversity when the ramp ended.
"""
import argparse, json, shutil, tempfile, time, warnings
from pathlib import Path
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from loopkit.features.batch import build_table
from loopkit.features.online import OnlineFeatures
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.ingest.synth import synth_events
from loopkit.serving.rollout import Rollout, RolloutChecks
from loopkit.serving.service import Service
from loopkit.serving.sources import LocalModels

ap = argparse.ArgumentParser(); ap.add_argument("--runs", type=int, default=10); args = ap.parse_args()
KEY, T0 = b"bench-objectives-key-0123456789", 1_767_400_000
d = Path(tempfile.mkdtemp())
events = pseudonymize_events(synth_events(3000, n_items=60, days=2, seed=3), KEY)
spec = build_table(events, d / "features")
table = pd.read_parquet(d / "features" / "table.parquet").drop_duplicates("item_id").head(20)
candidates = [dict(item_id=int(i), category=c) for i, c in zip(table.item_id, table.category)]
top = pd.Series([c["category"] for c in candidates]).value_counts().index[0]
rng0 = np.random.default_rng(0)
world = {c["item_id"]: 0.30 if c["category"] == top else float(rng0.uniform(0.05, 0.45)) for c in candidates}   # clicks drawn from these
error = {i: float(rng0.normal(0, 0.08)) for i in world}                                                     # what the champion gets wrong

class Scorer:
    "Scores an item by a table of its click-rates."
    def __init__(self, table): self.table = table
    def predict_frame(self, df): return np.array([self.table.get(int(i), 0.0) for i in df["item_id"]]).clip(0, 1)
champion = {i: p + error[i] for i, p in world.items()}
narrow = {i: (1.0 if c["category"] == top else 0.0) * 0.5 + 0.5 * champion[i] for i, c in ((c["item_id"], c) for c in candidates)}
challengers = {"one category": narrow, "a copy of the champion": champion, "knows the world": world}
owners = {"objectives, strict": {"ctr": {"min_change": -0.02, "weight": 1.0}, "diversity": {"min_change": -0.1, "weight": 1.0}},
          "objectives, lenient": {"ctr": {"min_change": -0.02, "weight": 1.0}, "diversity": {"min_change": -0.15, "weight": 0.5}}}
CONTEXT = {"age_band": "25-34", "region": "north", "device": "ios"}

def ramp(challenger, objectives, seed):
    source = LocalModels({"1": Scorer(champion), "2": Scorer(challenger)}, {"champion": "1", "challenger": "2"})
    svc = Service(source, OnlineFeatures(), key=KEY, k=5, on_promote=lambda v, why: source.promote(v, why), on_rollback=lambda v, why: source.retire(v, why),
                  rollout=Rollout("ramp", steps=(0.25, 0.5, 1.0), window=600,
                                  checks=RolloutChecks(min_impressions=150, max_latency_p99_ms=1e6, objectives=objectives)))
    rng, t = np.random.default_rng(seed), T0
    arms = None
    for _ in range(1000):
        t += 10
        res = svc.rank(int(rng.integers(200)), candidates, CONTEXT, ts=t)
        for item in res["items"]: svc.feedback(res["request_id"], item, int(rng.random() < world[item]), ts=t)
        before = svc.status()["arms"]
        st = svc.tick(t)
        if st["mode"] == "off": arms = before; break
    last = svc.status()["history"][-1]
    return last["what"], arms

rows, t0 = [], time.perf_counter()
for name, ch in challengers.items():
    for label, objectives in (("click-rate checks only", None), *owners.items()):
        outcomes, ctr, div = [], [], []
        for seed in range(args.runs):
            what, arms = ramp(ch, objectives, seed)
            outcomes.append(what)
            if arms: ctr.append((arms["champion"]["click_rate"], arms["challenger"]["click_rate"])); div.append((arms["champion"]["diversity"], arms["challenger"]["diversity"]))
        c, v = np.array(ctr, float), np.array(div, float)
        rows.append(dict(challenger=name, rule=label, promoted=sum(o == "promote" for o in outcomes) / len(outcomes),
                         rolled_back=sum(o == "rollback" for o in outcomes) / len(outcomes),
                         ctr_champion=round(float(c[:, 0].mean()), 4), ctr_challenger=round(float(c[:, 1].mean()), 4),
                         diversity_champion=round(float(v[:, 0].mean()), 3), diversity_challenger=round(float(v[:, 1].mean()), 3)))
out = pd.DataFrame(rows)
print(out.to_string(index=False))
print(json.dumps(dict(runs=args.runs, seconds=round(time.perf_counter() - t0, 1), results=rows), indent=1))
shutil.rmtree(d, ignore_errors=True)
