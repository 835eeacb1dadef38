"""nbdev's Jupyter hook keeps notebooks clean when JupyterLab saves them.

`[tool.nbdev] jupyter_hooks = true` in pyproject.toml turns nbdev's `clean_jupyter` on; Jupyter calls it as its
`ContentsManager.pre_save_hook` (set in `~/.jupyter/jupyter_server_config.py` by `nbdev-install-hooks`, or with
`--ContentsManager.pre_save_hook=nbdev.clean.clean_jupyter`). Here a copy of the project is opened and saved through
jupyter_server's contents manager (what the JupyterLab contents API calls), with what JupyterLab adds to a notebook
it ran (kernelspec, language_info, execution counts, per-cell execution metadata), and `git diff` must stay empty.

The second half runs what `make lab` configures: a Jupyter server started from `nbs/` with the Makefile's `LAB_ARGS`
(and, separately, with only the config `make install` writes into the venv), the notebook saved through the server's
REST contents API as JupyterLab's save button does, then `git status` must be empty.
"""
import contextlib
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = 'nbs/01_nomenclature.ipynb'


def _git(cwd: Path, *args: str) -> str:
    r = subprocess.run(['git', *args], cwd=cwd, capture_output=True, text=True, check=True)
    return r.stdout


@pytest.fixture
def proj(tmp_path, monkeypatch):
    "A git repository holding the project's pyproject.toml and one notebook, committed"
    p = tmp_path/'proj'
    (p/'nbs').mkdir(parents=True)
    shutil.copy2(ROOT/'pyproject.toml', p/'pyproject.toml')
    shutil.copy2(ROOT/'.gitignore', p/'.gitignore')  # checkpoints and nbdev's trust stamp are ignored
    shutil.copy2(ROOT/NB, p/NB)
    _git(p, 'init', '-q')
    _git(p, 'add', '-A')
    _git(p, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'init')
    monkeypatch.chdir(p)  # Jupyter runs from the project (`make lab`); nbdev finds pyproject.toml from there
    return p


def _as_jupyterlab_leaves_it(nb: dict):
    "Add to a notebook (in place) what a JupyterLab session that ran it adds"
    nb['metadata']['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3 (ipykernel)', 'language': 'python'}
    nb['metadata']['language_info'] = {'name': 'python', 'version': '3.11.2', 'mimetype': 'text/x-python'}
    for i, c in enumerate(nb['cells']):
        c['metadata']['scrolled'] = True
        if c['cell_type'] == 'code':
            c['execution_count'] = i + 1
            c['metadata']['execution'] = {'iopub.execute_input': '2026-01-01T00:00:00.000Z',
                                          'shell.execute_reply': '2026-01-01T00:00:01.000Z'}


def _save_as_jupyterlab(p: Path):
    "Open the notebook through the contents manager, add what a JupyterLab session adds, and save it"
    from jupyter_server.services.contents.filemanager import FileContentsManager
    cm = FileContentsManager(root_dir=str(p), pre_save_hook='nbdev.clean.clean_jupyter')
    nb = copy.deepcopy(cm.get(NB, content=True, type='notebook')['content'])
    _as_jupyterlab_leaves_it(nb)
    cm.save({'type': 'notebook', 'format': 'json', 'content': nb}, NB)


def test_save_through_contents_api_leaves_no_diff(proj):
    _save_as_jupyterlab(proj)
    assert _git(proj, 'status', '--porcelain') == '', _git(proj, 'diff')[:3000]


