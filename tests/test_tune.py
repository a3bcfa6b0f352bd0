"Hyper-parameter search as an option of the train stage: `loopkit run -p train.search=...` on the default pipeline."
import csv, json
from pathlib import Path
import pytest
from conftest import loopkit, statuses

SPACE = ('{model: {type: categorical, choices: [lr, fm]}, lr: {type: float, low: 0.001, high: 0.3, log: true}, '
         'embed_dim: {type: int, low: 2, high: 8}}')
ENV = {'MLFLOW_TRACKING_URI': ''}   # the default: a SQLite store under the project


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
    work = tmp_path_factory.mktemp('tune')
    code, rec, err = loopkit('run', '-p', 'ingest.n_events=3000', '-p', f'train.search={SPACE}', '-p', 'train.n_trials=3',
                             '-p', 'train.max_epochs=2', '--json', cwd=work, env=ENV)
    assert code == 0, err[-4000:]
    return work, rec


def test_train_stage_searches_and_writes_the_best_trials_model(searched):
    work, rec = searched
    assert statuses(rec)['train'] == 'ran'
    train = next(s for s in rec['stages'] if s['name'] == 'train')
    model = Path(train['outputs']['model'])
    assert {'model.json', 'encoder.json', 'weights.pt', 'history.csv'} <= {p.name for p in model.iterdir()}
    trials = list(csv.DictReader(open(model.parent/'trials.csv')))
    assert len(trials) == 3 and {t['state'] for t in trials} <= {'complete', 'pruned'}
    best = max((t for t in trials if t['state'] == 'complete'), key=lambda t: float(t['valid_auc']))
    assert json.loads((model/'model.json').read_text())['name'] == best['model'], "the best trial's model is the output"
    metrics = json.loads((model.parent/'metrics.json').read_text())
    assert metrics['n_trials'] == 3 and abs(metrics['valid_auc'] - float(best['valid_auc'])) < 1e-9

    from mlflow import MlflowClient   # every trial is an MLflow child run of the train stage's run
    client = MlflowClient(f"sqlite:///{work/'.loopkit/mlflow.db'}")
    parent = client.get_run(train['mlflow_run_id'])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags['optuna.trial_state'].lower() for r in children) == sorted(t['state'] for t in trials)


def test_a_bad_search_space_fails_the_train_stage_with_the_reason(searched):
    work, _ = searched
    bad = '{lr: {type: float, low: 0, high: 0.1, log: true}}'
    code, rec, err = loopkit('run', '-p', 'ingest.n_events=3000', '-p', f'train.search={bad}', '-p', 'train.n_trials=3',
                             '-p', 'train.max_epochs=2', '--json', cwd=work, env=ENV)
    assert code == 1 and statuses(rec)['train'] == 'failed' and statuses(rec)['features'] == 'cached'
    assert "SearchSpaceError" in err and "log=true needs low > 0" in err


WORKER = '''
import sys, optuna
from loopkit.training.search import tune
r = tune(sys.argv[1], sys.argv[2], {"lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True}}, n_trials=4, max_epochs=2,
         storage=sys.argv[3], study_name="shared", progress=False)
print(r.study.best_trial.number)
'''


def test_two_workers_share_one_study_through_its_storage(searched, tmp_path):
    import subprocess, sys, optuna
    _, rec = searched
    features = next(s for s in rec['stages'] if s['name'] == 'features')['outputs']
    storage = f"sqlite:///{tmp_path/'shared.db'}"
    args = [sys.executable, '-c', WORKER, features['table'], features['spec'], storage]
    workers = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err[-2000:] for _, err in results]
    study = optuna.load_study(study_name='shared', storage=storage)
    assert 4 <= len(study.trials) <= 5, "each worker stops when the study is full (one may finish the trial it started)"
    returned = {int(out.split()[-1]) for out, _ in results}
    complete = {t.number for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert returned <= complete, "each worker returns a finished trial"
    # a worker returns the best trial of the study as it stands when it finishes; the last one to finish sees them all
    assert study.best_trial.number in returned
