"""nbdev's Jupyter hook keeps notebooks clean when JupyterLab saves them.

`[tool.nbdev] jupyter_hooks = true` in pyproject.toml turns nbdev's `clean_jupyter` on; Jupyter calls it as its
`ContentsManager.pre_save_hook` (set in `~/.jupyter/jupyter_server_config.py` by `nbdev-install-hooks`, or with
`--ContentsManager.pre_save_hook=nbdev.clean.clean_jupyter`). Here a copy of the project is opened and saved through
jupyter_server's contents manager (what the JupyterLab contents API calls), with what JupyterLab adds to a notebook
it ran (kernelspec, language_info, execution counts, per-cell execution metadata), and `git diff` must stay empty.
"""
import copy
import shutil
import subprocess
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


def _save_as_jupyterlab(p: Path):
    "Open the notebook through the contents manager, add what a JupyterLab session adds, and save it"
    from jupyter_server.services.contents.filemanager import FileContentsManager
    cm = FileContentsManager(root_dir=str(p), pre_save_hook='nbdev.clean.clean_jupyter')
    model = cm.get(NB, content=True, type='notebook')
    nb = copy.deepcopy(model['content'])
    nb['metadata']['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3 (ipykernel)', 'language': 'python'}
    nb['metadata']['language_info'] = {'name': 'python', 'version': '3.11.2', 'mimetype': 'text/x-python'}
    for i, c in enumerate(nb['cells']):
        c['metadata']['scrolled'] = True
        if c['cell_type'] == 'code':
            c['execution_count'] = i + 1
            c['metadata']['execution'] = {'iopub.execute_input': '2026-01-01T00:00:00.000Z',
                                          'shell.execute_reply': '2026-01-01T00:00:01.000Z'}
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
