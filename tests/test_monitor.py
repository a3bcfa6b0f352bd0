"Drift monitoring: PSI against a reference computation and Evidently, the alert on the synthetic shift, the monitor template."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from loopkit.ingest.synth import SYNTH_START, synth_events
from loopkit.monitoring.psi import EVENT_COLUMNS, DriftReference, drift_report, freeze_reference, psi
from loopkit.monitoring.monitor import DriftMonitor

os.environ.setdefault("DO_NOT_TRACK", "1")
ROOT = Path(__file__).resolve().parents[1]
SHIFT_AT = SYNTH_START + 36 * 3600  # day 2, noon


def reference_psi(ref, cur, edges=None, categories=None, floor=1e-4):
    "PSI of one column computed the obvious way with pandas on the given bins (feature-engine's formula)."
    def shares(s):
        if edges is not None: b = pd.cut(s, [-np.inf, *edges, np.inf], right=True, labels=False).astype(float)
        else: b = s.map({c: i for i, c in enumerate(categories)}).astype(float).where(s.isna() | s.isin(categories), len(categories))
        return b.fillna(-1).value_counts(normalize=True)
    r, c = shares(ref), shares(cur)
    keys = r.index.union(c.index)
    r, c = r.reindex(keys).fillna(floor), c.reindex(keys).fillna(floor)
    return float(((c - r) * np.log(c / r)).sum())


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    n, m = 20_000, 15_000
    ref = pd.DataFrame({f"num{i}": rng.gamma(2, 1 + i, n) for i in range(6)})
    cur = pd.DataFrame({f"num{i}": rng.gamma(2.2, 1 + i, m) for i in range(6)})
    ref["ints"], cur["ints"] = rng.poisson(2, n), rng.poisson(2.5, m)                     # ties: fewer than 10 bins
    ref["sparse"], cur["sparse"] = np.where(rng.random(n) < .8, 0.0, rng.exponential(5, n)), rng.exponential(5, m)  # zero-inflated
    cur.loc[::11, "num1"] = np.nan                                                          # missing values appear
    ref["cat"] = rng.choice(list("abcde"), n, p=[.4, .3, .15, .1, .05]).astype(object)
    cur["cat"] = rng.choice(list("abcdz"), m, p=[.3, .3, .2, .1, .1]).astype(object)       # 'z' unseen in the reference
    ref["click"], cur["click"] = (rng.random(n) < .1).astype(np.int8), (rng.random(m) < .1).astype(np.int8)
    return ref, cur


def test_psi_equals_a_reference_computation_on_the_same_bins(frames):
    ref, cur = frames
    cols = [c for c in ref if c != "click"] + ["cat|click"]
    frozen = freeze_reference(ref, cols, bins=10)
    got = psi(frozen, cur)
    for c in frozen.columns:
        name, col = c["name"], c["target"][0]
        r, k = (ref, cur) if c["given"] is None else (ref[ref.click == 1], cur[cur.click == 1])
        want = (reference_psi(r[col], k[col], edges=c["edges"]) if c["kind"] == "numeric"
                else reference_psi(r[col], k[col], categories=c["categories"]))
        assert got[name] == pytest.approx(want, abs=1e-12), name
    assert (got > 0).all()
    assert len(frozen.columns[cols.index("ints")]["edges"]) < 9       # tied quantiles were merged
    assert frozen.columns[cols.index("sparse")]["edges"][0] == 0.0    # the zero bin of a zero-inflated column is kept
    assert psi(frozen, ref).abs().max() == 0.0
    # the bins are the reference's equal-frequency quantiles, as pandas.qcut draws them
    _, qcut_edges = pd.qcut(ref["num0"], 10, retbins=True)
    np.testing.assert_allclose(frozen.columns[0]["edges"], qcut_edges[1:-1], rtol=1e-12)