def test_without_hooks_the_same_save_dirties_the_notebook(proj):
    "The control: with `jupyter_hooks = false` the same save changes the file (so the test above can fail)"
    cfg = (proj/'pyproject.toml').read_text()
    assert 'jupyter_hooks = true' in cfg
    (proj/'pyproject.toml').write_text(cfg.replace('jupyter_hooks = true', 'jupyter_hooks = false'))
    _git(proj, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qam', 'hooks off')
    _save_as_jupyterlab(proj)
    diff = _git(proj, 'diff', '--', NB)
    assert '"kernelspec"' in diff and '"execution_count": 1' in diff.replace('"execution_count": 1,', '"execution_count": 1'), diff[:2000]


# ------------------------------------------------------------------------------------------ what `make lab` runs
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _jupyter_server(cwd: Path, args: list[str], env: dict | None = None):
    "A Jupyter server started in `cwd` with `args` (as `make lab` starts JupyterLab's); yields (base url, token)"
    port, token = _free_port(), 'flairhub-test'
    logf = cwd.parent.parent/'jupyter-server.log'  # outside the repository
    cmd = [str(Path(sys.executable).parent/'jupyter-server'), '--no-browser', f'--port={port}', '--ServerApp.port_retries=0',
           f'--IdentityProvider.token={token}', '--ServerApp.ip=127.0.0.1', '--allow-root', *args]
    url = f'http://127.0.0.1:{port}'
    with open(logf, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            for _ in range(600):
                if proc.poll() is not None: break
                try:
                    _api(url, token, 'GET', '/api/status')
                    break
                except OSError: time.sleep(0.25)
            else: pytest.fail('the Jupyter server did not answer in 150 s')
            assert proc.poll() is None, logf.read_text()[-3000:]
            yield url, token
        finally:
            proc.terminate()
            try: proc.wait(20)
            except subprocess.TimeoutExpired: proc.kill()


def _api(url: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    "One request to the Jupyter REST API (what JupyterLab's file browser and its save button call)"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={'Authorization': f'token {token}', 'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=30) as r: return json.loads(r.read() or b'{}')


def _save_through_rest(url: str, token: str, api_path: str):
    "GET the notebook, change it as a JupyterLab session does, PUT it back (JupyterLab's save)"
    nb = _api(url, token, 'GET', f'/api/contents/{api_path}?content=1&type=notebook')['content']
    _as_jupyterlab_leaves_it(nb)
    _api(url, token, 'PUT', f'/api/contents/{api_path}', {'type': 'notebook', 'format': 'json', 'content': nb})


def make_lab_args() -> list[str]:
    "The Jupyter options `make lab` passes (the Makefile's LAB_ARGS)"
    r = subprocess.run(['make', '-s', '--no-print-directory', 'lab-args'], cwd=ROOT, capture_output=True, text=True, check=True)
    return r.stdout.split()


def test_make_lab_options_keep_a_rest_save_clean(proj):
    "JupyterLab as `make lab` starts it (from nbs/, with LAB_ARGS): a save through the contents REST API leaves git clean"
    args = make_lab_args()
    assert '--ContentsManager.pre_save_hook=nbdev.clean.clean_jupyter' in args, args
    with _jupyter_server(proj/'nbs', args) as (url, token):
        _save_through_rest(url, token, Path(NB).name)
    assert _git(proj, 'status', '--porcelain') == '', _git(proj, 'diff')[:3000]


def test_make_lab_recipe_uses_lab_args(tmp_path):
    "`make lab` runs JupyterLab from nbs/ with LAB_ARGS (the options the test above starts the server with)"
    r = subprocess.run(['make', '-n', '--no-print-directory', 'lab', f'VENV={tmp_path}/venv'], cwd=ROOT,  # -n: printed, not run
                       capture_output=True, text=True, check=True)
    lab = [l for l in r.stdout.splitlines() if 'jupyter lab' in l]
    assert len(lab) == 1 and lab[0].startswith('cd nbs && ') and lab[0].endswith(' '.join(make_lab_args())), r.stdout


def test_make_install_hook_keeps_a_rest_save_clean(proj, tmp_path):
    "The hook `make install` writes into the venv's Jupyter config: a plain `jupyter lab` of that venv saves clean"
    venv = tmp_path/'venv'
    venv.mkdir()
    for f in ('Makefile', 'constraints.txt'): shutil.copy2(ROOT/f, proj/f)
    (venv/'.installed').touch()  # the venv is up to date: `make install` only adds the hook
    r = subprocess.run(['make', '-s', '--no-print-directory', 'install', f'VENV={venv}'], cwd=proj, capture_output=True,
                       text=True, check=False)
    assert r.returncode == 0, r.stderr
    conf = venv/'etc'/'jupyter'
    hook = json.loads((conf/'jupyter_server_config.json').read_text())
    assert hook == {'ContentsManager': {'pre_save_hook': 'nbdev.clean.clean_jupyter'}}, hook
    with _jupyter_server(proj/'nbs', [], env={'JUPYTER_CONFIG_PATH': str(conf)}) as (url, token):
        _save_through_rest(url, token, Path(NB).name)
    assert _git(proj, 'status', '--porcelain', '--', 'nbs') == '', _git(proj, 'diff')[:3000]


def test_rest_save_without_the_hook_dirties_the_notebook(proj):
    "The control: the same server and save without the hook option change the file (so the two tests above can fail)"
    # `builtins.dict` takes the hook's keyword arguments and does nothing: it replaces any hook in the environment's config
    with _jupyter_server(proj/'nbs', ['--ContentsManager.pre_save_hook=builtins.dict']) as (url, token):
        _save_through_rest(url, token, Path(NB).name)
    diff = _git(proj, 'diff', '--', NB)
    assert '"kernelspec"' in diff and '"execution_count": 1' in diff, diff[:2000]
