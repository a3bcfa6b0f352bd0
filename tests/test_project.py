"The project's own promises: one environment described twice, clean templates, the README's two commands, init."
import json, re, tomllib
from pathlib import Path
import yaml
from conftest import ROOT, loopkit


def _name(req): return re.split(r'[<>=!~\[ ;]', req, maxsplit=1)[0].lower().replace('_', '-')


def test_environment_yml_lists_every_runtime_dependency():
    deps = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['dependencies']
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    pip = next(d['pip'] for d in env['dependencies'] if isinstance(d, dict) and 'pip' in d)
    listed = {_name(p): p for p in pip if not p.startswith('-')}
    missing = [d for d in deps if _name(d) not in listed]
    assert not missing, f"environment.yml lacks runtime dependencies from pyproject.toml: {missing}"
    assert listed['torch'] == 'torch==2.13.0', "torch must stay pinned to the CPU wheel in environment.yml"
    assert any(str(d).startswith('python') for d in env['dependencies'])


def test_templates_have_one_literal_parameters_cell_and_no_outputs():
    import ast
    for nb_path in sorted((ROOT/'templates').glob('*.ipynb')):
        nb = json.loads(nb_path.read_text())
        params = [c for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', [])]
        assert len(params) == 1, f"{nb_path.name}: needs exactly one cell tagged `parameters`"
        for node in ast.parse(''.join(params[0]['source'])).body:
            assert isinstance(node, (ast.Assign, ast.AnnAssign)), f"{nb_path.name}: parameters cell holds only assignments"
            ast.literal_eval(node.value)  # literal values only
        for c in nb['cells']:
            assert not c.get('outputs'), f"{nb_path.name}: templates are stored without outputs"


def test_default_pipeline_uses_every_template():
    spec = yaml.safe_load((ROOT/'templates/pipeline.yaml').read_text())
    used = {s['template'] for s in spec['stages'].values()}
    assert used == {p.name for p in (ROOT/'templates').glob('*.ipynb')}
    assert list(spec['stages']) == ['ingest', 'validate', 'features', 'audit', 'train', 'distill', 'evaluate', 'gate', 'monitor', 'register']


def test_readme_is_the_home_page_and_starts_with_the_two_commands():
    from loopkit.site import readme_text
    readme = (ROOT/'README.md').read_text()
    assert readme == readme_text(ROOT/'nbs/index.ipynb'), "README.md is generated from nbs/index.ipynb: run `loopkit docs`"
    head = readme[:1500]
    assert 'make demo' in head and 'make test' in head


def test_init_creates_a_project_from_the_templates(tmp_path):
    code, _, err = loopkit('init', tmp_path/'proj')
    assert code == 0, err
    assert (tmp_path/'proj/pipeline.yaml').exists()
    assert {p.name for p in (tmp_path/'proj').glob('*.ipynb')} == {p.name for p in (ROOT/'templates').glob('*.ipynb')}
    code, _, err = loopkit('init', tmp_path/'proj')
    assert code == 2 and 'not empty' in err


def test_init_from_a_file_declares_it_in_the_pipeline(tmp_path):
    import pandas as pd
    from loopkit.pipeline import load_pipeline, template_parameters, check_parameters
    (tmp_path/'data').mkdir()
    pd.DataFrame({"visitor_id": ["a", "b", "a"], "product_sku": ["x", "y", "z"], "viewed_at": ["2024-01-01T00:00:00Z"] * 3,
                  "clicked": [1, 0, 0], "price": [1.5, 2.5, 3.5], "colour": ["red", "red", "blue"]}).to_csv(tmp_path/'data/views.csv', index=False)
    code, _, err = loopkit('init', tmp_path/'shop', '--from', tmp_path/'data/views.csv')
    assert code == 0, err
    assert "user_id <- visitor_id" in err and "label <- clicked" in err
    pipe = load_pipeline(tmp_path/'shop/pipeline.yaml')
    params = pipe.stages['ingest'].parameters
    assert params['source'] == '../data/views.csv' and params['label'] == 'clicked'
    assert params['columns'] == {'user_id': 'visitor_id', 'item_id': 'product_sku', 'ts': 'viewed_at'}
    assert params['features'] == {'numeric': ['price'], 'categorical': ['colour']}
    check_parameters('ingest', params, template_parameters(pipe.stages['ingest'].template))  # the template takes every guessed parameter
