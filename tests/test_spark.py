"The features stage on Apache Spark (local mode): the same table as DuckDB's from the same events, through the pipeline."
import pandas as pd
import pyarrow.parquet as pq
import yaml
from conftest import loopkit
from loopkit.pipeline import templates_dir


def test_the_features_stage_on_spark_writes_the_table_duckdb_writes(tmp_path):
    default = yaml.safe_load((templates_dir() / 'pipeline.yaml').read_text())
    stages = {k: {**v, 'template': str(templates_dir() / v['template'])} for k, v in default['stages'].items() if k in ('ingest', 'validate', 'features')}
    (tmp_path / 'pipeline.yaml').write_text(yaml.safe_dump({'name': 'features-on-spark', 'stages': stages}))
    env = {'MLFLOW_TRACKING_URI': '', 'LOOPKIT_HMAC_KEY': 'test-only-key-spark', 'LOOPKIT_SPARK_MASTER': 'local[2]'}
    code, duck, err = loopkit('run', '-p', 'ingest.n_events=6000', '--json', '--run-dir', 'runs/duckdb', cwd=tmp_path, env=env)
    assert code == 0, err[-3000:]
    code, spark, err = loopkit('run', '-p', 'ingest.n_events=6000', '-p', 'features.engine=spark', '--json', '--run-dir', 'runs/spark', cwd=tmp_path, env=env)
    assert code == 0, err[-3000:]
    tables = [next(s for s in r['stages'] if s['name'] == 'features')['outputs']['table'] for r in (duck, spark)]
    a, b = (pd.read_parquet(t) for t in tables)
    assert len(a) > 5000 and list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(b, a, check_exact=False, rtol=1e-12, atol=0)
    meta = [pq.read_metadata(t).metadata for t in tables]
    assert meta[0][b'loopkit.feature_set_version'] == meta[1][b'loopkit.feature_set_version']
    executed = (tmp_path / 'runs/spark/features/features.ipynb').read_text()
    assert 'online replay equals the table' in executed   # the parity check ran on the Spark table too
