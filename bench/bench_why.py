"""Monitoring that finds causes, side by side in one run: `python bench/bench_why.py [--incidents 40] [--days 28]`.

1. Root-cause ranking (`loopkit.monitoring.why.rank_causes`) on planted incidents of four kinds, in turn: a broken
   upstream column (20 to 70 % of one column's values go missing or collapse onto one value), a configuration change that
   re-buckets `position`, a bad deploy (the scores move; the deploy is in the changes), and a real shift of interest (40
   to 90 % of one segment turns towards one category). Every incident also gets two unrelated changes 0.5 to 20 hours
   before it (half of them naming a column). The
   first alert of a `DriftMonitor` over the day is ranked; top-1 and top-3 accuracy per kind.
2. Alerts that learn: a synthetic stream of --days days with known incidents (a steady column shifts, a column with a daily
   rhythm shifts further, a sparse column gains a new value, a segment column skews). Today's fixed rule (PSI 0.1,
   sustained 2 h) against thresholds calibrated on the first week (`calibrate_thresholds`, one false alarm per 30 days;
   one threshold per column, and one per hour of the day) with and without on-call feedback on every alert
   (`DriftMonitor.feedback`, every 6 hours: false alarms dismissed, incidents acknowledged), and a seasonal reference (the
   first days counted per hour of the day, `freeze_reference(by_hour=True)`: each window compared with the same hours),
   all over the remaining days: false alarms and detection delay.
3. Model health without labels (`estimate_performance`): a logistic-regression CTR model trained on the synthetic feed's
   first days, calibrated on the next; each later day's expected AUC and click-rate from its scores alone against the
   realised ones, before and after the feed's interest shift.
"""
import argparse, json, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from loopkit.monitoring.alerts import calibrate_thresholds, count_alerts
from loopkit.monitoring.monitor import DriftMonitor, estimate_performance
from loopkit.monitoring.psi import freeze_reference
from loopkit.monitoring.why import rank_causes

ap = argparse.ArgumentParser(); ap.add_argument("--incidents", type=int, default=40); ap.add_argument("--days", type=int, default=28)
args = ap.parse_args()
H, DAY = 3600, 86400
out = {}

# 1. root-cause ranking on planted incidents
COLS = ["position", "age_band", "region", "device", "category", "score"]
SEG = {"age_band": ["18-24", "25-34", "35-54", "55+"], "region": ["north", "south", "east", "west"], "device": ["ios", "android", "web"],
       "category": ["news", "sports", "gaming", "music", "food"]}
def feed(t0, hours, r, incident=None, at=12, detail=None):
    n = 300 * hours
    ts = t0 + np.sort(r.integers(0, H * hours, n)); late = ts >= t0 + H * at
    df = pd.DataFrame({"ts": ts, "position": r.integers(0, 10, n).astype(float), **{c: r.choice(v, n).astype(object) for c, v in SEG.items()},
                       "score": r.beta(2, 20, n), "latency_ms": r.gamma(4, 2, n), "reason": pd.Series([None] * n, dtype=object)})
    if incident == "broken":
        hit = late & (r.random(n) < detail["share"])
        df.loc[hit, detail["column"]] = None if detail["how"] == "missing" else SEG[detail["column"]][0]
    if incident == "config": df.loc[late, "position"] = df.loc[late, "position"] // 2
    if incident == "deploy": df.loc[late, "score"] = r.beta(2, 8, late.sum())
    if incident == "interest":
        m = late & (df[detail["segment"]] == detail["value"]).to_numpy()
        df.loc[m, "category"] = np.where(r.random(m.sum()) < detail["strength"], detail["to"], df.loc[m, "category"])
    return df