def test_psi_agrees_with_evidently_on_the_same_buckets(frames, tmp_path):
    ref, cur = frames
    frozen = freeze_reference(ref.iloc[:4000], ["num0", "ints", "sparse", "cat", "cat|click"], bins=10)
    ours = psi(frozen, cur.iloc[:3000])
    theirs = drift_report(frozen, cur.iloc[:3000], tmp_path / "report.html")
    np.testing.assert_allclose(theirs.values, ours.values, rtol=1e-9)
    html = (tmp_path / "report.html").read_text()
    assert "cat|click" in html and "<script src=\"http" not in html  # self-contained: no script fetched from the network


def test_reference_round_trips_through_json(frames, tmp_path):
    ref, cur = frames
    frozen = freeze_reference(ref, ["num0", "cat", "cat*ints|click", "num1@cat"], bins=8)
    path = frozen.save(tmp_path / "ref.json")
    back = DriftReference.load(json.loads(path.read_text()))
    pd.testing.assert_series_equal(psi(back, cur), psi(frozen, cur))
    assert "num1@cat=a" in back.names and back.bins == 8
    with pytest.raises(ValueError, match="not a loopkit drift reference"): DriftReference.load({"columns": []})


def test_bad_input_says_what_and_where(frames):
    ref, cur = frames
    frozen = freeze_reference(ref, ["num0", "cat"])
    with pytest.raises(KeyError, match="column 'cat' is not in the data"): psi(frozen, cur[["num0"]])
    with pytest.raises(TypeError, match="binned it as numeric"): psi(frozen, cur.assign(num0="x"))
    with pytest.raises(TypeError, match="pandas DataFrame or a pyarrow Table"): psi(frozen, {"num0": [1.0]})
    with pytest.raises(ValueError, match="sustain='soon' is not a duration"): DriftMonitor(frozen, sustain="soon").observe(cur.assign(ts=0))
    with pytest.raises(ValueError, match="no `now`"): DriftMonitor(frozen).observe(cur.assign(ts=0).iloc[:0])


def feed(shift: bool, seed: int = 0):
    "Three days of the synthetic feed without bots (as screened by the validate stage); the shift at day 2 noon."
    ev = synth_events(200_000, seed=seed, days=3, shift_at=SHIFT_AT if shift else None)
    return ev.filter(pc.invert(ev["is_bot"]))


def run_monitor(events, **kw):
    train = events.filter(pc.less(events["ts"], SYNTH_START + 86400))
    live = events.filter(pc.greater_equal(events["ts"], SYNTH_START + 86400))
    mon = DriftMonitor(freeze_reference(train, list(EVENT_COLUMNS)), **kw)
    return mon, mon.replay(live, every="15min")


@pytest.mark.parametrize("seed", [0, 1])
def test_the_shift_is_detected_after_it_happens_and_a_quiet_stream_stays_silent(seed):
    changes = []
    mon, alerts = run_monitor(feed(True, seed), on_alert=changes.append)
    assert alerts, "no alert on the shifted stream"
    first = alerts[0]
    assert first.since >= SHIFT_AT and first.at >= SHIFT_AT + 2 * 3600, (first.since, first.at)   # sustained for 2 h of event time
    assert "category|click@age_band=18-24" in first.features
    assert first.window[0] < first.at and changes == alerts                                          # the hook got every alert
    _, quiet = run_monitor(feed(False, seed))
    assert quiet == [], [a.to_dict() for a in quiet]


def test_one_alert_per_feature_while_it_stays_drifted_then_re_arms():
    rng = np.random.default_rng(0)
    def batch(t, mean): return pd.DataFrame({"ts": t + np.arange(600), "x": rng.normal(mean, 1, 600)})
    mon = DriftMonitor(freeze_reference(batch(0, 0.0), ["x"]), sustain="1h", window="10min")
    mon.note_change("model_version", "7", at=0)
    mon.note_change("feature_set", "fs-a", at=1800)
    alerts = {}
    for t in range(3600, 20 * 3600, 600):
        hour = t // 3600
        a = mon.observe(batch(t, 2.0 if 4 <= hour < 9 or hour >= 13 else 0.0))
        if a: alerts[hour] = a
    assert sorted(alerts) == [5, 14], sorted(alerts)        # 1 h after each move, never twice while drifted
    a = alerts[5]
    assert list(a.features) == ["x"] and a.since == 4 * 3600 + 599
    assert a.active == {"model_version": "7", "feature_set": "fs-a"} and a.preceding_change["kind"] == "feature_set"


