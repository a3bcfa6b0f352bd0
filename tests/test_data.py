"loopkit.ingest: the MovieLens loader on the real files, and the generator's guarantees (determinism, drift knob)."
from pathlib import Path
import numpy as np
import pyarrow.compute as pc
import pytest
from loopkit.schema import EVENT_SCHEMA
from loopkit.ingest.synth import SYNTH_START, synth_events
from loopkit.ingest.movielens import DataNotFoundError, load_movielens
from loopkit.ingest.sources import read_events, write_events

ML_DIR = Path(__file__).resolve().parents[1].parent / 'shared/data/ml-100k'


@pytest.fixture(scope='module')
def movielens():
    if not (ML_DIR / 'u.data').exists(): pytest.skip(f'shared MovieLens copy not found at {ML_DIR}')
    return load_movielens(ML_DIR)


def test_movielens_counts(movielens):
    assert movielens.num_rows == 100_000
    assert pc.count_distinct(movielens['user_id']).as_py() == 943
    assert pc.count_distinct(movielens['item_id']).as_py() == 1682
    assert round(pc.mean(movielens['click']).as_py(), 3) == 0.554


def test_movielens_schema_and_columns(movielens):
    assert movielens.schema.names[:len(EVENT_SCHEMA)] == EVENT_SCHEMA.names
    for name in ('rating', 'age', 'gender', 'occupation', 'zip', 'release_year', 'genres', 'title'):
        assert name in movielens.schema.names
    assert (np.diff(movielens['ts'].to_numpy()) >= 0).all()
    assert movielens['click'].to_numpy().tolist() == (movielens['rating'].to_numpy() >= 4).astype(int).tolist()
    assert movielens['propensity'].null_count == 100_000
    assert set(pc.unique(movielens['device']).to_pylist()) == {'unknown'}
    assert movielens['publish_ts'].null_count > 0                      # one movie has no release date
    toy = movielens.filter(pc.equal(movielens['item_id'], 1)).slice(0, 1).to_pylist()[0]
    assert (toy['title'], toy['category'], toy['release_year']) == ('Toy Story (1995)', 'Animation', 1995)
    assert toy['genres'] == ["Animation", "Children's", 'Comedy']
    # session = one user's ratings on one UTC day
    s = movielens.group_by('session_id').aggregate([('user_id', 'count_distinct')])
    assert pc.max(s['user_id_count_distinct']).as_py() == 1


def test_movielens_bad_path_says_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError) as e: load_movielens(tmp_path / 'nowhere')
    msg = str(e.value)
    assert str(tmp_path / 'nowhere') in msg and 'u.data' in msg and 'loopkit data movielens --download' in msg


def test_synth_deterministic():
    a, b, c = synth_events(30_000, seed=3), synth_events(30_000, seed=3), synth_events(30_000, seed=4)
    assert a.equals(b)
    assert not a.equals(c)
    assert a.num_rows == 30_000 and a.schema.names[:len(EVENT_SCHEMA)] == EVENT_SCHEMA.names


def _gaming_ctr(t, young, after, at):
    m = pc.and_(pc.equal(t['category'], 'gaming'), pc.equal(pc.equal(t['age_band'], '18-24'), young))
    m = pc.and_(m, pc.greater_equal(t['ts'], at) if after else pc.less(t['ts'], at))
    return pc.mean(t.filter(pc.and_(m, pc.invert(t['is_bot'])))['click']).as_py()


def test_synth_drift_moves_only_the_shifted_segment():
    at = SYNTH_START + 7 * 86400
    t = synth_events(100_000, seed=1, shift_at=at, shift_segment='18-24', shift_to='gaming')
    assert _gaming_ctr(t, True, True, at) > 1.8 * _gaming_ctr(t, True, False, at)
    assert abs(_gaming_ctr(t, False, True, at) - _gaming_ctr(t, False, False, at)) < 0.02
    base = synth_events(100_000, seed=1)
    assert abs(_gaming_ctr(base, True, True, at) - _gaming_ctr(base, True, False, at)) < 0.03


def test_synth_bad_knobs_are_named():
    with pytest.raises(ValueError, match="shift_segment 'teens'"): synth_events(1000, shift_at=SYNTH_START, shift_segment='teens')
    with pytest.raises(ValueError, match="shift_to 'cats'"): synth_events(1000, shift_to='cats')


def test_write_read_roundtrip_sorted(tmp_path):
    t = synth_events(5000, seed=0)
    p = write_events(t.sort_by('user_id'), tmp_path / 'events.parquet')
    assert read_events(p).equals(t)
