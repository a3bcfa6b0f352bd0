"""One schema: a context column declared in one place ($LOOPKIT_SCHEMA, read by `loopkit.schema`) reaches every stage of the
default pipeline, the trained model's inputs, a `/rank` request and the serving log, with nothing else edited."""
import json
import time

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import loopkit, served_process


@pytest.fixture(scope="module")
def declared(tmp_path_factory):
    "A project declaring the context column `os_version`, and the default pipeline run on events that carry it."
    from loopkit.ingest.synth import synth_events
    project = tmp_path_factory.mktemp("schema")
    (project / "schema.json").write_text(json.dumps({"context": ["os_version"]}))
    events = synth_events(8000, seed=3)
    rng = np.random.default_rng(0)
    os_version = np.where(events["device"].to_numpy(zero_copy_only=False) == "ios", rng.choice(["17", "18"], events.num_rows), "n/a")
    pq.write_table(events.append_column("os_version", pa.array(os_version)), project / "events.parquet")
    env = {"LOOPKIT_SCHEMA": str(project / "schema.json"), "LOOPKIT_HMAC_KEY": "schema-test-key-0123456789",
           "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
    code, rec, err = loopkit("run", "-p", f"ingest.source={project / 'events.parquet'}", "-p", "evaluate.shap_rows=0", "--json", cwd=project, env=env)
    assert code == 0 and rec, f"the default pipeline failed with a declared column ({code}):\n{err[-3000:]}"
    return project, env


def test_the_declared_column_reaches_the_events_the_features_and_the_model(declared):
    project, _ = declared
    run = project / "runs" / "latest"
    assert "os_version" in pq.read_schema(run / "ingest" / "events.parquet").names
    assert "os_version" in pq.read_schema(run / "validate" / "events.parquet").names
    spec = json.loads((run / "features" / "spec.json").read_text())
    assert "os_version" in spec["categorical"], spec["categorical"]
    encoder = json.loads((run / "distill" / "model" / "encoder.json").read_text())
    assert "os_version" in encoder["categorical"] and set(encoder["vocab"]["os_version"]) >= {"17", "18"}


def test_a_rank_request_carries_it_to_the_model_and_the_log(declared):
    project, env = declared
    admin = {**env, "LOOPKIT_ADMIN_TOKEN": "schema-admin-token-0123456789"}
    with served_process(["--model-dir", project / "runs/latest/distill/model", "--log-dir", project / "log", "--k", "3",
                         "--poll-interval", "3600"], project, admin) as url:
        candidates = [{"item_id": i, "category": "news"} for i in range(6)]
        scores = {}
        for version in ("17", "n/a", "never-seen"):
            r = httpx.post(url + "/rank", json={"user": "someone", "candidates": candidates, "ts": int(time.time()),
                                                "context": {"device": "ios", "os_version": version}})
            assert r.status_code == 200, r.text
            scores[version] = r.json()["scores"]
        assert scores["17"] != scores["n/a"], "the declared context column does not reach the model"
        assert httpx.post(url + "/admin/flush", headers={"Authorization": "Bearer schema-admin-token-0123456789"}).status_code == 200
        from loopkit.schema import read_table
        log = read_table(project / "log")
        assert "os_version" in log.column_names and {"17", "n/a", "never-seen"} <= set(log["os_version"].to_pylist())
