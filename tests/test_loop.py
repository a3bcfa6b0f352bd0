"""The closed loop end to end (`loopkit loop`), small: a shift detected after it happens and a retrained champion
promoted that clicks better on the shifted segment; and a deliberately broken challenger rolled back by the ramp itself."""
import json, sqlite3
from pathlib import Path

import pandas as pd
import pytest
from conftest import loopkit

FAST = ["-p", "evaluate.shap_rows=0"]  # the default epochs: a retrained model worth promoting needs them
# user tokens decide which users a canary or an exploration slot takes: a fixed key makes the run the same on every machine
KEY = {"LOOPKIT_HMAC_KEY": "loop-test-hmac-key-a-0123456789"}


def _history(loop_dir):
    from loopkit.registry import alias_history
    return alias_history("loopkit-ctr", f"sqlite:///{Path(loop_dir)/'mlflow.db'}")


def _why_not(record) -> str:
    "What the retrain's gate said, and the loop's steps after the alert: the evidence when the loop did not promote."
    gate = Path(record["loop_dir"]) / "runs" / "retrain" / "gate" / "gate.json"
    checks = json.loads(gate.read_text())["checks"] if gate.exists() else "no gate.json"
    steps = [{k: v for k, v in s.items() if k != "event_time"} for s in record["steps"] if s["step"] not in ("serve", "batch")]
    return f"outcome {record['outcome']}; gate checks: {checks}; steps: {steps[-12:]}"


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    "One closed-loop run with an interest shift (the default world), in a fresh project folder."
    project = tmp_path_factory.mktemp("loop-shift")
    code, record, err = loopkit("loop", "--json", *FAST, cwd=project, env=KEY)
    assert code == 0 and record, f"loopkit loop failed ({code}):\n{err[-4000:]}"
    return record


def test_shift_is_detected_after_it_happens_and_not_before(shifted):
    assert shifted["shift_at"] is not None and shifted["detected_at"] is not None, shifted
    assert shifted["detected_at"] > shifted["shift_at"]
    assert all(a["at"] > shifted["shift_at"] for a in shifted["alerts"]), "an alert fired before the shift"


def test_retrained_challenger_is_promoted_through_shadow_and_ramp(shifted):
    steps = [s["step"] for s in shifted["steps"]]
    assert shifted["outcome"] == "promoted", _why_not(shifted)
    assert shifted["champion_after"] == shifted["challenger"] != shifted["champion_before"]
    order = ["serve", "shift", "detect", "collect", "retrain", "distill", "evaluate", "gate", "register", "shadow", "canary", "promote"]
    assert [s for s in steps if s in order] == [s for s in order if s in steps] and set(order) <= set(steps), steps
    times = [s["event_time"] for s in shifted["steps"] if s["step"] in order and s["step"] != "shift"]
    assert times == sorted(times), "the timeline's event times go backwards"
    register = next(s for s in shifted["steps"] if s["step"] == "register")
    assert (register["alias"], register["gate"]) == ("challenger", "blessed")
    hist = _history(shifted["loop_dir"])
    promo = hist[(hist.alias == "champion") & (hist.to == shifted["champion_after"])].iloc[-1]
    assert promo["from"] == shifted["champion_before"] and "ramp" in promo.why and promo.who


def test_new_champion_clicks_better_on_the_shifted_segment(shifted):
    # while both served (the A/B part of the ramp): the world's true click-rate of what each version showed, which is the
    # observed click-rate without the coin flips, and the observed one itself for the record
    ctr = shifted["segment_ctr"]
    old, new = ctr[str(shifted["champion_before"])], ctr[str(shifted["champion_after"])]
    assert old["impressions"] >= 200 and new["impressions"] >= 200, ctr
    assert new["true_ctr"] > old["true_ctr"], ctr


def test_the_digital_twin_predicted_the_ramp_before_it_began(shifted):
    twin = shifted["twin"]
    old, new = str(shifted["champion_before"]), str(shifted["challenger"])
    assert set(twin["predicted"]) == {old, new} and all(v["impressions"] >= 200 for v in twin["predicted"].values()), twin
    assert twin["predicted_lift"] > 0 and twin["observed_lift"] > 0, twin   # both: the retrained model clicks better on the shifted segment
    assert twin["lift_error"] == round(twin["predicted_lift"] - twin["observed_lift"], 5)
    at = {s["step"]: s["event_time"] for s in shifted["steps"]}
    assert at["twin"] <= at["canary"], "the twin ran after the challenger met users"


def test_the_run_is_kept_as_evidence(shifted):
    d = Path(shifted["loop_dir"])
    assert json.loads((d/"loop.json").read_text())["outcome"] == "promoted"
    for run in ("bootstrap", "retrain"):
        for stage in ("ingest", "train", "distill", "evaluate", "gate", "register"):
            assert (d/"runs"/run/stage/f"{stage}.ipynb").exists(), (run, stage)
    assert list((d/"log").rglob("*.parquet")), "the serving log is empty"
    assert (d/"drift.parquet").exists() and (d/"reference.json").exists()


def test_a_broken_challenger_is_rolled_back_by_the_ramp(tmp_path):
    code, rec, err = loopkit("loop", "--json", "--bad-challenger", "--no-shift", "--days", "3.6", "--events", "24000", *FAST, cwd=tmp_path, env=KEY)
    assert code == 0 and rec, f"loopkit loop failed ({code}):\n{err[-4000:]}"
    assert rec["outcome"] == "rolled_back", rec
    assert rec["twin"]["predicted_lift"] < 0, rec["twin"]   # the twin saw it coming before the ramp
    assert rec["champion_after"] == rec["champion_before"] and rec["challenger"] != rec["champion_before"]
    rollback = next(s for s in rec["steps"] if s["step"] == "rollback")
    assert "click-rate" in rollback["why"], rollback
    hist = _history(rec["loop_dir"])
    assert (hist.alias == "champion").sum() == 1, "the champion alias moved"
    last = hist[hist.alias == "challenger"].iloc[-1]
    assert last["from"] == rec["challenger"] and pd.isna(last.to), "the challenger alias was not retired"
