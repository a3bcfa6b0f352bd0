"The distill stage template run by papermill on small data; distillation resumes from its checkpoints; MovieLens-100K when present."
import ast, json
from pathlib import Path
import numpy as np, pandas as pd, pytest
import nbformat

from loopkit.training.distill import distill
from loopkit.serving.hybrid import HybridRouter, evaluate_router
from loopkit.models.ctr import load_model
from loopkit.models.encoder import rows_of_split
from loopkit.training.fit import fit

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "templates" / "distill.ipynb"
MOVIELENS = ROOT.parent / "shared" / "data" / "ml-100k"


def small_table(n=5000, seed=0) -> tuple[pd.DataFrame, dict]:
    "Clicks from user/item effects and a user x item interaction (something a deep teacher learns), 70/15/15 split in time."
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, 150, n), rng.integers(0, 80, n)
    U, V = rng.normal(0, 0.8, (150, 4)), rng.normal(0, 0.8, (80, 4))
    logit = -1.2 + rng.normal(0, 0.7, 150)[users] + rng.normal(0, 1, 80)[items] + (U[users] * V[items]).sum(1)
    table = pd.DataFrame({"event_id": np.arange(n), "ts": np.arange(n), "user_id": users, "item_id": items,
                          "device": rng.choice(["ios", "android", "web"], n), "age": rng.normal(35, 10, n),
                          "click": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")})
    table["split"] = np.select([table.index < 0.7 * n, table.index < 0.85 * n], ["train", "valid"], "test")
    return table, {"label": "click", "user": "user_id", "item": "item_id", "categorical": ["user_id", "item_id", "device"],
                   "numeric": ["age"], "feature_set_version": "test"}


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    "What the features and train stages would have written: table.parquet, spec.json and a trained DeepFM teacher."
    root = tmp_path_factory.mktemp("distill")
    table, spec = small_table()
    table.to_parquet(root / "table.parquet")
    (root / "spec.json").write_text(json.dumps(spec))
    fit(table, spec, model="deepfm", max_epochs=3, lr=0.005, config={"embed_dim": 16, "hidden": [128, 64]}).save(root / "teacher")
    return root


def test_the_template_has_one_parameters_cell_of_literals_and_no_outputs():
    nb = nbformat.read(TEMPLATE, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {}
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign), ast.dump(node)
        names[node.targets[0].id] = ast.literal_eval(node.value)
    assert {"table", "spec", "teacher", "student", "alpha", "temperature", "max_epochs"} <= set(names)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


def test_the_template_writes_the_student_in_the_train_stage_layout_and_its_metrics(stage_inputs, tmp_path):
    import papermill as pm
    pm.execute_notebook(str(TEMPLATE), str(tmp_path / "distill.ipynb"), cwd=str(tmp_path), progress_bar=False,
                        parameters={"table": str(stage_inputs / "table.parquet"), "spec": str(stage_inputs / "spec.json"),
                                    "teacher": str(stage_inputs / "teacher"), "student": "mlp", "alpha": 0.7,
                                    "temperature": 2.0, "max_epochs": 3})
    model_dir = tmp_path / "model"
    assert {"model.json", "encoder.json", "weights.pt", "history.csv", "distill.json", "feature_set.json"} <= {p.name for p in model_dir.iterdir()}
    student = load_model(model_dir)
    assert student.name == "mlp"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    history = pd.read_csv(model_dir / "history.csv")
    assert metrics["valid_auc"] == pytest.approx(history.valid_auc.max())
    assert metrics["auc_retention"] == pytest.approx(metrics["valid_auc"] / metrics["teacher_valid_auc"])
    assert metrics["auc_retention"] > 0.95, metrics
    assert metrics["student_p99_ms"] > 0 and metrics["teacher_p99_ms"] > 0
    assert metrics["student_size_mb"] < metrics["teacher_size_mb"]
    valid = rows_of_split(pd.read_parquet(stage_inputs / "table.parquet"), "valid")
    assert np.isfinite(student.predict_frame(valid)).all()


def test_distillation_resumes_from_its_checkpoint_and_refuses_other_settings(stage_inputs, tmp_path):
    table, spec = stage_inputs / "table.parquet", stage_inputs / "spec.json"
    teacher = stage_inputs / "teacher"
    once = distill(table, spec, teacher, max_epochs=2, lr=0.01, patience=5)
    distill(table, spec, teacher, max_epochs=1, lr=0.01, patience=5, out_dir=tmp_path)
    resumed = distill(table, spec, teacher, max_epochs=2, lr=0.01, patience=5, out_dir=tmp_path)
    pd.testing.assert_frame_equal(resumed.history, once.history)
    with pytest.raises(ValueError, match="trained with different objective"):
        distill(table, spec, teacher, max_epochs=3, lr=0.01, alpha=0.9, out_dir=tmp_path)


@pytest.mark.skipif(not MOVIELENS.exists(), reason=f"MovieLens-100K not found at {MOVIELENS}")
def test_movielens_student_keeps_the_teachers_auc_and_the_router_answers_cold_requests_with_the_teacher():
    import sys
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_movielens import movielens_table
    table, spec = movielens_table(MOVIELENS, seed=0)
    teacher = fit(table, spec, model="deepfm", max_epochs=4, batch_size=4096, lr=0.002, seed=0,
                  config={"embed_dim": 16, "hidden": [128, 64], "dropout": 0.2}).model
    student = distill(table, spec, teacher, alpha=0.7, temperature=2.0, max_epochs=8, batch_size=4096, lr=0.005, seed=0)
    assert student.retention > 0.98, (student.metrics, student.teacher_metrics)
    test = rows_of_split(table, "test")
    out = evaluate_router(HybridRouter(student.model, teacher, cold=["user_id", "item_id"]), test, label="click", request_size=20)
    assert out["reasons"].get("cold", 0) > 0, out["reasons"]
    cold = out["decisions"][out["decisions"].reason == "cold"]
    assert cold.teacher.all()
