"The event lake end to end: a version re-created by `loopkit reproduce`, lake sources pinned in the cache key and the lineage, the audit's time travel, the serving log landing, deletion and retention."
import json, os, subprocess, time
from pathlib import Path
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import loopkit

SMALL = ['-p', 'ingest.n_events=3000', '-p', 'train.max_epochs=1', '-p', 'distill.max_epochs=1', '-p', 'register.pressure_seconds=0.2']


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    "A project under git whose default pipeline registered v1, its events landed in the lake."
    work = tmp_path_factory.mktemp("lake")
    code, _, err = loopkit('init', 'proj', cwd=work)
    assert code == 0, err
    proj = work / 'proj'
    (proj / '.gitignore').write_text(".loopkit/\nruns/\nreproduce/\n")
    git(proj, 'init', '-q'); git(proj, 'add', '-A'); git(proj, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'project')
    env = {'LOOPKIT_HMAC_KEY': 'lake-test-key-0123456789', 'MLFLOW_TRACKING_URI': ''}
    code, rec, err = loopkit('run', *SMALL, '--json', cwd=proj, env=env)
    assert code == 0, err[-3000:]
    return proj, env


def test_reproduce_recreates_the_version_bit_for_bit(registered):
    proj, env = registered
    code, report, err = loopkit('reproduce', '1', '--json', '-q', cwd=proj, env=env)
    assert code == 0, err[-3000:]
    assert report['verdict'] == 'reproduced', report
    assert report['weights_differ'] == [] and report['metrics_differ'] == {} and report['metrics_compared'] > 10
    rows = {(r['stage'], r['output']): r['match'] for r in report['outputs']}
    for out in [('ingest', 'events'), ('validate', 'events'), ('features', 'table'), ('train', 'model')]:
        assert rows[out] == 'identical', (out, rows[out])
    assert list(report['lake']) == ['events']  # the snapshot the events landed at is in the lineage
    folder = Path(report['folder'])
    assert folder.is_relative_to(proj / 'reproduce') and (folder / 'report.json').exists() and (folder / 'mlflow.db').exists()
    code, _, err = loopkit('versions', '--json', cwd=proj, env=env)
    assert code == 0
    # the team's registry got no new version from the reproduction
    from mlflow import MlflowClient
    assert len(MlflowClient(f"sqlite:///{proj / '.loopkit' / 'mlflow.db'}").search_model_versions("name='loopkit-ctr'")) == 1


def test_reproduce_refuses_other_code_unless_allowed(registered):
    proj, env = registered
    tpl = proj / 'pipeline.yaml'
    before = tpl.read_text()
    tpl.write_text(before + "\n# a local edit\n")
    try:
        code, _, err = loopkit('reproduce', '1', '-q', cwd=proj, env=env)
        assert code == 2 and 'uncommitted changes' in err and '--allow-dirty' in err, err
        code, _, err = loopkit('reproduce', '1', '--out', proj / 'reproduce' / 'x', '-q', cwd=proj, env=env)
        assert code == 2 and 'uncommitted changes' in err
        assert not (proj / 'reproduce' / 'x').exists()  # refused before anything was written
    finally: tpl.write_text(before)
    code, _, err = loopkit('reproduce', '7', '-q', cwd=proj, env=env)
    assert code == 2 and "no version or alias '7'" in err


def test_lineage_and_mlflow_carry_the_snapshots(registered):
    proj, env = registered
    from loopkit.registry import lineage
    uri = f"sqlite:///{proj / '.loopkit' / 'mlflow.db'}"
    found = lineage('loopkit-ctr', 1, uri)
    snap = found['lineage']['lake']['events']
    assert found['tags']['loopkit.lake'] == f"events@{snap}"
    assert found['lineage']['stages']['audit']['pinned'] == {'today': f"lake://events@{snap}"}
    from mlflow import MlflowClient
    run = MlflowClient(uri).get_run(found['lineage']['stages']['audit']['mlflow_run_id'])
    assert run.data.tags['loopkit.lake.events'] == str(snap) and run.data.params['today'] == f"lake://events@{snap}"


