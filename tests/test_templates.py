"""Every stage template is thin: parameters, calls into the library, and what a person should see.

A template holds no definitions, no branching between modes and no MLflow client of its own; the library does that
work where a notebook documents and tests it. Each rule is its own check, so a failure names the rule and the template.
"""
import ast, importlib, json
from pathlib import Path

import pytest

TEMPLATES = sorted((Path(__file__).resolve().parents[1] / "templates").glob("*.ipynb"))


def _code_cells(template: Path) -> list[dict]:
    return [c for c in json.loads(template.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _body(template: Path) -> list[tuple[int, ast.Module]]:
    "Parsed code cells after the parameters cell, with their positions."
    return [(i, ast.parse(_source(c))) for i, c in enumerate(_code_cells(template)) if "parameters" not in c["metadata"].get("tags", [])]


def check_one_literal_parameters_cell(template):
    cells = [c for c in _code_cells(template) if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, f"{template.name}: {len(cells)} cells tagged 'parameters'; a template has exactly one"
    assert cells[0] == _code_cells(template)[0], f"{template.name}: the parameters cell must be the first code cell"
    for node in ast.parse(_source(cells[0])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"{template.name}: the parameters cell holds only `name = literal` lines; found {ast.unparse(node)!r}"
        ast.literal_eval(node.value)  # raises on anything but a literal


def check_papermill_reads_every_parameter(template):
    import papermill
    cells = [c for c in _code_cells(template) if "parameters" in c["metadata"].get("tags", [])]
    names = [n.targets[0].id for n in ast.parse(_source(cells[0])).body]
    read = papermill.inspect_notebook(str(template))
    assert list(read) == names, f"{template.name}: papermill reads parameters {sorted(read)}, the cell assigns {names} (an '=' in a comment hides one)"
    assert all(read[n]["help"] for n in names), f"{template.name}: parameters without a comment saying what they are: {[n for n in names if not read[n]['help']]}"


def check_no_definitions(template):
    for i, tree in _body(template):
        found = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not found, f"{template.name}, code cell {i}: defines {found}; definitions belong in the library (nbs/)"


def check_no_branching_between_modes(template):
    for i, tree in _body(template):
        found = [type(n).__name__ for n in ast.walk(tree) if isinstance(n, (ast.If, ast.For, ast.While, ast.Try, ast.Match))]
        assert not found, f"{template.name}, code cell {i}: {found} statements; the library chooses between modes"


def check_no_mlflow_client(template):
    for i, tree in _body(template):
        for n in ast.walk(tree):
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
                assert not any(m == "mlflow" or m.startswith("mlflow.") for m in mods), \
                    f"{template.name}, code cell {i}: imports mlflow; record through loopkit.pipeline (record_metrics, record_tags, record_artifacts)"
            if isinstance(n, ast.Attribute) and n.attr == "environ":
                raise AssertionError(f"{template.name}, code cell {i}: reads os.environ; use loopkit.pipeline.stage_run_id")


def check_loopkit_imports_exist(template):
    for i, tree in _body(template):
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("loopkit"):
                module = importlib.import_module(n.module)
                missing = [a.name for a in n.names if not hasattr(module, a.name)]
                assert not missing, f"{template.name}, code cell {i}: {n.module} has no {missing}"


CHECKS = (check_one_literal_parameters_cell, check_papermill_reads_every_parameter, check_no_definitions, check_no_branching_between_modes, check_no_mlflow_client,
          check_loopkit_imports_exist)


def test_there_are_templates():
    assert len(TEMPLATES) >= 10, f"expected the ten stage templates, found {[t.name for t in TEMPLATES]}"


@pytest.mark.parametrize("template,check", [(t, c) for t in TEMPLATES for c in CHECKS],
                         ids=lambda x: getattr(x, "__name__", getattr(x, "stem", "")))
def test_template_contract(template, check):
    check(template)


def test_a_thick_template_is_caught(tmp_path):
    nb = json.loads(TEMPLATES[0].read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "def helper(x):\n    return x\nif helper(1):\n    from mlflow import MlflowClient\n"})
    thick = tmp_path / "thick.ipynb"
    thick.write_text(json.dumps(nb))
    for check, says in ((check_no_definitions, "defines ['helper']"), (check_no_branching_between_modes, "['If']"),
                        (check_no_mlflow_client, "imports mlflow")):
        with pytest.raises(AssertionError, match=says.replace("[", r"\[").replace("]", r"\]")): check(thick)
