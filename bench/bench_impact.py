"""Difference-in-differences against a plain before/after comparison, in one run: `python bench/bench_impact.py [--launches 200]`.

Each simulated launch: 14 days, users split between a control arm and the launched arm, the launch on day 7, a true
effect drawn from [0, 1.5] click-rate points, and a seasonal lift of 0 to 4 points on the post-period's weekend days
that both arms share. For each launch `diff_in_diff` (clustered by user) and the naive before/after difference of the
launched arm: mean absolute error against the true effect, and how often the 95 % interval covers it.
"""
import argparse, json, time
import numpy as np, pandas as pd
from loopkit.evaluation.impact import diff_in_diff

ap = argparse.ArgumentParser(); ap.add_argument("--launches", type=int, default=200); ap.add_argument("--rows", type=int, default=40_000)
args = ap.parse_args()
rows, t0 = [], time.perf_counter()
for k in range(args.launches):
    rng = np.random.default_rng(k); n = args.rows
    effect, lift = rng.uniform(0, 0.015), rng.uniform(0, 0.04)
    user = rng.integers(0, n // 10, n); treated = user % 2 == 1; day = rng.integers(0, 14, n); post = day >= 7
    p = 0.05 + rng.normal(0, 0.01, n // 10)[user].clip(-0.04, 0.04) + lift * (np.isin(day % 7, [5, 6]) & post) + effect * (treated & post)
    df = pd.DataFrame({"click": (rng.random(n) < p).astype(int), "treated": treated, "post": post, "user": user, "day": day})
    d = diff_in_diff(df, cluster="user", time="day")
    rows.append(dict(effect=effect, did=d["effect"], covered=d["ci_low"] <= effect <= d["ci_high"], naive=d["naive_before_after"], width=d["ci_high"] - d["ci_low"]))
r = pd.DataFrame(rows)
print(json.dumps({"launches": len(r), "rows_per_launch": args.rows, "did_mae": round(float((r.did - r.effect).abs().mean()), 5),
                  "naive_mae": round(float((r.naive - r.effect).abs().mean()), 5), "did_coverage_95": round(float(r.covered.mean()), 3),
                  "mean_interval_width": round(float(r.width.mean()), 5), "seconds_per_launch": round((time.perf_counter() - t0) / len(r), 3)}, indent=1))
