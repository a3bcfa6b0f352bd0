"The cost ledger of `loopkit run` and its budgets: each stage measured and priced, in the run folder, MLflow and `loopkit cost`; stages refused before they start (exit code 4) with what was spent and what was left."
import json

import yaml
from mlflow import MlflowClient

from conftest import LOOPKIT, executed, loopkit, write_template


def with_sections(project, **sections):
    "Rewrite the project's pipeline.yaml with top-level sections added (prices, budget, ...)."
    spec = yaml.safe_load((project / 'pipeline.yaml').read_text())
    (project / 'pipeline.yaml').write_text(yaml.safe_dump({**spec, **sections}))


def test_every_stage_is_measured_priced_and_kept(project):
    "ledger.json, the project's history, MLflow and `loopkit cost` carry each stage's CPU, memory and money at the file's prices."
    with_sections(project, prices={'cpu_hour': 36.0, 'gb_hour': 0.0, 'currency': 'EUR'})  # 1 CPU-second = 0.01 EUR
    rc, out, err = loopkit('run', '--json')
    assert rc == 0, err
    ledger = json.loads((project / 'runs/latest/ledger.json').read_text())
    assert set(ledger['stages']) == {'make', 'double', 'side'}
    for stage, e in ledger['stages'].items():
        assert e['cpu_s'] > 0.1 and e['peak_gb'] > 0.01 and e['wall_s'] >= e['cpu_s'] / 4, (stage, e)  # a kernel started and ran
        assert abs(e['money'] - e['cpu_s'] * 0.01) < 1e-4, (stage, e)
    assert abs(ledger['total'] - sum(e['money'] for e in ledger['stages'].values())) < 1e-6
    history = [json.loads(l) for l in (project / '.loopkit/cost-history.jsonl').read_text().splitlines()]
    assert [h['stage'] for h in history] == ['make', 'double', 'side']
    assert 'cost of the run' in err and 'EUR' in err
    client = MlflowClient()
    runs = {r.data.tags.get('loopkit.stage'): r for r in client.search_runs([client.get_experiment_by_name('loopkit-test').experiment_id])}
    assert abs(runs['double'].data.metrics['cost/money'] - ledger['stages']['double']['money']) < 1e-6
    assert abs(runs[None].data.metrics['cost/money'] - ledger['total']) < 1e-6  # the pipeline's parent run: what this invocation spent
    rc, table, err = loopkit('cost', '--json')
    assert rc == 0, err
    assert [r['stage'] for r in table] == ['make', 'double', 'side', 'total'] and abs(table[-1]['money'] - ledger['total']) < 1e-6
    # a cached rerun spends nothing and keeps what the outputs cost
    rc, out, err = loopkit('run')
    assert rc == 0 and json.loads((project / 'runs/latest/ledger.json').read_text())['stages'] == ledger['stages']


def test_a_stage_over_its_budget_is_refused_before_it_starts(project):
    "From the project's history: double's estimate exceeds its budget; it is refused with what was spent, and make's outputs stay."
    assert loopkit('run')[0] == 0
    history = [json.loads(l) for l in (project / '.loopkit/cost-history.jsonl').read_text().splitlines()]
    estimate = next(h['money'] for h in history if h['stage'] == 'double')
    with_sections(project, budget={'stages': {'double': estimate / 2}})
    before = executed(project)
    rc, out, err = loopkit('run', '--force', 'make', '--force', 'double', '--json')
    assert rc == 4, err
    statuses = {s['name']: s['status'] for s in out['stages']}
    assert statuses == {'make': 'ran', 'double': 'refused', 'side': 'cached'}, statuses
    assert executed(project)[len(before):] == ['make'], "the refused stage started a kernel"
    assert "stage 'double' refused before it started" in err and 'budget.stages.double' in err and 'this run spent' in err and 'make ' in err
    assert (project / 'runs/latest/make/value.txt').exists() and (project / 'runs/latest/double/double.txt').exists()


def test_a_spent_run_budget_refuses_the_rest(project):
    "A run budget smaller than the first stage's estimate: nothing starts, exit code 4, every refusal says what is left."
    assert loopkit('run')[0] == 0
    with_sections(project, budget={'run': 1e-9})
    before = executed(project)
    rc, out, err = loopkit('run', '--force', 'make', '--force', 'side', '--json')
    assert rc == 4, err
    statuses = {s['name']: s['status'] for s in out['stages']}
    assert statuses == {'make': 'refused', 'double': 'skipped', 'side': 'refused'}, statuses
    assert executed(project) == before
    assert "of the run's budget of 0.0000 USD is left (budget.run)" in err


def test_the_search_budget_and_prices_reach_the_stages(project):
    "A stage sees budget.search and the price table in its environment (what `tune` reads)."
    write_template(project / 'side.ipynb', 'name = "side"  # a label',
                   'import os\nopen("side.txt", "w").write(os.environ.get("LOOPKIT_SEARCH_BUDGET", "") + "|" + os.environ["LOOPKIT_PRICES"])')
    with_sections(project, budget={'search': 0.25}, prices={'gpu_hour': 3.0})
    assert loopkit('run')[0] == 0
    budget, prices = (project / 'runs/latest/side/side.txt').read_text().split('|')
    assert float(budget) == 0.25 and json.loads(prices)['gpu_hour'] == 3.0


def test_bad_prices_and_budgets_are_refused_by_name(project):
    "Unknown keys, typos and negative amounts: exit code 2 before anything runs."
    spec = (project / 'pipeline.yaml').read_text()
    for extra, said in (("budjet: {run: 1}\n", "unknown top-level key(s) budjet"),
                        ("budget: {run: -1}\n", "budget.run"),
                        ("budget: {stages: {dobule: 1}}\n", "not stages of the pipeline"),
                        ("prices: {cpu: 1}\n", "unknown key(s) ['cpu']")):
        (project / 'pipeline.yaml').write_text(spec + extra)
        rc, _, err = loopkit('run')
        assert rc == 2 and said in err, (extra, err)
    assert executed(project) == []
