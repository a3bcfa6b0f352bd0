"The stage runner through its command line: caching, parameter refusal, failure and resume, MLflow records."
import json, shutil
from pathlib import Path
from conftest import loopkit, executed, statuses


def test_second_run_is_all_cached_and_starts_no_kernel(project):
    code, rec, err = loopkit('run', 'pipeline.yaml', '--json')
    assert code == 0, err
    assert statuses(rec) == {'make': 'ran', 'double': 'ran', 'side': 'ran'}
    assert sorted(executed(project)) == ['double', 'make', 'side']
    assert Path(rec['stages'][1]['outputs']['number']).read_text() == '6'
    code, rec, err = loopkit('run', 'pipeline.yaml', '--json')
    assert code == 0, err
    assert statuses(rec) == {'make': 'cached', 'double': 'cached', 'side': 'cached'}
    assert len(executed(project)) == 3, "a cached run must not start a kernel"
    assert all(s['mlflow_run_id'] for s in rec['stages'])


def test_a_parameter_change_reruns_that_stage_and_its_downstream_only(project):
    loopkit('run', 'pipeline.yaml')
    code, rec, err = loopkit('run', 'pipeline.yaml', '-p', 'make.value=5', '--json')
    assert code == 0, err
    assert statuses(rec) == {'make': 'ran', 'double': 'ran', 'side': 'cached'}
    assert Path(rec['stages'][1]['outputs']['number']).read_text() == '10'
    assert executed(project)[3:] == ['make', 'double']
    code, rec, _ = loopkit('run', 'pipeline.yaml', '-p', 'side.name=other', '--json')
    assert statuses(rec) == {'make': 'ran', 'double': 'ran', 'side': 'ran'}, "back to value 3 re-runs make; side changed"


def test_a_deleted_output_runs_its_stage_again(project):
    loopkit('run', 'pipeline.yaml')
    (project/'runs/latest/side/side.txt').unlink()
    code, rec, _ = loopkit('run', 'pipeline.yaml', '--json')
    assert statuses(rec) == {'make': 'cached', 'double': 'cached', 'side': 'ran'}
    shutil.rmtree(project/'runs/latest/make')
    code, rec, _ = loopkit('run', 'pipeline.yaml', '--json')
    assert statuses(rec)['make'] == 'ran'
    # make wrote the same bytes again, so double's input fingerprint is unchanged: double stays cached
    assert statuses(rec)['double'] == 'cached'


def test_force_and_from(project):
    loopkit('run', 'pipeline.yaml')
    _, rec, _ = loopkit('run', 'pipeline.yaml', '--force', 'side', '--json')
    assert statuses(rec) == {'make': 'cached', 'double': 'cached', 'side': 'ran'}
    _, rec, _ = loopkit('run', 'pipeline.yaml', '--from', 'make', '--json')
    assert statuses(rec) == {'make': 'ran', 'double': 'ran', 'side': 'cached'}


def test_unknown_or_ill_typed_parameters_are_refused_before_any_kernel(project):
    code, rec, err = loopkit('run', 'pipeline.yaml', '-p', 'make.valu=1')
    assert code == 2 and rec is None
    assert "stage 'make' has no parameter 'valu'; known: value" in err
    code, _, err = loopkit('run', 'pipeline.yaml', '-p', 'make.value=three')
    assert code == 2 and "stage 'make' parameter 'value' expects int" in err and "got str 'three'" in err
    code, _, err = loopkit('run', 'pipeline.yaml', '-p', 'nostage.value=1')
    assert code == 2 and "no stage 'nostage'" in err and 'make, double, side' in err
    code, _, err = loopkit('run', 'pipeline.yaml', '-p', 'oops')
    assert code == 2 and 'STAGE.NAME=VALUE' in err
    assert executed(project) == [], "no kernel may start for a refused pipeline"
    assert not (project/'runs/latest/make').exists()


