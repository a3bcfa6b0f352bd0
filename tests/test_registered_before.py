"""A model version registered before the package took its current layout still loads and scores the same.

`fixtures/registered_v0_1/model` is the MLflow model folder of a version registered by loopkit 0.1.0 when its modules
sat side by side (`loopkit.models`, `loopkit.serve`, ...): a pyfunc whose code names `loopkit.registry.LoopkitPyfunc`
and whose artifacts hold the loopkit model folder. `expected.json` holds rows of its features table and the scores it
gave them then.
"""
import json, shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "registered_v0_1"


@pytest.fixture(scope="module")
def expected():
    return json.loads((FIXTURE / "expected.json").read_text())


def test_the_pyfunc_loads_and_scores_as_it_did(expected, tmp_path):
    import mlflow.pyfunc
    model_dir = shutil.copytree(FIXTURE / "model", tmp_path / "model")
    scored = mlflow.pyfunc.load_model(str(model_dir)).predict(pd.DataFrame(expected["rows"]))
    np.testing.assert_allclose(np.asarray(scored), expected["scores"], rtol=1e-6)


def test_the_loopkit_model_inside_loads_for_serving(expected, tmp_path):
    from loopkit.models.ctr import load_model
    from loopkit.registry import _model_dir
    from loopkit.serving.sources import LocalModels
    folder = _model_dir(shutil.copytree(FIXTURE / "model", tmp_path / "model"))
    assert folder is not None and (folder / "model.json").exists()
    model = LocalModels({"1": folder}).load("1")
    assert model.name == json.loads((folder / "model.json").read_text())["name"]
    np.testing.assert_allclose(model.predict_frame(pd.DataFrame(expected["rows"])), expected["scores"], rtol=1e-6)
    assert load_model(folder).encoder_.categorical == model.encoder_.categorical


def test_the_registered_version_loads_through_the_registry(expected, tmp_path):
    "The old version's model folder, registered anew in a store of this layout, round-trips through load_version."
    from loopkit.registry import _model_dir, load_version, register
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder = _model_dir(shutil.copytree(FIXTURE / "model", tmp_path / "model"))
    reg = register(folder, {"auc": 0.6}, name="old-layout", tracking_uri=uri)
    back = load_version("old-layout", reg["version"], tracking_uri=uri)
    np.testing.assert_allclose(back.predict_frame(pd.DataFrame(expected["rows"])), expected["scores"], rtol=1e-6)
