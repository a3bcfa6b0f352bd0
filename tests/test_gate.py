"Issue 5, promotion gate: boundaries table-driven, checks as the pipeline file declares them, and the gate template."
import json
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NAN = float('nan')

CASES = [  # id, check, candidate, champion (None = no champion), status
    ('min equal passes', {'metric': 'auc', 'min': 0.6}, {'auc': 0.6}, None, 'pass'),
    ('min below fails', {'metric': 'auc', 'min': 0.6}, {'auc': 0.59999}, None, 'fail'),
    ('max equal passes', {'metric': 'p99_ms', 'max': 10}, {'p99_ms': 10}, None, 'pass'),
    ('max above fails', {'metric': 'p99_ms', 'max': 10}, {'p99_ms': 10.001}, None, 'fail'),
    ('missing metric fails', {'metric': 'auc', 'min': 0.6}, {'logloss': 0.3}, None, 'fail'),
    ('NaN metric fails', {'metric': 'auc', 'min': 0.6}, {'auc': NAN}, None, 'fail'),
    ('missing metric fails even if relative', {'metric': 'auc', 'min_delta': 0}, {}, {'auc': 0.7}, 'fail'),
    ('relative without champion is skipped', {'metric': 'auc', 'min_delta': 0.0, 'relative_to': 'champion'}, {'auc': 0.9}, None, 'skipped'),
    ('champion lacking the metric is skipped', {'metric': 'auc', 'min_delta': 0.0}, {'auc': 0.9}, {'logloss': 0.3}, 'skipped'),
    ('delta equal passes', {'metric': 'auc', 'min_delta': 0.0}, {'auc': 0.7}, {'auc': 0.7}, 'pass'),
    ('delta equal after rounding passes', {'metric': 'auc', 'min_delta': 0.1}, {'auc': 0.3}, {'auc': 0.2}, 'pass'),
    ('delta below fails', {'metric': 'auc', 'min_delta': 0.0}, {'auc': 0.6999}, {'auc': 0.7}, 'fail'),
    ('max_delta equal passes', {'metric': 'logloss', 'max_delta': 0.0}, {'logloss': 0.3}, {'logloss': 0.3}, 'pass'),
    ('lower-is-better improvement exact passes', {'metric': 'logloss', 'better': 'lower', 'min_improvement': 0.01}, {'logloss': 0.29}, {'logloss': 0.3}, 'pass'),
    ('lower-is-better too little fails', {'metric': 'logloss', 'better': 'lower', 'min_improvement': 0.01}, {'logloss': 0.295}, {'logloss': 0.3}, 'fail'),
    ('higher-is-better improvement passes', {'metric': 'auc', 'better': 'higher', 'min_improvement': 0.01}, {'auc': 0.72}, {'auc': 0.71}, 'pass'),
    ('ratio equal passes', {'metric': 'size_mb', 'max_ratio': 1.2}, {'size_mb': 12}, {'size_mb': 10}, 'pass'),
    ('ratio above fails', {'metric': 'size_mb', 'max_ratio': 1.2}, {'size_mb': 12.1}, {'size_mb': 10}, 'fail'),
    ('ratio over a zero champion is skipped', {'metric': 'size_mb', 'max_ratio': 1.2}, {'size_mb': 1}, {'size_mb': 0}, 'skipped'),
]


@pytest.mark.parametrize('check,candidate,champion,status', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_boundaries(check, candidate, champion, status):
    from loopkit.evaluation.gate import Gate
    v = Gate([check]).run(candidate, champion)
    assert [r['status'] for r in v.checks] == [status]
    assert v.verdict == ('not_blessed' if status == 'fail' else 'blessed')


def test_checks_as_the_pipeline_file_declares_them_apply_to_every_slice():
    from loopkit.evaluation.gate import Gate
    checks = yaml.safe_load('''
- {metric: auc, min: 0.6}
- {metric: auc, min_delta: 0.0, relative_to: champion}
- {metric: "auc/*", min_delta: -0.01, relative_to: champion}
- {metric: p99_ms, max: 10}
''')
    cand = {'auc': 0.75, 'auc/new_users': 0.70, 'auc/cold_items': 0.60, 'p99_ms': 3.0}
    champ = {'auc': 0.74, 'auc/new_users': 0.69, 'auc/cold_items': 0.65}
    v = Gate(checks).run(cand, champ)
    assert v.verdict == 'not_blessed'
    assert [(r['metric'], r['status']) for r in v.checks if r['bound'] == 'min_delta' and '/' in r['metric']] == \
        [('auc/cold_items', 'fail'), ('auc/new_users', 'pass')]
    first = Gate(checks).run(cand)
    assert first.verdict == 'blessed' and first.counts() == {'pass': 2, 'fail': 0, 'skipped': 3}


def test_bad_checks_say_what_is_wrong():
    from loopkit.evaluation.gate import Gate, CheckError
    with pytest.raises(CheckError, match=r"unknown key\(s\) \['mni'\]"): Gate([{'metric': 'auc', 'mni': 0.6}]).run({'auc': 0.7})
    with pytest.raises(CheckError, match="relative_to can only be 'champion'"): Gate([{'metric': 'auc', 'min_delta': 0, 'relative_to': 'v3'}]).run({'auc': 0.7})


def _run_gate(tmp_path, **parameters):
    import papermill
    papermill.execute_notebook(str(ROOT/'templates'/'gate.ipynb'), str(tmp_path/'out.ipynb'), cwd=str(tmp_path), kernel_name='python3',
                               progress_bar=False, parameters=parameters)
    return json.loads((tmp_path/'gate.json').read_text())


def test_gate_template_with_a_champion_file_and_a_failing_check_still_succeeds(tmp_path):
    (tmp_path/'cand.json').write_text(json.dumps({'auc': 0.70, 'logloss': 0.25}))
    (tmp_path/'champ.json').write_text(json.dumps({'auc': 0.72, 'logloss': 0.26}))
    checks = [{'metric': 'auc', 'min': 0.6}, {'metric': 'auc', 'min_delta': 0.0, 'relative_to': 'champion'},
              {'metric': 'logloss', 'better': 'lower', 'min_improvement': 0.0}]
    g = _run_gate(tmp_path, metrics=str(tmp_path/'cand.json'), champion_metrics=str(tmp_path/'champ.json'), checks=checks)
    assert g['verdict'] == 'not_blessed' and (g['pass'], g['fail'], g['skipped']) == (2, 1, 0)
    failed = [c for c in g['checks'] if c['status'] == 'fail'][0]
    assert failed['metric'] == 'auc' and failed['observed'] == pytest.approx(-0.02) and failed['expected'] == 'candidate - champion >= 0'


def test_gate_template_without_a_registered_champion_skips_relative_checks(tmp_path, monkeypatch):
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f"sqlite:///{tmp_path/'mlflow.db'}")
    monkeypatch.delenv('LOOPKIT_MLFLOW_RUN_ID', raising=False)
    (tmp_path/'cand.json').write_text(json.dumps({'auc': 0.70}))
    g = _run_gate(tmp_path, metrics=str(tmp_path/'cand.json'), champion_metrics='')
    assert g['verdict'] == 'blessed' and g['champion'] is None
    assert [c['status'] for c in g['checks']] == ['pass', 'skipped']
