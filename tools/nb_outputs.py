#!/usr/bin/env python3
"""Keep the outputs stored in the notebooks true: run a notebook as `nbdev-test` does and store its outputs
(`refresh`), or run it again and compare with what is stored (`check`).

Usage: python tools/nb_outputs.py refresh nbs/NN_x.ipynb [...]   |   python tools/nb_outputs.py check nbs/NN_x.ipynb [...]

Stored outputs are what GitHub and the quarto site show. `refresh` keeps the displayed results (tables, reprs,
pictures, printed lines), drops stderr streams (warnings carry machine paths) and the outputs of `#| hide` cells, and
leaves the notebook nbdev-clean. `check` compares text outputs after normalising memory addresses and temporary or
checkout paths, and images by their pixel size: a stale output is one a fresh run no longer produces.
"""
from __future__ import annotations
import base64, io, json, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP_FLAGS = ('slow', 'gpu', 'notest')


def _run(fn: Path):
    "The notebook's cells after a run with nbdev's executor (same cells, flags and working directory as nbdev-test)"
    from nbdev.process import NBProcessor
    from nbdev.test import _skip_cell
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    os.environ['IN_TEST'] = '1'
    nb = NBProcessor(fn, rm_directives=False, process=True).nb
    k = CaptureShell(fn, mpl_format='png')  # not 'retina': stored pictures stay small
    k._run("import matplotlib; matplotlib.rcParams['figure.dpi'] = 60")
    with working_directory(fn.parent):
        k.run_all(nb, exc_stop=True, preproc=_skip_cell(nb, SKIP_FLAGS))
    return nb.cells


def _hidden(src: str) -> bool:
    return bool(re.search(r'^#\|\s*hide\s*$', src, re.M)) or bool(re.search(r'^#\|\s*export', src, re.M))


_TMPDIR = re.compile(r'(/private)?/(tmp|var/folders)/[^\s\'",)\]/]*')


def scrub(text: str) -> str:
    "No machine path in a stored output: the checkout's prefix dropped (paths relative to the repository), a temporary folder shown as `…`"
    return _TMPDIR.sub('…', text.replace(str(ROOT) + '/', '').replace(str(ROOT), '.'))


def _scrub_output(o: dict) -> dict:
    "A stored output with `scrub` applied to its text (stream text and text/* data; pictures untouched)"
    if 'text' in o: o['text'] = scrub(''.join(o['text']) if isinstance(o['text'], list) else o['text'])
    data = o.get('data') or {}
    for mime, v in list(data.items()):
        if mime.startswith('text/'): data[mime] = scrub(''.join(v) if isinstance(v, list) else v)
    return o


def _keep(cell_src: str, outputs: list) -> list:
    if _hidden(cell_src): return []
    out = []
    for o in outputs:
        o = _scrub_output(dict(o))
        if o.get('output_type') == 'stream' and o.get('name') != 'stdout': continue
        if o.get('output_type') == 'error': continue
        if 'execution_count' in o: o['execution_count'] = None
        out.append(o)
    return out


def _plain(o) -> dict:
    return json.loads(json.dumps(o, default=lambda x: dict(x) if hasattr(x, 'keys') else list(x)))


def machine_paths(fn: Path) -> list[str]:
    "Stored text outputs of `fn` that still show a path of the machine that ran it (checkout, temp folder, home)"
    nb = json.loads(Path(fn).read_text())
    pats = [str(ROOT), str(Path.home()) + '/', '/tmp/', '/var/folders/']
    bad = []
    for c in nb['cells']:
        for o in c.get('outputs', []) if c['cell_type'] == 'code' else []:
            texts = [o.get('text', '')] + [v for m, v in (o.get('data') or {}).items() if m.startswith('text/')]
            for t in texts:
                t = ''.join(t) if isinstance(t, list) else t
                hit = next((p for p in pats if p in t), None)
                if hit: bad.append(f"{Path(fn).name} cell {c.get('id')}: {t[max(0, t.index(hit) - 40):t.index(hit) + 60]!r}")
    return bad


def refresh(fn: Path) -> int:
    "Run `fn` and store its displayed outputs; returns the number of cells with an output"
    cells = {c.id: c for c in _run(fn)}
    nb = json.loads(fn.read_text())
    n = 0
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        ran = cells.get(c.get('id'))
        src = ''.join(c['source'])
        c['outputs'] = _keep(src, [_plain(o) for o in (ran.get('outputs') or [])]) if ran is not None else []
        n += bool(c['outputs'])
    fn.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    subprocess.run([str(Path(sys.executable).parent/'nbdev-clean'), '--fname', str(fn)], check=True, cwd=ROOT)
    return n


_ADDR = re.compile(r'0x[0-9a-fA-F]{6,}')
_TMP = re.compile(r'(/private)?/(tmp|var/folders)/[^\s\'",)\]]*')


def normalise(text: str) -> str:
    "Text output with memory addresses, temporary paths and the checkout's path replaced by placeholders"
    text = scrub(text)
    text = re.sub(r'(<[^<>]*?) at 0x[0-9a-fA-F]+(>)', r'\1\2', text)  # as nbdev-clean leaves reprs in the stored outputs
    return _TMP.sub('<tmp>', _ADDR.sub('0x…', text))


def _summary(outputs: list) -> list:
    "Comparable form of outputs: normalised text per mime type; images as their pixel size"
    from PIL import Image
    res = []
    for o in outputs:
        if o.get('output_type') == 'stream': res.append(('stream', normalise(''.join(o.get('text', '')))))
        for mime, v in sorted((o.get('data') or {}).items()):
            v = ''.join(v) if isinstance(v, list) else v
            if mime.startswith('image/png'): res.append((mime, Image.open(io.BytesIO(base64.b64decode(v))).size))
            elif mime in ('text/plain', 'text/markdown', 'text/html', 'text/latex'): res.append((mime, normalise(v)))
            else: res.append((mime, 'present'))  # widget views: their state is not comparable text
    return res


def check(fn: Path) -> list[str]:
    "Differences between the stored outputs of `fn` and a fresh run (empty when the notebook is up to date)"
    cells = {c.id: c for c in _run(fn)}
    nb = json.loads(fn.read_text())
    diffs = []
    for c in nb['cells']:
        if c['cell_type'] != 'code' or not c.get('outputs'): continue
        ran = cells.get(c.get('id'))
        fresh = _keep(''.join(c['source']), [_plain(o) for o in (ran.get('outputs') or [])]) if ran is not None else []
        a, b = _summary(c['outputs']), _summary(fresh)
        if a != b: diffs.append(f"{fn.name} cell {c.get('id')}: stored {str(a)[:300]} != fresh {str(b)[:300]}")
    return diffs


def shown_outputs(fn: Path) -> int:
    "Number of visible code cells with a stored output"
    nb = json.loads(Path(fn).read_text())
    return sum(1 for c in nb['cells'] if c['cell_type'] == 'code' and c.get('outputs') and not _hidden(''.join(c['source'])))


if __name__ == '__main__':
    cmd, *files = sys.argv[1:] or ['--help']
    if cmd not in ('refresh', 'check') or not files: print(__doc__); sys.exit(2)
    bad = 0
    for f in map(Path, files):
        if cmd == 'refresh': print(f"{f}: {refresh(f.resolve())} cell(s) with outputs")
        else:
            d = check(f.resolve())
            bad += bool(d)
            print('\n'.join(d) if d else f"{f}: outputs up to date")
    sys.exit(1 if bad else 0)
