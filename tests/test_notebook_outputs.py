"""The notebooks are documents: every module notebook shows what it makes (outputs stored in the file, which GitHub
and the quarto site render), and what it shows is what a fresh run produces (text compared after normalising memory
addresses and temporary paths; pictures by pixel size)."""
import json, os, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import nb_outputs  # noqa: E402

MODULE_NBS = sorted(p for p in (ROOT/'nbs').glob('[0-9]*.ipynb')
                    if re.search(r'^#\|\s*default_exp', ''.join(json.loads(p.read_text())['cells'][0]['source']), re.M))


def test_every_module_notebook_is_listed():
    assert len(MODULE_NBS) >= 30


@pytest.mark.parametrize('nb', MODULE_NBS, ids=lambda p: p.stem)
def test_module_notebook_shows_its_results(nb):
    assert nb_outputs.shown_outputs(nb) >= 1, f"{nb.name}: no visible cell has a stored output; run `python tools/nb_outputs.py refresh {nb.relative_to(ROOT)}`"


@pytest.mark.parametrize('nb', MODULE_NBS, ids=lambda p: p.stem)
def test_stored_outputs_match_a_fresh_run(nb):
    # each notebook runs in a fresh interpreter, as nbdev-test runs it: a notebook that starts DataLoader workers would
    # fork this test process, whose threads (left by earlier notebooks) can hold locks the child then waits on forever
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'nb_outputs.py'), 'check', str(nb)], capture_output=True, text=True,
                       timeout=600, cwd=ROOT, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0 and 'outputs up to date' in r.stdout, (r.stdout[-4000:] + r.stderr[-3000:] +
        f"\n(refresh with `python tools/nb_outputs.py refresh {nb.relative_to(ROOT)}`)")


ALL_NBS = sorted(p for p in (ROOT/'nbs').rglob('*.ipynb') if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT/'nbs').parts))


@pytest.mark.parametrize('nb', ALL_NBS, ids=lambda p: p.relative_to(ROOT/'nbs').with_suffix('').as_posix())
def test_stored_outputs_show_no_machine_path(nb):
    "What GitHub and the docs show carries no path of the machine that ran the notebook (checkout, temp folder, home)"
    bad = nb_outputs.machine_paths(nb)
    assert not bad, '\n'.join(bad) + f"\n(refresh with `python tools/nb_outputs.py refresh {nb.relative_to(ROOT)}`)"