def test_the_monitor_template_runs_with_papermill(tmp_path):
    import papermill
    ev = synth_events(30_000, seed=3, days=2, shift_at=SYNTH_START + 86400)
    pq.write_table(ev.filter(pc.less(ev["ts"], SYNTH_START + 86400)), tmp_path / "reference.parquet")
    pq.write_table(ev.filter(pc.greater_equal(ev["ts"], SYNTH_START + 86400)), tmp_path / "current.parquet")
    papermill.execute_notebook(str(ROOT / "templates/monitor.ipynb"), str(tmp_path / "out.ipynb"), cwd=str(tmp_path),
                               kernel_name="python3", progress_bar=False,
                               parameters=dict(reference="reference.parquet", current="current.parquet", min_rows=200))
    drift = json.loads((tmp_path / "drift.json").read_text())
    assert set(drift["psi"]) >= {"position", "category|click", "category|click@age_band=18-24"}
    assert [d["dimension"] for d in drift["dimensions"]] == ["data", "model", "business"]
    np.testing.assert_allclose([drift["evidently_psi"][k] for k in drift["psi"]], list(drift["psi"].values()), atol=1e-6)
    assert drift["psi"]["category|click@age_band=18-24"] > 0.1       # the shifted segment's clicks moved
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["max_psi"] == max(drift["psi"].values()) and metrics["n_drifted"] >= 1
    assert (tmp_path / "drift_report.html").stat().st_size > 10_000
    assert DriftReference.load(tmp_path / "reference.json").names == list(drift["psi"])
    causes = drift["causes"]
    assert len(causes) == len(drift["alerts"]) >= 1
    out = subprocess.run([str(Path(sys.executable).parent / "loopkit"), "why", str(tmp_path), "--no-project", "--json"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == causes[0]                        # `loopkit why` ranks what the stage ranked
    assert causes[0][0]["kind"] == "shift of interest"                # nothing broke and nothing was deployed in this world
    assert drift["feature_mismatch"] is None and "expected_auc" not in metrics    # no feature log, no score: neither is made up


def test_the_monitor_template_compares_each_window_with_the_same_hours_when_seasonal(tmp_path):
    import papermill
    ev = synth_events(30_000, seed=3, days=3, shift_at=SYNTH_START + 2 * 86400).to_pandas()
    hour = (ev.ts % 86400) / 3600
    ev["load"] = np.random.default_rng(0).normal(np.sin(2 * np.pi * hour / 24), 1)        # a column with a daily rhythm
    ev[ev.ts < SYNTH_START + 2 * 86400].to_parquet(tmp_path / "reference.parquet")       # two days: the rhythm can be seen to hold
    ev[ev.ts >= SYNTH_START + 2 * 86400].to_parquet(tmp_path / "current.parquet")
    def run(seasonal):
        papermill.execute_notebook(str(ROOT / "templates/monitor.ipynb"), str(tmp_path / f"out-{seasonal}.ipynb"), cwd=str(tmp_path),
                                   kernel_name="python3", progress_bar=False,
                                   parameters=dict(reference="reference.parquet", current="current.parquet", min_rows=200, seasonal=seasonal,
                                                   columns=["load", "age_band", "category|click"]))
        return json.loads((tmp_path / "drift.json").read_text())["alerts"], DriftReference.load(tmp_path / "reference.json")
    flat, flat_ref = run(False)
    hourly, ref = run(True)
    assert flat_ref.by_hour is None and (ref.by_hour.sum(axis=0) == ref.reference_counts).all()   # saved with its hours
    assert ref.seasonal == ["load"]                       # the rhythm held from day one to day two; the users' mix did not
    named = lambda alerts: {f for a in alerts for f in a["features"]}
    assert "load" in named(flat) and "load" not in named(hourly)                  # the rhythm alone alerted; now it is expected
    assert named(hourly) == named(flat) - {"load"} != set()                         # the other columns alert as before