r0 = np.random.default_rng(0)
ref = freeze_reference(feed(0, 24, r0), COLS)
kinds, hits = ["broken", "config", "deploy", "interest"], []
t0 = time.perf_counter()
for k in range(args.incidents):
    r = np.random.default_rng(100 + k); kind = kinds[k % 4]; noon = DAY + 12 * H
    detail = {"broken": lambda: {"column": r.choice(["device", "region", "category", "age_band"]), "how": r.choice(["missing", "one value"]), "share": r.uniform(0.2, 0.7)},
              "interest": lambda: {"segment": (s := r.choice(["age_band", "region", "device"])), "value": r.choice(SEG[s]), "to": r.choice(SEG["category"]),
                                   "strength": r.uniform(0.4, 0.9)}}.get(kind, lambda: {})()
    df = feed(DAY, 20, r, kind, detail=detail)
    changes = [dict(kind=str(r.choice(["config", "deploy"])), at=int(noon - r.uniform(0.5, 20) * H), what=f"unrelated change {j}",
                    columns=list(r.choice(COLS[:-1], 1)) if r.random() < 0.5 else None) for j in range(2)]
    truth = None
    if kind == "config": changes.append(dict(kind="config", at=int(noon - r.uniform(0, 0.5) * H), what="features: position buckets 10 -> 5", columns=["position"])); truth = "features: position buckets 10 -> 5"
    if kind == "deploy": changes.append(dict(kind="deploy", at=int(noon - r.uniform(0, 0.5) * H), what="champion v4 -> v5")); truth = "champion v4 -> v5"
    alerts = DriftMonitor(ref, sustain="1h", window="1h", min_rows=300).replay(df, every="15min")
    if not alerts: hits.append(dict(kind=kind, rank=None)); continue
    ranked = rank_causes(alerts[0], df, ref, changes)
    ok = (ranked.cause == truth) if truth else (ranked.kind == "upstream data") & ranked.cause.str.contains(f"column {detail['column']} ") if kind == "broken" \
        else (ranked.kind == "shift of interest") & (ranked.cause == "users' category moved")
    hits.append(dict(kind=kind, rank=int(ranked["rank"][ok].min()) if ok.any() else None))
h = pd.DataFrame(hits)
table = h.groupby("kind").agg(incidents=("rank", "size"), top1=("rank", lambda x: float((x == 1).mean())), top3=("rank", lambda x: float((x <= 3).mean())))
out["why"] = {"per_kind": table.round(3).to_dict("index"), "top1": round(float((h["rank"] == 1).mean()), 3), "top3": round(float((h["rank"] <= 3).mean()), 3),
              "seconds_per_incident": round((time.perf_counter() - t0) / args.incidents, 2)}

# 2. alerts that learn
r = np.random.default_rng(7)
def stream(days, rng, incidents=()):
    n = 300 * 24 * days
    ts = np.sort(rng.integers(0, days * DAY, n)); hour = (ts % DAY) / H
    df = pd.DataFrame({"ts": ts, "steady": rng.normal(0, 1, n), "daily": rng.normal(0.6 * np.sin(2 * np.pi * hour / 24), 1, n),
                       "sparse": rng.choice(list("abcdefgh"), n).astype(object), "click": (rng.random(n) < 0.05).astype(np.int8),
                       "segment": rng.choice(["p", "q", "r", "s"], n).astype(object)})
    for inc in incidents:
        m = (ts >= inc["start"]) & (ts < inc["end"]); c = inc["column"]
        if c == "steady": df.loc[m, c] += 0.35
        if c == "daily": df.loc[m, c] += 0.6
        if c == "sparse|click": df.loc[m & (rng.random(n) < 0.5), "sparse"] = "z"
        if c == "segment": df.loc[m & (rng.random(n) < 0.3), "segment"] = "p"
    return df
spec = ["steady", "daily", "sparse|click", "segment"]
ref2 = freeze_reference(stream(3, np.random.default_rng(1)), spec)
incidents = [dict(column=c, start=d * DAY + h0 * H, end=d * DAY + (h0 + 10) * H) for c, d, h0 in
             [("steady", 9, 10), ("daily", 12, 2), ("sparse|click", 15, 8), ("segment", 18, 14), ("steady", 21, 4), ("segment", 24, 9), ("daily", 26, 20)]
             if d < args.days]
data = stream(args.days, r, incidents)
mk = lambda **kw: DriftMonitor(ref2, sustain="2h", window="1h", min_rows=200, **kw)
quiet = mk(); quiet.replay(data[data.ts < 7 * DAY], every="15min")
learned_thr = calibrate_thresholds(quiet.history(), sustain="2h", false_alarm_every="30d")
hourly_thr = calibrate_thresholds(quiet.history(), sustain="2h", false_alarm_every="30d", by_hour=True)
test = data[data.ts >= 7 * DAY]
def is_true(a):
    return any(c in a.features and inc["start"] <= a.at <= inc["end"] + 6 * H for inc in incidents for c in [inc["column"]])
def score(alerts):
    false = [a for a in alerts if not is_true(a)]
    delays = {}
    for i, inc in enumerate(incidents):
        first = [a.at for a in alerts if inc["column"] in a.features and inc["start"] <= a.at <= inc["end"] + 6 * H]
        delays[f"{inc['column']}@day{inc['start'] // DAY}"] = round((min(first) - inc["start"]) / H, 2) if first else None
    return dict(alerts=len(alerts), false_alarms=len(false), detected=sum(v is not None for v in delays.values()), incidents=len(incidents),
                mean_delay_h=round(float(np.mean([v for v in delays.values() if v is not None])), 2) if any(v is not None for v in delays.values()) else None,
                median_delay_h=float(np.median([v for v in delays.values() if v is not None])) if any(v is not None for v in delays.values()) else None,
                delays_h=delays)
