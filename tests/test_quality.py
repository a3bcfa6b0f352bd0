"The validate stage's three gates run by the CLI: a failing declared check blocks downstream, a warning does not."
import json
from pathlib import Path
import pyarrow.parquet as pq
import pytest
from conftest import loopkit, statuses, write_template, ROOT

TEMPLATES = ROOT/'templates'


@pytest.fixture
def small_pipeline(tmp_path):
    "ingest (real template, 3000 synthetic events) -> validate (real template) -> count (reads the clean events)."
    write_template(tmp_path/'count.ipynb', 'events = "events.parquet"  # the clean events',
                   'import pyarrow.parquet as pq\nopen("count.txt", "w").write(str(pq.read_metadata(events).num_rows))')
    (tmp_path/'pipeline.yaml').write_text(f'''
name: quality
stages:
  ingest:
    template: {TEMPLATES/'ingest.ipynb'}
    parameters: {{source: synth, n_events: 3000, seed: 1}}
    outputs: {{events: events.parquet}}
  validate:
    template: {TEMPLATES/'validate.ipynb'}
    parameters:
      events: ${{ingest.events}}
      checks:
        - {{check: size, min: 1000}}
        - {{check: completeness, column: user_id, min: 0.99}}
    outputs: {{events: events.parquet, quarantine: quarantine.parquet, repairs: repairs.json,
               report: report.json, report_html: report.html}}
  count:
    template: count.ipynb
    needs: [validate]
    parameters: {{events: "${{validate.events}}"}}
    outputs: {{count: count.txt}}
''')
    return tmp_path, {'MLFLOW_TRACKING_URI': f"sqlite:///{tmp_path/'mlflow.db'}"}


def artifacts(env, run_id):
    from mlflow import MlflowClient
    return {a.path for a in MlflowClient(env['MLFLOW_TRACKING_URI']).list_artifacts(run_id)}


def test_a_failing_declared_check_stops_the_pipeline_and_reports(small_pipeline):
    work, env = small_pipeline
    code, rec, err = loopkit('run', work/'pipeline.yaml', '--json', '-p',
                             'validate.checks=[{check: categories, column: device, values: [ios, web]}]', cwd=work, env=env)
    assert code == 1, err[-3000:]
    assert statuses(rec) == {'ingest': 'ran', 'validate': 'failed', 'count': 'skipped'}
    assert 'GateFailed' in err and 'categories_device' in err
    kept = work/'runs/latest/_failed/validate'
    report = json.loads((kept/'report.json').read_text())
    failed = [c for c in report['checks'] if not c['passed']]
    assert [(c['name'], c['severity']) for c in failed] == [('categories_device', 'error')]
    assert failed[0]['observed'] > 0 and failed[0]['expected'] == 'no violating rows' and failed[0]['details'] == ['android']
    assert report['passed'] is False and 'categories_device' in (kept/'report.html').read_text()
    validate_run = rec['stages'][1]['mlflow_run_id']
    assert {'report.json', 'report.html', 'repairs.json'} <= artifacts(env, validate_run)


def test_a_warning_lets_the_pipeline_continue_on_clean_events(small_pipeline):
    work, env = small_pipeline
    code, rec, err = loopkit('run', work/'pipeline.yaml', '--json', '-p',
                             'validate.checks=[{check: freshness, max_age_hours: 1, severity: warn}]', cwd=work, env=env)
    assert code == 0, err[-3000:]
    assert statuses(rec) == {'ingest': 'ran', 'validate': 'ran', 'count': 'ran'}
    out = rec['stages'][1]['outputs']
    report = json.loads(Path(out['report']).read_text())
    assert report['passed'] is True
    assert [(c['name'], c['severity']) for c in report['checks'] if not c['passed']] == [('freshness_ts', 'warn')]
    # gate 1: bots and mis-clicks are quarantined with a reason; the downstream stage reads only what was kept
    quarantine = pq.read_table(out['quarantine']).to_pandas()
    assert set(quarantine['reason']) == {'bot_event_rate', 'misclick'}
    assert quarantine.loc[quarantine.reason == 'bot_event_rate', 'is_bot'].all()
    assert report['quarantined']['bot_event_rate'] == (quarantine.reason == 'bot_event_rate').sum()
    kept = pq.read_metadata(out['events']).num_rows
    assert kept + len(quarantine) == 3000
    assert int(Path(rec['stages'][2]['outputs']['count']).read_text()) == kept
    # gate 2: every repair is logged with its count
    assert json.loads(Path(out['repairs']).read_text())['repairs'][0] == {
        'repair': 'drop_duplicates', 'column': 'event_id', 'rule': 'keep the first occurrence', 'value': None, 'rows': 0}
    assert {'report.json', 'report.html', 'repairs.json'} <= artifacts(env, rec['stages'][1]['mlflow_run_id'])
