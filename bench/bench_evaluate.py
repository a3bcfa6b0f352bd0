"""Offline evaluation throughput: `python bench/bench_evaluate.py [--rows N] [--repeats R]`.

Builds N impression rows (default 10M: 1 user per 40 rows, 1 item per 100, 8 categories, ~7% clicks, scores on a
1e-4 grid so there are ties) and times, in the same run and interleaved, every offline metric of loopkit.evaluation.metrics,
`offline_metrics` (all of them from one shared sort), `sliced_metrics` over four slices, and scikit-learn's
roc_auc_score / log_loss on the same arrays (their values must agree). Prints a markdown table: best and median of R.
"""
import argparse, os, platform, statistics, time
import numpy as np
from sklearn.metrics import roc_auc_score, log_loss
from loopkit.evaluation.metrics import (auc, logloss, gauc, expected_calibration_error, calibration_ratio, ndcg_at_k, coverage_at_k,
                              diversity_at_k, offline_metrics, sliced_metrics)


def rows(n, seed=0):
    rng = np.random.default_rng(seed)
    user = rng.integers(0, max(n // 40, 1), n); item = rng.integers(0, max(n // 100, 1), n); cat = item % 8
    taste = rng.normal(0, 0.7, max(n // 40, 1))[user] + rng.normal(0, 0.7, max(n // 100, 1))[item] + 0.5 * (cat == user % 8)
    y = (rng.random(n) < 1 / (1 + np.exp(3 - taste))).astype(np.int8)
    p = np.round(1 / (1 + np.exp(3 - taste - rng.normal(0, 0.7, n))), 4)
    return y, p, user, item, cat


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    t = time.perf_counter(); y, p, user, item, cat = rows(a.rows); made = time.perf_counter() - t
    slices = {"new_users": user % 10 == 0, "returning_users": user % 10 != 0, "cold_items": item % 7 == 0, "warm_items": item % 7 != 0}
    jobs = {
        "auc": lambda: auc(y, p),
        "sklearn roc_auc_score": lambda: roc_auc_score(y, p),
        "logloss": lambda: logloss(y, p),
        "sklearn log_loss": lambda: log_loss(y, p),
        "gauc (per user)": lambda: gauc(y, p, user),
        "expected_calibration_error": lambda: expected_calibration_error(y, p),
        "calibration_ratio": lambda: calibration_ratio(y, p),
        "ndcg_at_k (k=10, per user)": lambda: ndcg_at_k(y, p, user, k=10),
        "coverage_at_k (k=10)": lambda: coverage_at_k(item, p, user, k=10),
        "diversity_at_k (k=10, category)": lambda: diversity_at_k(cat, p, user, k=10),
        "offline_metrics (all of the above, one sort)": lambda: offline_metrics(y, p, user=user, item=item, attribute=cat, k=10),
        "sliced_metrics (all + 4 slices)": lambda: sliced_metrics(y, p, slices, user=user, item=item, attribute=cat, k=10),
    }
    times, values = {k: [] for k in jobs}, {}
    for _ in range(a.repeats):
        for name, fn in jobs.items():   # interleaved: each repeat runs every job once, in turn
            t = time.perf_counter(); values[name] = fn(); times[name].append(time.perf_counter() - t)
    assert abs(values["auc"] - values["sklearn roc_auc_score"]) < 1e-9, (values["auc"], values["sklearn roc_auc_score"])
    assert abs(values["logloss"] - values["sklearn log_loss"]) < 1e-9
    best = {k: min(v) for k, v in times.items()}
    print(f"rows {a.rows:,}, repeats {a.repeats}, made in {made:.1f} s; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"auc {values['auc']:.6f} = sklearn {values['sklearn roc_auc_score']:.6f}; gauc {values['gauc (per user)']:.4f}; "
          f"ndcg@10 {values['ndcg_at_k (k=10, per user)']:.4f}\n")
    print("| metric | best s | median s | rows/s (best) |\n|---|---:|---:|---:|")
    for k, v in times.items():
        print(f"| {k} | {min(v):.2f} | {statistics.median(v):.2f} | {a.rows / min(v) / 1e6:.1f}M |")
    print(f"\nauc / sklearn roc_auc_score time: {best['auc'] / best['sklearn roc_auc_score']:.2f}x "
          f"(sklearn takes {best['sklearn roc_auc_score'] / best['auc']:.2f}x as long); "
          f"logloss / sklearn log_loss: {best['logloss'] / best['sklearn log_loss']:.2f}x")
    solo = sum(best[k] for k in ("auc", "logloss", "gauc (per user)", "expected_calibration_error", "calibration_ratio",
                                 "ndcg_at_k (k=10, per user)", "coverage_at_k (k=10)", "diversity_at_k (k=10, category)"))
    print(f"offline_metrics: {best['offline_metrics (all of the above, one sort)']:.2f} s vs {solo:.2f} s for the metrics one by one")


if __name__ == "__main__":
    main()
