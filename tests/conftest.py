"Shared fixtures: small pipelines of trivial templates, and a way to call the CLI as a user does."
import json, os, subprocess, sys
from pathlib import Path
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LOOPKIT = Path(sys.executable).parent/'loopkit'


def write_template(path, params, *cells):
    "A template notebook: one `parameters` cell, then code cells."
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
    p = nbformat.v4.new_code_cell(params); p.metadata['tags'] = ['parameters']
    nb.cells = [p] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


# Every execution appends the stage's name to $EXEC_LOG: the tests count kernels with it.
LOG = 'import os\nopen(os.environ["EXEC_LOG"], "a").write(os.environ["LOOPKIT_STAGE"] + "\\n")'


@pytest.fixture
def project(tmp_path, monkeypatch):
    "A project with a three-stage pipeline: make -> double, and an independent side stage."
    write_template(tmp_path/'make.ipynb', 'value = 3  # the number to write', LOG,
                   'open("value.txt", "w").write(str(value))')
    write_template(tmp_path/'double.ipynb', 'source = "value.txt"  # file holding a number\nfail_if = ""  # raise when this file exists',
                   LOG, 'import os\nif fail_if and os.path.exists(fail_if): raise ValueError("planted failure")',
                   'x = int(open(source).read())\nfrom loopkit.pipeline import record_metrics\nrecord_metrics(doubled=2 * x)',
                   'open("double.txt", "w").write(str(2 * x))')
    write_template(tmp_path/'side.ipynb', 'name = "side"  # a label', LOG, 'open("side.txt", "w").write(name)')
    (tmp_path/'pipeline.yaml').write_text('''
name: test
stages:
  make:
    template: make.ipynb
    parameters: {value: 3}
    outputs: {number: value.txt}
  double:
    template: double.ipynb
    parameters: {source: "${make.number}"}
    outputs: {number: double.txt}
  side:
    template: side.ipynb
    outputs: {label: side.txt}
''')
    log = tmp_path/'exec.log'
    monkeypatch.setenv('EXEC_LOG', str(log))
    monkeypatch.setenv('MLFLOW_TRACKING_URI', f"sqlite:///{tmp_path/'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def executed(project):
    "Stage names executed so far, in order."
    log = project/'exec.log'
    return log.read_text().split() if log.exists() else []


def loopkit(*args, cwd=None, env=None):
    "Run the installed `loopkit` command; return (exit code, parsed JSON last line or None, stderr)."
    p = subprocess.run([str(LOOPKIT), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       env={**os.environ, **(env or {})}, timeout=900)
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ''
    try: data = json.loads(last)
    except json.JSONDecodeError: data = None
    return p.returncode, data, p.stderr


def statuses(record):
    return {s['name']: s['status'] for s in record['stages']}


def free_port() -> int:
    "A free TCP port on loopback."
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


class served_process:
    "`loopkit serve ARGS` on a free loopback port, up (GET /healthz answers) inside the `with`, stopped by its pid after it."
    def __init__(self, args, cwd, env):
        self.args, self.cwd, self.env = list(map(str, args)), cwd, env

    def __enter__(self) -> str:
        import time, httpx
        port = free_port()
        self.proc = subprocess.Popen([str(LOOPKIT), "serve", "--port", str(port), *self.args], cwd=self.cwd, env={**os.environ, **self.env},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url, deadline = f"http://127.0.0.1:{port}", time.time() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200: return url
            except httpx.HTTPError: pass
            if self.proc.poll() is not None: raise AssertionError(f"loopkit serve exited: {self.proc.stderr.read()[-3000:]}")
            if time.time() > deadline: self.__exit__(); raise AssertionError("loopkit serve did not come up within 120 s")
            time.sleep(0.5)

    def __exit__(self, *exc):
        self.proc.terminate()
        try: self.proc.wait(20)
        except subprocess.TimeoutExpired: self.proc.kill()
