"The walking skeleton end to end: the packaged default pipeline, run as a newcomer runs it, then cached."
import json
from pathlib import Path
import pytest
from conftest import loopkit, statuses, ROOT

STAGES = ['ingest', 'validate', 'features', 'audit', 'train', 'distill', 'evaluate', 'gate', 'monitor', 'register']


def output(rec, stage, name):
    "The path of a stage's declared output in a run record."
    return Path(next(s for s in rec['stages'] if s['name'] == stage)['outputs'][name])


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('default')
    env = {'MLFLOW_TRACKING_URI': ''}   # the default: a SQLite store under the project
    code, rec, err = loopkit('run', '--json', cwd=work, env=env)  # the default pipeline as `make demo` runs it
    assert code == 0, err[-4000:]
    return work, rec, env


def test_every_stage_runs_and_writes_its_declared_outputs(first_run):
    work, rec, _ = first_run
    assert [s['name'] for s in rec['stages']] == STAGES
    assert all(s['status'] == 'ran' for s in rec['stages'])
    for s in rec['stages']:
        assert s['outputs'] and all(Path(p).exists() for p in s['outputs'].values()), s
        assert (work/'runs/latest'/s['name']/f"{s['name']}.ipynb").exists(), "the executed notebook is kept with the run"
    metrics = json.loads(output(rec, 'evaluate', 'metrics').read_text())
    assert 0.5 < metrics['auc'] <= 1.0 and metrics['logloss'] > 0 and 'gauc' in metrics and 'ece' in metrics
    assert json.loads(output(rec, 'evaluate', 'champion_metrics').read_text()) == {}, "no champion yet"
    verdict = json.loads(output(rec, 'gate', 'verdict').read_text())
    assert verdict['verdict'] == 'blessed', verdict
    assert {c['status'] for c in verdict['checks'] if c.get('relative_to') == 'champion' or 'champion' in c['expected']} == {'skipped'}
    registered = json.loads(output(rec, 'register', 'registered').read_text())
    assert registered['version'] == 1 and registered['champion'] is True and registered['gate'] == 'blessed'
    student = json.loads((output(rec, 'distill', 'model')/'model.json').read_text())
    assert student['name'] == 'mlp', "the registered model is the distilled student"
    assert (work/'.loopkit/mlflow.db').exists()


def test_the_features_are_point_in_time_and_the_split_is_by_time(first_run):
    import pandas as pd
    work, rec, _ = first_run
    table = pd.read_parquet(rec['stages'][2]['outputs']['table'])
    spans = table.groupby('split')['ts'].agg(['min', 'max'])
    assert spans.loc['train', 'max'] <= spans.loc['valid', 'min'] and spans.loc['valid', 'max'] <= spans.loc['test', 'min']
    first = table.sort_values('ts').groupby('user_id').head(1)
    numeric = json.loads(Path(rec['stages'][2]['outputs']['spec']).read_text())['numeric']
    prior_counts = [c for c in numeric if 'user' in c and 'impression' in c]
    assert prior_counts and (first[prior_counts[0]] == 0).all(), "a user's first event has no history"


def test_second_run_is_cached_and_a_champion_is_registered(first_run):
    work, rec, env = first_run
    code, again, err = loopkit('run', '--json', cwd=work, env=env)
    assert code == 0, err
    # the champion moved from none to v1 since the first run: only the stages that compare against it run again
    registry_readers = {'evaluate', 'gate', 'register'}
    assert statuses(again) == {s: 'ran' if s in registry_readers else 'cached' for s in STAGES}
    assert json.loads(output(again, 'evaluate', 'champion_metrics').read_text())['source'] == 'champion v1 scored on this split'
    same = json.loads(output(again, 'register', 'registered').read_text())
    assert (same['version'], same['already_registered'], same['champion']) == (1, True, True), "a rerun registers no new version"
    code, cached, err = loopkit('run', '--json', cwd=work, env=env)
    assert code == 0, err
    assert statuses(cached) == {s: 'cached' for s in STAGES}, "nothing changed since the second run"
    from mlflow import MlflowClient
    client = MlflowClient(f"sqlite:///{work/'.loopkit/mlflow.db'}")
    assert str(client.get_model_version_by_alias('loopkit-ctr', 'champion').version) == '1'
    # a different model re-runs train and everything after it, never ingest..features
    code, third, err = loopkit('run', '-p', 'train.model=fm', '--json', cwd=work, env=env)
    assert code == 0, err
    assert statuses(third) == {'ingest': 'cached', 'validate': 'cached', 'features': 'cached', 'audit': 'cached', 'monitor': 'cached',
                               'train': 'ran', 'distill': 'ran', 'evaluate': 'ran', 'gate': 'ran', 'register': 'ran'}
    champion_metrics = json.loads(output(third, 'evaluate', 'champion_metrics').read_text())
    assert champion_metrics['source'] == 'champion v1 scored on this split' and 0.5 < champion_metrics['auc'] <= 1
    verdict = json.loads(output(third, 'gate', 'verdict').read_text())
    reg = json.loads(output(third, 'register', 'registered').read_text())
    assert reg['version'] == 2 and reg['alias'] == ('challenger' if verdict['verdict'] == 'blessed' else None)
    assert str(client.get_model_version_by_alias('loopkit-ctr', 'champion').version) == '1', "only promotion moves the champion"
    lineage = client.get_model_version('loopkit-ctr', '2').tags
    assert lineage['loopkit.gate'] == verdict['verdict'] and len(lineage['loopkit.data_fingerprint']) == 64 and lineage['loopkit.pipeline_run_id']
    assert lineage['loopkit.pressure'] == reg['pressure'] and lineage['loopkit.cost'].endswith(' USD')
    # what the version cost: the ledger of the stages that made it, from its lineage
    code, ledger, err = loopkit('cost', '--version', '2', '--json', cwd=work, env=env)
    assert code == 0, err
    stages = {r['stage']: r for r in ledger}
    assert {'ingest', 'features', 'train', 'distill', 'evaluate', 'gate'} <= set(stages) and stages['total']['money'] > 0
    assert stages['train']['cpu_s'] > 0.5 and stages['total']['cpu_s'] > stages['train']['cpu_s']


def test_bad_data_stops_the_pipeline_at_validate(tmp_path):
    code, rec, err = loopkit('run', '-p', 'ingest.n_events=2000', '-p', 'validate.min_rows=10000', '--json', cwd=tmp_path)
    assert code == 1
    assert statuses(rec) == {'ingest': 'ran', 'validate': 'failed', **{s: 'skipped' for s in STAGES[2:]}}
    assert "stage 'validate' failed" in err and 'GateFailed' in err and 'row_count' in err
    assert (tmp_path/'runs/latest/_failed/validate/report.json').exists(), "the gate's report is kept for a person to read"


def test_data_command_writes_events(tmp_path):
    code, _, err = loopkit('data', 'synth', '--rows', '5000', '--seed', '3', '--out', tmp_path/'ev.parquet')
    assert code == 0, err
    import pyarrow.parquet as pq
    assert pq.read_metadata(tmp_path/'ev.parquet').num_rows == 5000
    shared = ROOT.parent/'shared/data/ml-100k'
    if shared.exists():
        code, _, err = loopkit('data', 'movielens', '--dir', shared, '--out', tmp_path/'ml.parquet')
        assert code == 0, err
        assert pq.read_metadata(tmp_path/'ml.parquet').num_rows == 100_000
    code, _, err = loopkit('data', 'movielens', '--dir', tmp_path/'nowhere', '--out', tmp_path/'ml.parquet')
    assert code == 2 and 'loopkit data movielens --download' in err
