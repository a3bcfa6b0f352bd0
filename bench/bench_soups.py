"""Model soups against the best single model, side by side in one run: `python bench/bench_soups.py [--rows 60000]`.

A features table with user and item effects and a hidden user-item interaction (as in nbs/05_training/07_soups.ipynb),
a DeepFM trained for 3 epochs as the base, then `model_soup` with six fine-tuned ingredients (3 learning rates x 2 batch
orders, 1 epoch each), greedy and uniform. Validation AUC decides what is kept; test AUC is reported beside it.
"""
import argparse, json, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from loopkit.evaluation.metrics import auc
from loopkit.models.encoder import rows_of_split
from loopkit.training.fit import fit
from loopkit.training.soups import model_soup

ap = argparse.ArgumentParser(); ap.add_argument("--rows", type=int, default=60_000); args = ap.parse_args()
rng = np.random.default_rng(0)
n, n_users, n_items = args.rows, args.rows // 40, args.rows // 100
users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
U, V = rng.normal(0, 0.8, (n_users, 4)), rng.normal(0, 0.8, (n_items, 4))
logit = -1.5 + rng.normal(0, 0.7, n_users)[users] + rng.normal(0, 1, n_items)[items] + (U[users] * V[items]).sum(1)
table = pd.DataFrame({"event_id": np.arange(n), "ts": 1_700_000_000 + np.arange(n) * 60, "user_id": users, "item_id": items,
                      "click": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")})
table["split"] = np.select([table.index < 0.7 * n, table.index < 0.85 * n], ["train", "valid"], "test")
spec = {"label": "click", "time": "ts", "user": "user_id", "item": "item_id", "categorical": ["user_id", "item_id"], "numeric": [], "feature_set_version": "bench"}
test = rows_of_split(table, "test")
t0 = time.perf_counter(); base = fit(table, spec, model="deepfm", max_epochs=3, lr=0.01, seed=0).model; base_s = time.perf_counter() - t0
out = {"rows": n, "base_fit_s": round(base_s, 1)}
for method in ("greedy", "uniform"):
    t0 = time.perf_counter(); r = model_soup(base, table, spec, method=method); s = time.perf_counter() - t0
    t = r.table.set_index("candidate")
    best = t.drop("soup").valid_auc.idxmax()
    out[method] = {"valid_auc": {"base": round(float(t.loc["base", "valid_auc"]), 4), "best_single": round(float(t.loc[best, "valid_auc"]), 4),
                                 "soup": round(float(t.loc["soup", "valid_auc"]), 4)}, "best_single_is": best,
                   "ingredients_in_soup": int(t.in_soup.sum()), "kept": r.kept, "reason": r.reason,
                   "test_auc_of_kept": round(float(auc(test.click.to_numpy(np.float64), r.model.predict_frame(test))), 4),
                   "test_auc_of_base": round(float(auc(test.click.to_numpy(np.float64), base.predict_frame(test))), 4), "seconds": round(s, 1)}
print(json.dumps(out, indent=1))