def test_a_correction_reruns_the_audit_which_reports_the_time_travel(registered, tmp_path):
    proj, env = registered
    events = pq.read_table(proj / 'runs' / 'latest' / 'ingest' / 'events.parquet')
    click = events.column_names.index('click')
    fixed = events.slice(100, 2).set_column(click, 'click', pc.subtract(pa.scalar(1, pa.int8()), events['click'].slice(100, 2)))
    late = events.slice(200, 1).set_column(0, 'event_id', pa.array([10_000_000], pa.int64()))
    pq.write_table(pa.concat_tables([fixed, late]).replace_schema_metadata(events.schema.metadata), tmp_path / 'fix.parquet')
    code, _, err = loopkit('lake', 'append', 'events', tmp_path / 'fix.parquet', '--on', 'event_id', cwd=proj, env=env)
    assert code == 0, err
    code, rec, err = loopkit('run', *SMALL, '--json', cwd=proj, env=env)
    assert code == 0, err[-3000:]
    status = {s['name']: s['status'] for s in rec['stages']}
    assert status['ingest'] == 'cached' and status['audit'] == 'ran' and status['train'] == 'cached'
    travel = json.loads((proj / 'runs' / 'latest' / 'audit' / 'time_travel.json').read_text())
    assert (travel['late'], travel['corrected']) == (1, 2), travel
    assert any('a rebuild from today' in w for w in rec['warnings']['audit'])


def test_the_serving_log_lands_in_the_lake_within_seconds(tmp_path):
    from loopkit.ingest.lake import Lake, LogShipper
    from loopkit.serving.log import ServeLog
    log = ServeLog(tmp_path / 'log', flush_interval=0.2, key_fingerprint='kf')
    lake_uri = f"sqlite:///{tmp_path / 'lake' / 'catalog.db'}"
    shipper = LogShipper(tmp_path / 'log', lake_uri, interval=0.5).start()
    lake, waits = Lake(lake_uri), []
    try:
        for i in range(3):
            t0 = time.time()
            log.append([{"ts": int(t0), "event": "impression", "request_id": f"q{i}", "user_id": "tok", "item_id": 1, "position": 0}])
            while time.time() - t0 < 30:
                if 'serving_log' in lake.tables() and f"q{i}" in lake.read('serving_log', columns=['request_id'])['request_id'].to_pylist(): break
                time.sleep(0.1)
            waits.append(time.time() - t0)
    finally:
        log.close(); shipper.stop()
    assert max(waits) < 30, waits
    assert shipper.health()['error'] is None and lake.read('serving_log').num_rows == 3  # each row once
    (tmp_path / 'log' / '_lake_shipped.txt').unlink()  # a crash after the commit, before its note: nothing is shipped twice
    LogShipper(tmp_path / 'log', lake_uri).ship()
    assert lake.read('serving_log').num_rows == 3


def test_forgetting_a_user_removes_their_rows_from_every_snapshot_and_names_the_broken_version(registered):
    proj, env = registered
    from loopkit.ingest.lake import Lake
    lake = Lake(project_dir=proj)
    token = lake.read('events', columns=['user_id'])['user_id'][0].as_py()
    before = [s for s in lake.history('events').snapshot_id]
    code, out, err = loopkit('lake', 'forget', '--token', token, '--dry-run', '--json', cwd=proj, env=env)
    assert code == 0 and out[0]['rows_deleted'] > 0 and 'loopkit-ctr v1' in out[0]['breaks'] and out[0]['snapshots_expired'] == len(before)
    assert list(lake.history('events').snapshot_id) == before  # a dry run changes nothing
    code, out, err = loopkit('lake', 'forget', '--token', token, '--json', cwd=proj, env=env)
    assert code == 0 and 'no longer reproducible' in err and 'loopkit-ctr v1' in err
    lake = Lake(project_dir=proj)
    for s in lake.history('events').snapshot_id:
        assert lake.read('events', snapshot=s).filter(pc.field('user_id') == token).num_rows == 0
    for f in (proj / '.loopkit' / 'lake' / 'warehouse').rglob('*.parquet'):
        assert pq.read_table(f, columns=['user_id']).filter(pc.field('user_id') == token).num_rows == 0
    code, _, err = loopkit('reproduce', '1', '-q', cwd=proj, env=env)
    assert code != 0  # its snapshot is gone: the version cannot be re-created, as forget said


def test_expiry_keeps_the_snapshots_a_version_needs(tmp_path):
    from loopkit.ingest.lake import Lake, expire_snapshots
    from loopkit.ingest.privacy import pseudonymize_events
    from loopkit.ingest.synth import synth_events
    lake = Lake(project_dir=tmp_path)
    ev = pseudonymize_events(synth_events(500, seed=0), b"k" * 32)
    a = lake.write('events', ev.slice(0, 200)); b = lake.write('events', ev.slice(200, 200)); c = lake.write('events', ev.slice(400, 100))
    report = expire_snapshots(lake, time.time() + 60, pins={('events', a): ['m v1']})
    assert dict(zip(report.snapshot_id, report.action)) == {a: 'kept (pinned)', b: 'expired'}
    assert lake.read('events', snapshot=a).num_rows == 200 and lake.read('events').num_rows == 500
    report = expire_snapshots(lake, time.time() + 60, pins={('events', a): ['m v1']}, keep_pinned=False)
    assert report.breaks.tolist() == ['m v1'] and list(lake.history('events').snapshot_id) == [c]
