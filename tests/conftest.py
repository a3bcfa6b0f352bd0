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


def click_table(path, n:int=2500, users:int=50, items:int=30, seed:int=0) -> dict:
    "A features table of n clicks from a user + item logit model, split 80/10/10 by time; write it to `path` and return its spec."
    import numpy as np, pandas as pd
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, users, n), rng.integers(0, items, n)
    logit = rng.normal(0, 1, users)[u] + rng.normal(0, 1, items)[i] - 0.5
    table = pd.DataFrame({"event_id": np.arange(n), "ts": np.arange(n), "user_id": u, "item_id": i,
                          "x": rng.normal(0, 1, n), "click": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")})
    table["split"] = np.select([table.index < 0.8 * n, table.index < 0.9 * n], ["train", "valid"], "test")
    table.to_parquet(path)
    return {"label": "click", "categorical": ["user_id", "item_id"], "numeric": ["x"]}


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
    "`loopkit serve ARGS` on `port` (a free loopback port when None), up (GET /healthz answers) inside the `with`, stopped by its pid after it."
    def __init__(self, args, cwd, env, port=None):
        self.args, self.cwd, self.env, self.port = list(map(str, args)), cwd, env, port

    def __enter__(self) -> str:
        import time, httpx
        port = self.port or free_port()
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


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    "A redis-server of the suite's own on a free loopback port (no persistence), stopped by its pid after the session."
    import shutil, time
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: `make test` installs it (Debian package redis-server)"
    port, folder = free_port(), tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis
    client, deadline = redis.Redis(port=port), time.time() + 20
    while True:
        try: client.ping(); break
        except redis.ConnectionError:
            assert proc.poll() is None and time.time() < deadline, "redis-server did not start"
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    try: proc.wait(10)
    except subprocess.TimeoutExpired: proc.kill()


def _stop(proc, pid=None):
    "Stop a server this suite started: SIGTERM to its own pid (and to the process it became), then kill after a wait."
    import signal
    for p in filter(None, (pid, proc.pid)):
        try: os.kill(p, signal.SIGTERM)
        except ProcessLookupError: pass
    try: proc.wait(20)
    except subprocess.TimeoutExpired: proc.kill()


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of the suite's own (Debian package `postgresql`) on a free loopback port, with databases
    `mlflow` and `optuna`; its base URL (append the database). Run as the `postgres` user when the suite runs as root."""
    import shutil, tempfile, time
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert initdb, "PostgreSQL is not installed: `make test` installs it (Debian package postgresql)"
    bindir, root = initdb[-1].parent, os.geteuid() == 0
    as_owner = ["runuser", "-u", "postgres", "--"] if root else []
    folder = Path(tempfile.mkdtemp(prefix="loopkit-pg-"))  # outside pytest's private tmp: the postgres user must reach it
    if root: shutil.chown(folder, "postgres", "postgres")
    subprocess.run(as_owner + [str(bindir / "initdb"), "-D", str(folder / "db"), "-U", "loopkit", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(as_owner + [str(bindir / "postgres"), "-D", str(folder / "db"), "-h", "127.0.0.1", "-p", str(port), "-k", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode != 0:
        assert proc.poll() is None and time.time() < deadline, "postgres did not start"
        time.sleep(0.2)
    for db in ("mlflow", "optuna"):
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "loopkit", db], check=True, capture_output=True)
    yield f"postgresql+psycopg2://loopkit@127.0.0.1:{port}"
    pid_file = folder / "db" / "postmaster.pid"
    _stop(proc, int(pid_file.read_text().split()[0]) if pid_file.exists() else None)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tracking_server(postgres_url, tmp_path_factory):
    "`mlflow server` on a free loopback port: runs and registry in PostgreSQL, artifacts in a shared folder; its URL."
    import time, httpx
    port, artifacts = free_port(), tmp_path_factory.mktemp("mlflow-artifacts")
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", f"{postgres_url}/mlflow", "--artifacts-destination", str(artifacts),
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    url, deadline = f"http://127.0.0.1:{port}", time.time() + 180
    while True:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200: break
        except httpx.HTTPError: pass
        assert proc.poll() is None and time.time() < deadline, "mlflow server did not come up within 180 s"
        time.sleep(0.5)
    yield url
    import signal
    try: os.killpg(proc.pid, signal.SIGTERM)  # the server and the workers it forked: its own process group
    except ProcessLookupError: pass
    try: proc.wait(20)
    except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL)
