"Issue 5, evaluation: offline metrics against scikit-learn, the off-policy estimate against the generator's truth, and the evaluate template."
import json
from pathlib import Path
import numpy as np, pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, log_loss, ndcg_score

ROOT = Path(__file__).resolve().parents[1]


def test_auc_and_logloss_equal_sklearn_with_heavy_ties():
    from loopkit.evaluation.metrics import auc, logloss
    rng = np.random.default_rng(5)
    y = (rng.random(200_000) < 0.07).astype(int)
    p = np.clip(np.round(0.07 + 0.05 * y + rng.normal(0, 0.05, len(y)), 2), 0.005, 0.995)   # ~100 distinct scores
    assert auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert logloss(y, p) == pytest.approx(log_loss(y, p), abs=1e-9)


def test_gauc_skips_one_class_users_and_equals_a_loop():
    from loopkit.evaluation.metrics import gauc
    rng = np.random.default_rng(6)
    user = rng.integers(0, 1000, 10_000); y = (rng.random(10_000) < 0.1).astype(int)
    p = np.round(rng.random(10_000) * 0.5 + 0.2 * y, 2)
    used = [u for u in np.unique(user) if 0 < y[user == u].sum() < (user == u).sum()]
    assert len(used) < len(np.unique(user))                                   # some users are one class
    expect = sum((user == u).sum() * roc_auc_score(y[user == u], p[user == u]) for u in used) / sum((user == u).sum() for u in used)
    assert gauc(y, p, user) == pytest.approx(expect, abs=1e-12)
    assert gauc(y, p, user.astype(str)) == pytest.approx(expect, abs=1e-12)   # any id type


def test_ndcg_equals_sklearn_on_lists_with_a_click():
    from loopkit.evaluation.metrics import ndcg_at_k
    rng = np.random.default_rng(7)
    gains = (rng.random((200, 15)) < 0.15).astype(float); scores = np.round(rng.random((200, 15)), 1)
    has = gains.sum(1) > 0
    assert ndcg_at_k(gains.ravel(), scores.ravel(), np.repeat(np.arange(200), 15), k=10) == pytest.approx(ndcg_score(gains[has], scores[has], k=10), abs=1e-12)


def test_slices_are_defined_against_the_training_split(tmp_path):
    from loopkit.ingest.synth import synth_events
    from loopkit.features.batch import build_table
    from loopkit.evaluation.metrics import slice_masks
    build_table(synth_events(6000, seed=2, cold_share=0.3), tmp_path)
    table = pd.read_parquet(tmp_path/'table.parquet')
    masks = slice_masks(table, by=['device'])
    test = table[table.split == 'test']; train = table[table.split == 'train']
    assert (masks['new_users'] == ~test.user_id.isin(train.user_id).to_numpy()).all()
    assert (masks['cold_items'] == ~test.item_id.isin(train.item_id).to_numpy()).all()
    assert masks['new_users'].any() and masks['cold_items'].any()
    assert sum(masks[f'device.{d}'].sum() for d in ('android', 'ios', 'web')) == len(test)


@pytest.mark.parametrize('seed', [0, 1])
def test_ips_and_snips_intervals_hold_the_true_value_of_a_new_policy(seed):
    from loopkit.ingest.synth import synth_world
    from loopkit.evaluation.offpolicy import ips, snips, softmax_policy, logged_action_probability
    world = synth_world(n_events=20_000, seed=seed)
    ev = world.events
    u = ev['user_id'].to_numpy()[:, None]
    taste = 2.5 * (world.user_vec[u] * world.item_vec[world.candidates]).sum(-1) + world.item_bias[world.candidates]
    probs = softmax_policy(taste, world.available(), temperature=3.0)
    truth = world.policy_value(probs)
    clicks, logged = ev['click'].to_numpy(), ev['propensity'].to_numpy()
    target = logged_action_probability(probs, world.candidates, ev['item_id'].to_numpy())
    for est in (ips(clicks, logged, target), snips(clicks, logged, target), snips(clicks, logged, target, ci='bootstrap', n_boot=200)):
        assert est.covers(truth), (est, truth)
    assert not ips(clicks, logged, logged).covers(truth)          # the logged click-rate is not the new policy's


def test_click_rate_by_arm_reads_a_serving_log(tmp_path):
    from loopkit.evaluation.offpolicy import click_rate_by_arm
    log = pd.DataFrame({'ts': np.arange(6), 'arm': ['a', 'a', 'a', 'b', 'b', 'b'], 'model_version': ['1'] * 3 + ['2'] * 3,
                        'clicked': [1, 0, 0, 1, 1, 0]})
    log.to_parquet(tmp_path/'served.parquet')
    out = click_rate_by_arm(tmp_path/'served.parquet', click='clicked', control='a').set_index('arm')
    assert out.loc['a', 'ctr'] == pytest.approx(1 / 3) and out.loc['b', 'ctr'] == pytest.approx(2 / 3)
    assert out.loc['b', 'lift'] == pytest.approx(1.0) and out.loc['b', 'model_version'] == '2'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    from loopkit.ingest.synth import synth_events
    from loopkit.features.batch import build_table
    from loopkit.training.fit import fit
    d = tmp_path_factory.mktemp('evaluate')
    build_table(synth_events(8000, seed=0, cold_share=0.2), d/'features')
    fit(d/'features'/'table.parquet', d/'features'/'spec.json', model='fm', max_epochs=1).save(d/'model')
    return d


def test_evaluate_template_writes_the_full_metrics(trained, tmp_path):
    import papermill
    from loopkit.evaluation.metrics import evaluate
    papermill.execute_notebook(str(ROOT/'templates'/'evaluate.ipynb'), str(tmp_path/'out.ipynb'), cwd=str(tmp_path), kernel_name='python3',
                               progress_bar=False, parameters=dict(table=str(trained/'features'/'table.parquet'),
                               spec=str(trained/'features'/'spec.json'), model=str(trained/'model'), by=['device'], k=5, shap_rows=50))
    m = json.loads((tmp_path/'metrics.json').read_text())
    assert {'auc', 'logloss', 'rows', 'ctr', 'mean_score', 'gauc', 'gauc_users', 'ece', 'calibration_ratio',
            'ndcg_at_5', 'coverage_at_5', 'diversity_at_5', 'auc/new_users', 'auc/returning_users', 'auc/warm_items',
            'gauc/device.ios'} <= set(m)
    assert all(isinstance(v, float) for v in m.values())
    plain = evaluate(trained/'model', trained/'features'/'table.parquet', trained/'features'/'spec.json')
    assert m['auc'] == pytest.approx(plain['auc'], abs=1e-12) and m['rows'] == plain['rows']
    spec = json.loads((trained/'features'/'spec.json').read_text())
    assert {k for k in m if k.startswith('shap/')} == {f'shap/{f}' for f in spec['categorical'] + spec['numeric']}
    assert m['rows/new_users'] + m['rows/returning_users'] == m['rows']
