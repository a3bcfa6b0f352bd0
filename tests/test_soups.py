"Model soups as an option of the train stage: the train template run by papermill with `soup`."
import json
from pathlib import Path
from loopkit.evaluation.metrics import auc, predict_split
from loopkit.features.batch import build_table
from loopkit.ingest.privacy import pseudonymize_events
from loopkit.ingest.synth import synth_events

TEMPLATE = Path(__file__).parents[1] / "templates" / "train.ipynb"


def test_the_train_stage_keeps_the_soup_only_when_it_beats_the_best_single_model(tmp_path):
    import papermill as pm
    build_table(pseudonymize_events(synth_events(4000, seed=5, days=3), b"soup-test-key-0123456789"), tmp_path / "features")
    stage = tmp_path / "train"; stage.mkdir()
    pm.execute_notebook(str(TEMPLATE), str(stage / "train.ipynb"), cwd=str(stage), progress_bar=False, kernel_name="python3",
                        parameters={"table": "../features/table.parquet", "spec": "../features/spec.json", "model": "fm", "max_epochs": 2, "soup": "greedy"})
    metrics = json.loads((stage / "metrics.json").read_text())
    assert metrics["soup_kept"] == int(metrics["soup_valid_auc"] > metrics["best_single_valid_auc"])
    assert 1 <= metrics["soup_ingredients"] <= 6
    scored = predict_split(stage / "model", tmp_path / "features" / "table.parquet", tmp_path / "features" / "spec.json", "valid")
    kept_auc = metrics["soup_valid_auc"] if metrics["soup_kept"] else metrics["best_single_valid_auc"]
    assert abs(auc(scored.label, scored.score) - kept_auc) < 1e-6   # the saved model is the one the stage chose
    assert "the greedy soup of" in (stage / "train.ipynb").read_text()   # the executed notebook keeps the reason as evidence
