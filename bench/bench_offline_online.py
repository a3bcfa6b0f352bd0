"""Offline -> nearline -> online across model versions in the synthetic world, in one run: `python bench/bench_offline_online.py`.

The synthetic world (`synth_world`) keeps its true click model and, for every logged impression, the candidates the
logging policy chose among and its propensity. Model versions of varied quality (lr, fm and deepfm on 5 %, 20 % and 100 %
of the training days, and one trained on shuffled labels) are each, on the test days:
- **offline**: AUC on the logged test rows;
- **nearline**: the off-policy estimate (`snips`) of the click-rate of the version's policy, a softmax over its scores of
  each logged slot's candidates, from the logged clicks and propensities;
- **online**: the click-rate that policy gets when it chooses for every test slot, clicks drawn from the world's true
  model (one draw per slot, as an A/B arm of the same size would see), and its expectation.
Then `offline_online_agreement`: Pearson, Spearman and R^2 of each estimate against the online click-rate.
"""
import argparse, json, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from loopkit.evaluation.impact import offline_online_agreement
from loopkit.evaluation.metrics import auc
from loopkit.evaluation.offpolicy import snips
from loopkit.ingest.synth import CATEGORIES, synth_world
from loopkit.training.fit import fit

ap = argparse.ArgumentParser(); ap.add_argument("--events", type=int, default=60_000); ap.add_argument("--beta", type=float, default=3.0)
args = ap.parse_args()
t0 = time.perf_counter()
world = synth_world(n_events=args.events, days=10, seed=4, bot_share=0.0, misclick_rate=0.0)
ev = world.events.to_pandas()
COLS = ["user_id", "item_id", "category", "age_band", "region", "device"]
ev["split"] = np.select([ev.ts < ev.ts.quantile(0.7), ev.ts < ev.ts.quantile(0.8)], ["train", "valid"], "test")
spec = {"label": "click", "time": "ts", "user": "user_id", "item": "item_id", "categorical": COLS, "numeric": ["position"], "feature_set_version": "bench"}
test = ev[ev.split == "test"].reset_index(drop=True)
avail = world.available()
cands = world.candidates[test.event_id.to_numpy()]; ok = avail[test.event_id.to_numpy()]
k = cands.shape[1]
ctx = test[["user_id", "age_band", "region", "device", "position"]]
grid = pd.DataFrame({"user_id": np.repeat(ctx.user_id.to_numpy(), k), "item_id": cands.ravel(),
                     "category": np.array(CATEGORIES, dtype=object)[world.item_cat[cands.ravel()]],
                     **{c: np.repeat(ctx[c].to_numpy(), k) for c in ("age_band", "region", "device")}, "position": np.repeat(ctx.position.to_numpy(), k).astype(float)})
truth = world.p_click(np.repeat(test.user_id.to_numpy(), k), cands.ravel(), np.repeat(test.position.to_numpy(), k),
                      np.repeat(world.session_start[test.event_id.to_numpy()], k)).reshape(-1, k)
rng = np.random.default_rng(0)
versions = []
train_days = ev[ev.split == "train"]
for model in ("lr", "fm", "deepfm"):
    for share in (0.05, 0.2, 1.0):
        versions.append((f"{model} on {share:.0%} of training", model, share, False))
versions.append(("lr on shuffled labels", "lr", 1.0, True))
rows = []
for name, model, share, shuffle in versions:
    keep = ev.split != "train"
    if share < 1.0: keep |= (ev.split == "train") & (ev.ts >= train_days.ts.quantile(1 - share))  # the newest share of the training days
    else: keep |= ev.split == "train"
    table = ev[keep].copy()
    if shuffle: table.loc[table.split == "train", "click"] = rng.permutation(table.loc[table.split == "train", "click"].to_numpy())
    m = fit(table, spec, model=model, max_epochs=3, lr=0.01, seed=0).model
    offline = auc(test.click.to_numpy(np.float64), m.predict_frame(test))
    s = m.predict_frame(grid).reshape(-1, k).astype(np.float64)
    logit = np.log(np.clip(s, 1e-6, 1 - 1e-6) / np.clip(1 - s, 1e-6, 1))
    z = np.where(ok, args.beta * logit, -np.inf); z -= z.max(1, keepdims=True); pi = np.exp(z); pi /= pi.sum(1, keepdims=True)
    target = (pi * (cands == test.item_id.to_numpy()[:, None])).sum(1)
    ope = snips(test.click.to_numpy(), test.propensity.to_numpy(), target)
    expected = float((pi * truth).sum(1).mean())
    pick = (np.cumsum(pi, 1) < rng.random((len(pi), 1))).sum(1).clip(0, k - 1)
    online = float((rng.random(len(pi)) < truth[np.arange(len(pi)), pick]).mean())
    rows.append(dict(version=name, offline_auc=round(offline, 4), ope_ctr=round(ope.value, 4), ope_ci=[round(ope.ci_low, 4), round(ope.ci_high, 4)],
                     online_ctr=round(online, 4), online_expected_ctr=round(expected, 4)))
v = pd.DataFrame(rows)
agree = offline_online_agreement(v, online="online_ctr", estimates=["offline_auc", "ope_ctr"])
agree_exp = offline_online_agreement(v, online="online_expected_ctr", estimates=["offline_auc", "ope_ctr"])
print(json.dumps({"versions": rows, "test_slots": len(test), "logged_ctr": round(float(test.click.mean()), 4),
                  "agreement_with_online": agree.round(3).to_dict("records"), "agreement_with_expected_online": agree_exp.round(3).to_dict("records"),
                  "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
