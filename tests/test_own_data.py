"""A team's own events, declared in the project's pipeline file (no converter): a JSON-lines review log with string user
and item ids, a 1-5 rating, time in milliseconds and extra columns, through the whole default pipeline and `/rank`."""
import json

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
import subprocess
from conftest import LOOPKIT, loopkit, served_process, statuses


def subprocess_out(command, cwd, env):
    "stdout of `loopkit COMMAND` (the tables a person reads)."
    import os
    return subprocess.run([str(LOOPKIT), command], capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}, timeout=300).stdout

KEY = "own-data-test-key-0123456789"


def review_log(path, n=6000, seed=0):
    "Reviews whose rating depends on the user's taste for the item's brand (an interaction no one-hot baseline has) and on its price."
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"sku": [f"SKU-{i:04d}" for i in range(150)], "brand": rng.choice(["acme", "globex", "initech"], 150),
                          "price": rng.gamma(2.0, 15.0, 150).round(2)})
    items["summary"] = [" ".join(rng.choice(["solid", "cheap", "great", "value", "broke", "fast"], rng.integers(0, 9))) for _ in range(150)]
    raw = rng.normal(size=(50, 3)); raw -= raw.mean(1, keepdims=True)  # a user's taste for a brand, not how much they like anything
    taste = {(u, b): raw[u, j] for u in range(50) for j, b in enumerate(("acme", "globex", "initech"))}
    users, picks = rng.integers(0, 50, n), rng.integers(0, 150, n)
    rows = items.iloc[picks].reset_index(drop=True)
    logit = np.array([taste[(u, b)] for u, b in zip(users, rows.brand)]) * 2.5 - rows.price.to_numpy() / 40
    rating = np.clip(np.round(3 + 1.2 * logit + rng.normal(0, 0.8, n)), 1, 5).astype(int)
    log = rows.assign(customer=[f"cust-{u}@example.com" for u in users], rating=rating,
                      event_time=1_700_000_000_000 + np.sort(rng.integers(0, 20 * 86_400_000, n)), helpful_votes=rng.integers(0, 5, n))
    log.to_json(path, orient="records", lines=True)
    return log


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    "A project made by `loopkit init`, its pipeline file declaring the review log, run once."
    project = tmp_path_factory.mktemp("own") / "shop"
    code, _, err = loopkit("init", str(project))
    assert code == 0, err
    (project / "data").mkdir()
    review_log(project / "data" / "reviews.jsonl")
    pipe = yaml.safe_load((project / "pipeline.yaml").read_text())
    pipe["stages"]["ingest"]["parameters"] = {"source": "data/reviews.jsonl", "columns": {"user_id": "customer", "item_id": "sku", "ts": "event_time"},
                                              "label": "rating >= 4", "features": {"numeric": ["price"], "categorical": ["brand"], "text": ["summary"]}}
    pipe["stages"]["evaluate"]["parameters"]["shap_rows"] = 0
    (project / "pipeline.yaml").write_text(yaml.safe_dump(pipe, sort_keys=False))
    env = {"LOOPKIT_HMAC_KEY": KEY, "MLFLOW_TRACKING_URI": "", "LOOPKIT_SCHEMA": ""}  # the project is the context: its store, its columns
    (project / "notebooks").mkdir()
    code, rec, err = loopkit("run", "--json", cwd=project / "notebooks", env=env)  # below the project: its pipeline.yaml
    return project, env, code, rec, err


def test_the_declared_source_runs_through_every_stage(own):
    project, _, code, rec, err = own
    assert rec is not None, err[-3000:]
    failed = [s for s in rec["stages"] if s["status"] == "failed"]
    assert not failed, err[-3000:]
    run = project / "runs" / "latest"
    events = pq.read_table(run / "ingest" / "events.parquet")
    assert {"price", "brand", "summary"} <= set(events.column_names)
    assert all(u.startswith("u_") for u in events["user_id"].to_pylist()), "user ids were not tokenized"
    assert str(events.schema.field("item_id").type) == "int64"
    source = json.loads((run / "ingest" / "source.json").read_text())
    assert source["ts"].startswith("numbers in ms") and source["left_out"] == ["helpful_votes"] and "position" in source["defaults"]
    assert json.loads((run / "ingest" / "schema.json").read_text()) == {"numeric": ["price"], "item_attribute": ["brand"], "text": ["summary"]}
    spec = json.loads((run / "features" / "spec.json").read_text())
    assert {"price_value", "summary_words"} <= set(spec["numeric"]) and "brand" in spec["categorical"], spec
    assert "ingest: 6,000 events from data/reviews.jsonl" in err and "source columns left out" in err


def test_no_raw_id_is_written_anywhere(own):
    project = own[0]
    raw = [f"cust-{u}@example.com" for u in range(50)]
    for path in (project / "runs").rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            assert not any(r.encode() in data for r in raw[:50]), f"a raw user id is in {path}"


def test_every_command_in_the_project_uses_its_pipeline_and_its_store(own):
    project, env, *_ = own
    assert (project / ".loopkit" / "mlflow.db").exists() and not (project / "notebooks" / ".loopkit").exists()
    code, _, err = loopkit("status", cwd=project / "data", env=env)  # right after the run: what ran, and for how long
    lines = {l.split()[0]: l.split() for l in err.splitlines()[2:] if l.strip()}
    assert code == 0 and lines["train"][1] == "ran" and float(lines["train"][2]) > 0, err
    code, rec, err = loopkit("run", "--json", cwd=project / "data", env=env)
    assert code == 0 and set(statuses(rec).values()) == {"cached"}, err[-2000:]  # the project's run, not the built-in pipeline
    code, _, err = loopkit("status", "pipeline.yaml", cwd=project, env=env)
    assert code == 0 and "cached  (ran in" in err, err
    code, rows, err = loopkit("versions", "--json", cwd=project / "data", env=env)
    assert code == 0 and len(rows) == 1 and rows[0]["gate"] in ("blessed", "not_blessed"), err
    if "champion" not in rows[0]["aliases"]:  # a small log may not beat its baselines: an operator's promotion, in the project's store
        code, _, err = loopkit("promote", "--version", "1", "--why", "serving test", cwd=project / "data", env=env)
        assert code == 0, err
    out = subprocess_out("versions", project / "data", env)
    assert out.splitlines()[0].split() == ["version", "aliases", "model", "gate", "auc", "gauc", "logloss", "ece", "feature_set_version"], out


def test_the_service_scores_the_declared_features(own):
    project, env, *_ = own
    admin = {**env, "LOOPKIT_ADMIN_TOKEN": "own-admin-token-0123456789"}  # the registry and the declared columns come from the project
    from loopkit.schema import item_key
    skus = [f"SKU-{i:04d}" for i in range(5)]
    with served_process(["--k", "5", "--poll-interval", "3600"], project / "data", admin) as url:
        def rank(price):
            candidates = [{"item_id": k, "brand": "acme", "price": price, "summary": "great value"} for k in item_key(skus).to_pylist()]
            r = httpx.post(url + "/rank", json={"user": "cust-1@example.com", "candidates": candidates, "ts": 1_702_000_000})
            assert r.status_code == 200, r.text
            return r.json()["scores"]
        assert rank(5.0) != rank(500.0), "the declared numeric feature does not reach the model"