def test_a_failing_stage_reports_where_keeps_earlier_outputs_and_the_rerun_resumes(project):
    flag = project/'fail.flag'; flag.write_text('x')
    pipeline = (project/'pipeline.yaml').read_text().replace(
        'parameters: {source: "${make.number}"}', f'parameters: {{source: "${{make.number}}", fail_if: "{flag}"}}')
    (project/'pipeline.yaml').write_text(pipeline)
    code, rec, err = loopkit('run', 'pipeline.yaml', '--json')
    assert code == 1
    assert statuses(rec) == {'make': 'ran', 'double': 'failed', 'side': 'ran'}
    failed_nb = project/'runs/latest/_failed/double/double.ipynb'
    assert "stage 'double' failed in cell 3: ValueError: planted failure" in err, err
    assert str(failed_nb) in err and failed_nb.exists()
    assert (project/'runs/latest/make/value.txt').read_text() == '3', "earlier outputs stay"
    assert not (project/'runs/latest/double').exists()
    flag.unlink()
    code, rec, err = loopkit('run', 'pipeline.yaml', '--json')
    assert code == 0, err
    assert statuses(rec) == {'make': 'cached', 'double': 'ran', 'side': 'cached'}
    assert executed(project)[-1] == 'double'


def test_downstream_of_a_failure_is_skipped(project):
    (project/'pipeline.yaml').write_text((project/'pipeline.yaml').read_text() + '''  triple:
    template: double.ipynb
    parameters: {source: "${double.number}"}
    outputs: {number: double.txt}
''')
    nb = json.loads((project/'make.ipynb').read_text())
    nb['cells'][-1]['source'] = 'raise RuntimeError("disk full")'
    (project/'make.ipynb').write_text(json.dumps(nb))
    code, rec, err = loopkit('run', 'pipeline.yaml', '--json')
    assert code == 1
    assert statuses(rec) == {'make': 'failed', 'double': 'skipped', 'triple': 'skipped', 'side': 'ran'}
    assert "stage 'make' failed in cell 3: RuntimeError: disk full" in err


def test_status_command(project):
    loopkit('run', 'pipeline.yaml')
    code, rec, _ = loopkit('status', '--json')
    assert code == 0 and statuses(rec) == {'make': 'ran', 'double': 'ran', 'side': 'ran'}  # what the last run did
    assert all(st['seconds'] > 0 for st in rec['stages'])  # and how long each stage took
    loopkit('run', 'pipeline.yaml')
    code, rec, _ = loopkit('status', '--json')
    assert code == 0 and statuses(rec) == {'make': 'cached', 'double': 'cached', 'side': 'cached'}
    code, _, err = loopkit('status', '--run-dir', 'nowhere')
    assert code == 2 and 'holds no loopkit run' in err


def test_each_stage_is_an_mlflow_run_nested_under_the_pipeline_run(project):
    code, rec, err = loopkit('run', 'pipeline.yaml', '--json')
    assert code == 0, err
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{project/'mlflow.db'}")
    runs = {s['name']: client.get_run(s['mlflow_run_id']) for s in rec['stages']}
    parents = {r.data.tags['mlflow.parentRunId'] for r in runs.values()}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.info.status == 'FINISHED'
    double = runs['double']
    assert double.info.status == 'FINISHED'
    assert double.data.metrics['doubled'] == 6.0
    assert double.data.params['source'].endswith('runs/latest/make/value.txt')
    assert len(double.data.tags['loopkit.cache_key']) == 32
    assert [a.path for a in client.list_artifacts(double.info.run_id)] == ['double.ipynb']


def test_a_declared_environment_variable_is_part_of_the_cache_key(project):
    text = (project/'pipeline.yaml').read_text().replace('    template: side.ipynb\n', '    template: side.ipynb\n    env: [SIDE_SECRET]\n')
    (project/'pipeline.yaml').write_text(text)
    loopkit('run', 'pipeline.yaml', env={'SIDE_SECRET': 'one'})
    _, rec, _ = loopkit('run', 'pipeline.yaml', '--json', env={'SIDE_SECRET': 'one'})
    assert statuses(rec)['side'] == 'cached'
    _, rec, _ = loopkit('run', 'pipeline.yaml', '--json', env={'SIDE_SECRET': 'two'})
    assert statuses(rec) == {'make': 'cached', 'double': 'cached', 'side': 'ran'}
    assert 'two' not in (project/'runs/latest/.loopkit-state.json').read_text()
