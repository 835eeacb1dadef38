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


# Pictures stay small: the notebooks and README are read on GitHub and in the docs, and every byte of a stored PNG
# is in the repository's history. 80 kB per picture is enough for a legible figure at a modest dpi/figsize.
MAX_PNG_BYTES = 80_000


def big_pictures(nb: Path, limit: int=MAX_PNG_BYTES) -> list[str]:
    "'notebook cell N (id): K bytes' for each stored image output of `nb` over `limit` bytes"
    import base64
    out = []
    for i, c in enumerate(json.loads(nb.read_text())['cells']):
        for o in c.get('outputs', []):
            for mime, v in (o.get('data') or {}).items():
                if not mime.startswith('image/') or mime == 'image/svg+xml': continue
                n = len(base64.b64decode(''.join(v) if isinstance(v, list) else v))
                if n > limit: out.append(f"{nb.relative_to(ROOT) if nb.is_relative_to(ROOT) else nb.name} cell {i} ({c.get('id')}): {mime} of {n:,} bytes")
    return out


def test_big_pictures_finds_an_oversized_output(tmp_path):
    import base64, io
    import numpy as np
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)).save(buf, 'PNG')
    png = base64.b64encode(buf.getvalue()).decode()
    cells = [{'cell_type': 'markdown', 'id': 'm', 'source': []},
             {'cell_type': 'code', 'id': 'big', 'source': [], 'outputs': [{'output_type': 'display_data', 'data': {'image/png': png}}]}]
    (tmp_path/'x.ipynb').write_text(json.dumps({'cells': cells}))
    found = big_pictures(tmp_path/'x.ipynb')
    assert found == [f"x.ipynb cell 1 (big): image/png of {len(buf.getvalue()):,} bytes"]
    assert big_pictures(tmp_path/'x.ipynb', limit=len(buf.getvalue())) == []


def test_every_notebook_is_scanned_for_pictures():
    names = {p.relative_to(ROOT/'nbs').as_posix() for p in ALL_NBS}
    assert {'explore.ipynb', 'tutorials/zonal.ipynb', '50_viz.plots.ipynb'} <= names
    assert len(ALL_NBS) > len(MODULE_NBS)


def test_stored_pictures_are_small():
    big = [b for nb in ALL_NBS for b in big_pictures(nb)]
    assert not big, (f"stored pictures over {MAX_PNG_BYTES:,} bytes (use a smaller figsize/dpi in the cell, then "
                     "`python tools/nb_outputs.py refresh`):\n" + '\n'.join(big))


def test_readme_and_notebook_images_are_small():
    docs = [ROOT/'README.md'] + ALL_NBS
    refs = {(d, m) for d in docs for m in re.findall(r'\]\(((?:nbs/)?images/[^)\s]+\.png)\)', d.read_text())}
    assert len({m for _, m in refs}) >= 2, refs  # the README's exploration map and zonal prediction at least
    sizes = {}
    for d, m in refs:
        f = (ROOT/m) if m.startswith('nbs/') else (d.parent/m)
        assert f.is_file(), f"{d.relative_to(ROOT)} shows {m}, which is missing"
        sizes[f.relative_to(ROOT).as_posix()] = f.stat().st_size
    big = {f: n for f, n in sizes.items() if n > MAX_PNG_BYTES}
    assert not big, f"pictures shown by the README/notebooks over {MAX_PNG_BYTES:,} bytes: {big}"