fixed = mk(); fixed_alerts = fixed.replay(test, every="15min")
def with_feedback(thr, make=mk):
    mon, got_all, step = make(thresholds=thr), [], 6 * H  # on-call looks at the digest every 6 hours and says which alerts were real
    for lo in range(7 * DAY, args.days * DAY, step):
        got = mon.replay(test[(test.ts >= lo) & (test.ts < lo + step)], every="15min"); got_all += got
        for a in got: mon.feedback(a, useful=is_true(a))
    return mon, got_all
variants = {"fixed_rule": fixed_alerts, "calibrated": mk(thresholds=learned_thr).replay(test, every="15min")}
smart, variants["calibrated_and_feedback"] = with_feedback(learned_thr)
variants["hourly"] = mk(thresholds=hourly_thr).replay(test, every="15min")
smart_h, variants["hourly_and_feedback"] = with_feedback(hourly_thr)
# a seasonal reference: the first days counted per hour of the day, each window compared with the same hours
ref2s = freeze_reference(stream(3, np.random.default_rng(1)), spec, by_hour=True)
mks = lambda **kw: DriftMonitor(ref2s, sustain="2h", window="1h", min_rows=200, **kw)
quiet_s = mks(); quiet_s.replay(data[data.ts < 7 * DAY], every="15min")
seasonal_thr = calibrate_thresholds(quiet_s.history(), sustain="2h", false_alarm_every="30d")
seasonal_low = calibrate_thresholds(quiet_s.history(), sustain="2h", false_alarm_every="30d", floor=0.05)  # the floor lowered: faster, a little noisier
variants["seasonal_fixed_threshold"] = mks().replay(test, every="15min")
variants["seasonal_calibrated"] = mks(thresholds=seasonal_thr).replay(test, every="15min")
variants["seasonal_calibrated_floor_0.05"] = mks(thresholds=seasonal_low).replay(test, every="15min")
smart_s, variants["seasonal_calibrated_and_feedback"] = with_feedback(seasonal_thr, mks)
scores = {k: score(v) for k, v in variants.items()}
f = scores["fixed_rule"]
out["alerts"] = {**scores, "thresholds_calibrated": learned_thr, "seasonal_columns": ref2s.seasonal, "thresholds_seasonal": seasonal_thr, "thresholds_seasonal_floor_0.05": seasonal_low, "thresholds_hourly": {k: (v if np.ndim(v) == 0 else [min(v), max(v)]) for k, v in hourly_thr.items()},
                 "false_alarm_cut": {k: round(1 - v["false_alarms"] / max(f["false_alarms"], 1), 3) for k, v in scores.items()},
                 "severity": pd.Series([a.severity for a in variants["seasonal_calibrated_and_feedback"]]).value_counts().to_dict()}

# 3. CBPE on the synthetic feed
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder
from loopkit.ingest.synth import SYNTH_START, synth_events
ev = synth_events(120_000, days=14, seed=3, shift_at=SYNTH_START + 8 * DAY, bot_share=0.0, misclick_rate=0.0).to_pandas()
feats = ["position", "category", "device", "age_band", "region"]
enc = OneHotEncoder(handle_unknown="ignore").fit(ev[feats].astype(str))
day = (ev.ts - SYNTH_START) // DAY
train, calib = ev[day < 4], ev[(day >= 4) & (day < 6)]
lr = LogisticRegression(max_iter=500).fit(enc.transform(train[feats].astype(str)), train.click)
pred = lambda d: lr.predict_proba(enc.transform(d[feats].astype(str)))[:, 1]
calibration = float(pred(calib).mean() / calib.click.mean())
rows = []
for d in range(6, 14):
    w = ev[day == d]; est = estimate_performance(pred(w), calibration, w.click.to_numpy())
    rows.append(dict(day=d, after_shift=d >= 8, rows=len(w), **{k: round(v, 4) for k, v in est.items()}))
cb = pd.DataFrame(rows)
out["cbpe"] = {"days": rows, "calibration": round(calibration, 4),
               "auc_mae_before_shift": round(float(cb[~cb.after_shift].auc_estimate_error.abs().mean()), 4),
               "auc_mae_after_shift": round(float(cb[cb.after_shift].auc_estimate_error.abs().mean()), 4),
               "ctr_mae_relative": round(float((cb.ctr_estimate_error.abs() / cb.realised_ctr).mean()), 4)}
print(json.dumps(out, indent=1, default=str))
