"""A team's shared stores: Optuna studies on PostgreSQL searched by several worker processes at once, and the default
pipeline run against an MLflow tracking server whose runs and registry live in PostgreSQL (artifacts in a shared folder).
The suite starts both servers itself (conftest: `postgres_url`, `tracking_server`)."""
import json

import optuna
import pytest
from conftest import loopkit

KEY = "shared-store-hmac-key-0123456789"
SPACE = {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}}


@pytest.fixture(scope="module")
def small_table(tmp_path_factory):
    from loopkit.features.batch import build_table
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    work = tmp_path_factory.mktemp("shared-table")
    spec = build_table(pseudonymize_events(synth_events(3000, n_items=40, days=2, seed=3), KEY.encode()), work)
    return work / "table.parquet", spec


def test_two_workers_search_one_study_on_postgres(postgres_url, small_table):
    from loopkit.training.search import tune
    table, spec = small_table
    storage = f"{postgres_url}/optuna"
    found = tune(table, spec, SPACE, n_trials=4, max_epochs=1, batch_size=512, storage=storage, study_name="two-workers",
                 n_workers=2, pruner="none", progress=False)
    study = optuna.load_study(study_name="two-workers", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 == len(found.trials), [t.state for t in study.trials]
    workers = {t.user_attrs["worker"] for t in done}
    assert len(workers) == 2, f"the trials ran in {workers}: one process did all the work"
    assert found.best_value == max(t.value for t in done)
    # a second call with the same name and settings continues the study; different settings are refused by name
    with pytest.raises(ValueError, match="started with different max_epochs"):
        tune(table, spec, SPACE, n_trials=4, max_epochs=2, batch_size=512, storage=storage, study_name="two-workers")


def test_default_pipeline_on_a_tracking_server_and_a_shared_study(tracking_server, postgres_url, tmp_path):
    from mlflow import MlflowClient
    storage = f"{postgres_url}/optuna"
    env = {"LOOPKIT_HMAC_KEY": KEY, "MLFLOW_TRACKING_URI": ""}
    code, rec, err = loopkit("run", "--tracking-uri", tracking_server, "--json", "-p", "ingest.n_events=6000", "-p", "evaluate.shap_rows=0",
                             "-p", "train.search={lr: {type: float, low: 0.001, high: 0.1, log: true}}", "-p", "train.n_trials=3",
                             "-p", "train.n_workers=2", "-p", f"train.storage={storage}", "-p", "train.max_epochs=1",
                             # 6,000 events leave too few test rows for the baseline intervals: the gate checks the bounds only
                             "-p", "gate.checks=[{metric: auc, min: 0.55}, {metric: auc, min_delta: -0.002, relative_to: champion}]",
                             cwd=tmp_path, env=env)
    assert code == 0, err[-4000:]
    assert not (tmp_path / ".loopkit" / "mlflow.db").exists(), "the run wrote a local store instead of the server's"
    client = MlflowClient(tracking_server)
    champion = client.get_model_version_by_alias("loopkit-ctr", "champion")
    registered = json.loads((tmp_path / "runs/latest/register/registered.json").read_text())
    assert champion.version == str(registered["version"]) == "1"
    # every stage is a run on the server, under the pipeline's parent run, and the model's files came back through it
    parent = client.get_run(champion.run_id).data.tags["mlflow.parentRunId"]
    children = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert {"ingest", "train", "register"} <= {r.data.tags.get("loopkit.stage", r.info.run_name) for r in children}
    assert client.list_artifacts(champion.run_id, "model")
    # the search's trials are one study in PostgreSQL, taken by two processes
    names = optuna.get_all_study_names(storage)
    ours = [n for n in names if n.startswith("loopkit-train-")]
    assert len(ours) == 1, names
    trials = optuna.load_study(study_name=ours[0], storage=storage).trials
    assert len(trials) == 3 and len({t.user_attrs.get("worker") for t in trials}) == 2, [(t.state, t.user_attrs) for t in trials]
