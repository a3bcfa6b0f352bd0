"Model soups as an option of the train stage: `loopkit run -p train.soup=greedy` on the default pipeline."
import json
from pathlib import Path
from conftest import loopkit, statuses

ENV = {'MLFLOW_TRACKING_URI': ''}


def test_the_train_stage_keeps_the_soup_only_when_it_beats_the_best_single_model(tmp_path):
    from loopkit.evaluation.metrics import auc, predict_split
    code, rec, err = loopkit('run', '-p', 'ingest.n_events=3000', '-p', 'train.soup=greedy', '-p', 'train.max_epochs=2', '--json', cwd=tmp_path, env=ENV)
    assert code == 0, err[-4000:]
    assert statuses(rec)['train'] == 'ran'
    train = next(s for s in rec['stages'] if s['name'] == 'train')
    model = Path(train['outputs']['model'])
    metrics = json.loads((model.parent / 'metrics.json').read_text())
    assert metrics['soup_kept'] == int(metrics['soup_valid_auc'] > metrics['best_single_valid_auc'])
    assert 1 <= metrics['soup_ingredients'] <= 6
    feats = tmp_path / 'runs' / 'latest' / 'features'
    scored = predict_split(model, feats / 'table.parquet', feats / 'spec.json', 'valid')
    kept_auc = metrics['soup_valid_auc'] if metrics['soup_kept'] else metrics['best_single_valid_auc']
    assert abs(auc(scored.label, scored.score) - kept_auc) < 1e-6   # the saved model is the one the stage chose
