"""Build the offline documentation site (tools/build_docs.py, the `make docs` fallback) and look at it in headless Chromium.

The default test builds a copy of the project with a few notebooks (fast); `test_full_site` (slow) builds the whole
site from the repository's notebooks. Screenshots are kept in `_docs/screenshots/` (or `$FLAIRHUB_DOCS_ARTEFACTS`).
Chromium comes from the Debian `chromium` package; when it is missing the test installs it if it runs as root
(`apt-get update && apt-get install -y chromium`), else it fails saying so.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from flairhub_nb.testing import reference_dir

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get('FLAIRHUB_DOCS_ARTEFACTS', ROOT/'_docs'/'screenshots'))
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--hide-scrollbars']


def chromium() -> str:
    "Path of a Chromium binary, installing Debian's `chromium` when missing and allowed"
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        if shutil.which(name): return shutil.which(name)
    if hasattr(os, 'geteuid') and os.geteuid() == 0 and shutil.which('apt-get'):
        env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
        subprocess.run(['apt-get', 'update'], check=True, capture_output=True, env=env, timeout=600)
        subprocess.run(['apt-get', 'install', '-y', 'chromium'], check=True, capture_output=True, env=env, timeout=900)
        if shutil.which('chromium'): return shutil.which('chromium')
    pytest.fail("headless Chromium is needed to check the docs: install it with "
                "`sudo apt-get update && sudo apt-get install -y chromium` (Debian/Ubuntu), then rerun")


def browse(page: Path, tmp: Path, screenshot: Path | None = None, size=(1280, 1600)) -> str:
    "The DOM of a page after Chromium loaded it (and optionally a PNG screenshot)"
    exe = chromium()
    prof = tmp/f'chromium-profile-{page.stem}'
    base = [exe, *FLAGS, f'--user-data-dir={prof}', f'--window-size={size[0]},{size[1]}']
    r = subprocess.run([*base, '--dump-dom', page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and '<html' in r.stdout, r.stderr[-2000:]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        s = subprocess.run([*base, f'--screenshot={screenshot}', page.as_uri()], capture_output=True, text=True, timeout=120)
        assert s.returncode == 0 and screenshot.exists(), s.stderr[-2000:]
    return r.stdout


def text_of(dom: str) -> str:
    "Visible-ish text of a DOM: tags removed, entities for < > & decoded, whitespace collapsed"
    t = re.sub(r'<(script|style)\b.*?</\1>', ' ', dom, flags=re.DOTALL)
    t = re.sub(r'<[^>]+>', '', t).replace('&lt;', '<').replace('&gt;', '>').replace('&amp;', '&').replace('&nbsp;', ' ')
    return re.sub(r'\s+', ' ', t)


def not_blank(png: Path):
    import numpy as np
    from PIL import Image
    a = np.asarray(Image.open(png).convert('L'), dtype='float32')
    assert a.shape[0] > 500 and a.std() > 10, f"{png}: the screenshot looks blank (std {a.std():.1f})"


def build(root: Path, *args, timeout=1200) -> subprocess.CompletedProcess:
    env = {**os.environ, 'FLAIRHUB_REFERENCE': str(reference_dir()), 'HF_HUB_OFFLINE': '1'}
    return subprocess.run([sys.executable, str(ROOT/'tools'/'build_docs.py'), '--root', str(root), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


INDEX_NB = """# flairhub_nb

> Test landing page

This landing page is written by the docs test; it says **hello from the index**."""


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "A copy of the project with a few notebooks (and a broken one), built with tools/build_docs.py"
    tmp = tmp_path_factory.mktemp('docs')
    proj = tmp/'proj'; (proj/'nbs').mkdir(parents=True)
    shutil.copy2(ROOT/'pyproject.toml', proj)
    shutil.copytree(ROOT/'flairhub_nb', proj/'flairhub_nb', ignore=shutil.ignore_patterns('__pycache__'))
    for f in ('01_nomenclature.ipynb', '50_viz.plots.ipynb', '51_viz.maps.ipynb', '60_hub.ipynb', '_quarto.yml',
              'nbdev.yml', 'sidebar.yml', 'styles.css'):
        if (ROOT/'nbs'/f).exists(): shutil.copy2(ROOT/'nbs'/f, proj/'nbs'/f)
    idx = ROOT/'nbs'/'index.ipynb'
    if idx.exists(): shutil.copy2(idx, proj/'nbs'/'index.ipynb')
    else: nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(INDEX_NB)]), proj/'nbs'/'index.ipynb')
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Broken page\n\n> A notebook whose code fails'),
                                             nbformat.v4.new_code_cell("raise ValueError('boom: injected failure')")])
    nbformat.write(broken, proj/'nbs'/'99_broken.ipynb')
    # nbdev's processing runs every cell holding an import: this one fails there, not only when executed
    v4 = nbformat.v4
    unproc = v4.new_notebook(cells=[v4.new_code_cell('#| default_exp unproc'),
                                    v4.new_markdown_cell('# Unprocessable page\n\n> Prose still shows'),
                                    v4.new_code_cell('#| hide\nfrom nbdev.showdoc import *'),
                                    v4.new_code_cell('#| export\ndef f() -> int:\n    "Return one"\n    return 1'),
                                    v4.new_code_cell('import os\nprint(name_from_another_cell)')])
    nbformat.write(unproc, proj/'nbs'/'98_unprocessable.ipynb')
    r = build(proj, '--execute', '50_viz.plots.ipynb', '--execute', '51_viz.maps.ipynb', '--execute', '01_nomenclature.ipynb',
              '--execute', '99_broken.ipynb')
    return tmp, proj, proj/'_docs', r


FAILED_PAGES = ('broken.html', 'unprocessable.html')  # the two notebooks made to fail


def test_build_fails_when_a_page_fails(site):
    "The site is written, but the build exits non-zero naming the failed notebooks"
    tmp, proj, docs, r = site
    assert r.returncode == 1, (r.returncode, r.stderr[-3000:])
    last = [l for l in r.stderr.splitlines() if 'ERROR:' in l]
    assert last and '2 of 7 pages failed' in last[-1] and '99_broken.ipynb' in last[-1] and '98_unprocessable.ipynb' in last[-1], last


def test_site_files_and_report(site):
    tmp, proj, docs, r = site
    for page in ('index.html', 'nomenclature.html', 'viz.plots.html', 'viz.maps.html', 'hub.html', 'broken.html',
                 'unprocessable.html'):
        assert (docs/page).exists(), sorted(p.name for p in docs.iterdir())
    rep = json.loads((docs/'build_report.json').read_text())
    assert rep['50_viz.plots.ipynb']['executed'] and rep['01_nomenclature.ipynb']['executed'] and rep['51_viz.maps.ipynb']['executed']
    assert not rep['60_hub.ipynb']['executed'] and rep['60_hub.ipynb']['error'] is None
    assert 'boom: injected failure' in rep['99_broken.ipynb']['error']
    assert 'name_from_another_cell' in rep['98_unprocessable.ipynb']['processing_error']
    assert rep['50_viz.plots.ipynb']['processing_error'] is None and rep['51_viz.maps.ipynb']['processing_error'] is None


def test_index_in_chromium(site):
    tmp, proj, docs, r = site
    shot = ARTEFACTS/'index.png'
    dom = browse(docs/'index.html', tmp, shot)
    links = set(re.findall(r"href=['\"]([^'\"#]+\.html)", dom))
    assert {'nomenclature.html', 'viz.plots.html', 'viz.maps.html', 'hub.html', 'broken.html'} <= links, links
    txt = text_of(dom)
    idx_src = ''.join(c.source for c in nbformat.read(proj/'nbs'/'index.ipynb', as_version=4).cells if c.cell_type == 'markdown')
    first_prose = next(l for l in idx_src.splitlines() if l.strip() and not l.startswith(('#', '>', '!', '<', '|', '`')))
    words = re.sub(r'[*_`\[\]()]', '', first_prose).split()[:6]
    assert ' '.join(words) in txt, (words, txt[:1000])
    not_blank(shot)


def test_api_page_in_chromium(site):
    tmp, proj, docs, r = site
    shot = ARTEFACTS/'viz.plots.png'
    dom = browse(docs/'viz.plots.html', tmp, shot, size=(1280, 2400))
    txt = text_of(dom)
    assert 'Matplotlib views of FLAIR-HUB patches' in txt                         # the notebook's subtitle
    assert 'Every function takes numpy arrays or torch tensors' in txt            # its prose
    assert 'def plot_sample(' in txt and 'A mosaic of a patch' in txt              # API docs (signature + docstring)
    assert 'sample:Mapping, # sample dict' in txt.replace('\n', ' ')                # docments parameter comments
    imgs = re.findall(r'<img[^>]+src="data:image/png;base64,', dom)
    assert len(imgs) >= 3, len(imgs)                                              # figures from the executed cells
    assert '{target=' not in txt and 'flairhub-nb.github.io' not in dom            # quarto attributes / absolute links gone
    not_blank(shot)


def test_unexecuted_and_failed_pages(site):
    tmp, proj, docs, r = site
    hub = text_of(browse(docs/'hub.html', tmp))
    assert 'def open_catalog(' in hub and 'Dataset hub' in hub                       # API docs without execution
    assert 'zip(s)' in hub and 'from local mirror' in hub   # and the outputs stored in the notebook, as quarto shows them
    broken = text_of(browse(docs/'broken.html', tmp, ARTEFACTS/'broken.png'))
    assert 'Outputs not shown: executing this notebook failed' in broken and 'boom: injected failure' in broken
    unproc = text_of(browse(docs/'unprocessable.html', tmp))
    assert 'Unprocessable page' in unproc and 'Prose still shows' in unproc and 'nbdev could not process' in unproc


def test_readme_only(site):
    tmp, proj, docs, r = site
    r2 = build(proj, '--readme-only')
    assert r2.returncode == 0, r2.stderr[-3000:]
    md = (proj/'README.md').read_text()
    cells = nbformat.read(proj/'nbs'/'index.ipynb', as_version=4).cells
    title = next(l for c in cells if c.cell_type == 'markdown' for l in c.source.splitlines() if l.startswith('# '))
    assert f"\n{title}\n" in md, md[:500]                  # the title cell became a markdown heading,
    assert not md.split('\n', 2)[2].lstrip().startswith('---')  # not YAML front matter
    assert 'generated from nbs/index.ipynb' in md.splitlines()[0]


def test_every_notebook_passes_nbdev_docs_processing(tmp_path):
    "nbdev's docs processing (which runs show_doc cells and every cell holding an import) succeeds on every notebook"
    sys.path.insert(0, str(ROOT/'tools'))
    import build_docs
    proj = tmp_path/'proj'
    proj.mkdir()
    shutil.copy2(ROOT/'pyproject.toml', proj)
    shutil.copytree(ROOT/'nbs', proj/'nbs', ignore=shutil.ignore_patterns('.ipynb_checkpoints', '_*'))
    shutil.copytree(ROOT/'flairhub_nb', proj/'flairhub_nb', ignore=shutil.ignore_patterns('__pycache__'))
    proc, failed = build_docs.process_notebooks(proj, n_workers=2)
    assert not failed, '\n'.join(f"{k}: {v}" for k, v in failed.items())
    n = len(build_docs.source_notebooks(proj/'nbs'))
    assert n >= 40 and len(list(proc.rglob('*.ipynb'))) == n


def test_default_build_executes_only_widget_pages():
    "By default the site shows stored outputs (as quarto does) and runs only the notebooks whose widgets need live state"
    sys.path.insert(0, str(ROOT/'tools'))
    import build_docs
    assert build_docs.shows_widgets(ROOT/'nbs'/'51_viz.maps.ipynb') and build_docs.shows_widgets(ROOT/'nbs'/'explore.ipynb')
    assert not build_docs.shows_widgets(ROOT/'nbs'/'01_nomenclature.ipynb')
    assert not build_docs.shows_widgets(ROOT/'nbs'/'50_viz.plots.ipynb')


@pytest.mark.slow
def test_full_site(tmp_path):
    "The whole site from the repository's notebooks, every notebook executed (minutes)"
    out = tmp_path/'_docs'
    r = build(ROOT, '--out', str(out), timeout=3600)
    assert r.returncode == 0, r.stderr[-4000:]
    rep = json.loads((out/'build_report.json').read_text())
    nbs = {p.relative_to(ROOT/'nbs').as_posix() for p in (ROOT/'nbs').rglob('*.ipynb')
           if not any(s.startswith(('_', '.')) for s in p.relative_to(ROOT/'nbs').parts)}
    assert set(rep) == nbs, set(rep) ^ nbs
    dom = browse(out/'index.html', tmp_path, ARTEFACTS/'full_index.png')
    assert all(re.search(rf"href=['\"]{re.escape(n)}", dom) for n in ('viz.plots.html', 'hub.html'))
    pages = sorted(out.rglob('*.html'))
    assert len(pages) == len(nbs), (len(pages), len(nbs))
    for page in pages:  # every page, in Chromium: at least one rendered output, no error text, no machine path
        raw = page.read_text()
        assert str(ROOT) not in raw and '\x1b[' not in raw, page.name
        dom = browse(page, tmp_path)
        txt = text_of(dom)
        assert 'jp-OutputArea-output' in dom, f"{page.relative_to(out)}: no rendered output"
        bad = [w for w in ('Traceback (most recent call last)', 'could not process', 'Outputs not shown') if w in txt]
        assert not bad, (page.name, bad, txt[:1500])


def test_every_page_has_outputs_and_no_error(site):
    "Every page but the two made to fail shows rendered outputs, no traceback, no ANSI codes, no machine path"
    tmp, proj, docs, r = site
    pages = sorted(p.name for p in docs.glob('*.html'))
    assert len(pages) == 7, pages
    for name in pages:
        raw = (docs/name).read_text()
        assert '\x1b[' not in raw and '[0;31m' not in raw, f"{name}: ANSI escape codes"
        for path in {str(proj), str(proj.resolve()), str(ROOT), str(Path.home())}:
            assert path not in raw, f"{name}: machine path {path}"
        if name in FAILED_PAGES: continue
        dom = browse(docs/name, tmp)
        assert 'jp-OutputArea-output' in dom, f"{name}: no rendered output"
        txt = text_of(dom)
        assert 'Traceback' not in txt and 'Error:' not in txt and 'could not process' not in txt, (name, txt[:2000])


def test_failed_page_banner_is_clean(site):
    "The failure note of a broken page: the error's last line, without colour codes or the builder's paths"
    tmp, proj, docs, r = site
    raw = (docs/'broken.html').read_text()
    note = re.search(r"<div class=[\"']fh-note[\"']>(.*?)</div>", raw, flags=re.DOTALL).group(1)
    assert 'boom: injected failure' in note and '\x1b' not in note and '[0;' not in note, note
    assert str(proj) not in note and '/' not in note.split('(')[-1], note


@pytest.mark.slow  # a headless browser waits for the whole widget bundle: > 60 s on a loaded 2-core machine (make test-slow)
def test_widget_page_renders_offline(site):
    "viz.maps: the map widget renders from the state saved in the page, with the bundled manager and no request off the machine"
    from playwright.sync_api import sync_playwright
    from test_explore import CHROMIUM_ARGS, chromium_path
    tmp, proj, docs, r = site
    raw = (docs/'viz.maps.html').read_text()
    assert 'application/vnd.jupyter.widget-state+json' in raw and '_static/widgets/html-manager/embed-amd.js' in raw
    assert (docs/'_static'/'widgets'/'html-manager'/'embed-amd.js').is_file()
    assert (docs/'_static'/'widgets'/'jupyter-leaflet'/'index.js').is_file()
    remote = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={'width': 1280, 'height': 1600})
        def route(rt):
            u = rt.request.url
            if u.startswith(('file:', 'data:', 'blob:')): return rt.continue_()
            if not u.startswith(('http://127.0.0.1', 'http://localhost')): remote.append(u)  # the tile server is gone: local only
            return rt.abort()
        page.route('**/*', route)
        try:
            page.goto((docs/'viz.maps.html').as_uri())
            page.wait_for_selector('.leaflet-container', timeout=60000)
            page.wait_for_function("""() => [...document.querySelectorAll('img.leaflet-image-layer')]
                                      .some(i => i.complete && i.naturalWidth > 0)""", timeout=60000)
            n_maps = page.evaluate("() => document.querySelectorAll('.leaflet-container').length")
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            page.locator('.leaflet-container').first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTEFACTS/'viz.maps.png'))
        finally:
            browser.close()
    assert n_maps >= 1, n_maps
    assert not remote, remote[:10]


def _source_notebooks() -> set[str]:
    nbs = ROOT/'nbs'
    return {p.relative_to(nbs).as_posix() for p in nbs.rglob('*.ipynb') if not any(x.startswith(('_', '.')) for x in p.relative_to(nbs).parts)}


def test_sidebar_lists_every_notebook_with_tutorials_first():
    "nbs/sidebar.yml (custom_sidebar = true): every notebook once; the tutorials in their own section, before the API pages"
    sys.path.insert(0, str(ROOT/'tools'))
    from build_docs import sidebar_order
    order = sidebar_order(ROOT/'nbs')
    assert set(order) == _source_notebooks(), set(order) ^ _source_notebooks()
    tutorials = [k for k, (_, sec) in sorted(order.items(), key=lambda kv: kv[1][0]) if sec == 'Tutorials']
    assert tutorials[:2] == ['train.ipynb', 'explore.ipynb'] and 'tutorials/zonal.ipynb' in tutorials, tutorials
    assert all(order[t][0] < order['00_config.ipynb'][0] for t in tutorials)
    assert 'custom_sidebar = true' in (ROOT/'pyproject.toml').read_text()  # nbdev-docs keeps our sidebar.yml


def test_offline_sidebar_follows_sidebar_yml(site):
    "The offline site's sidebar has the sections of nbs/sidebar.yml (pages it does not list fall back to their number)"
    tmp, proj, docs, r = site
    raw = (docs/'index.html').read_text()
    groups = re.findall(r"<li class='fh-group'>([^<]+)</li>", raw)
    assert groups[:4] == ['Home', 'Core', 'Visualisation', 'Hub'], groups
    nav = raw[raw.index("id='fh-sidebar'"):raw.index('</nav>')]
    assert nav.index('nomenclature.html') < nav.index('viz.plots.html') < nav.index('hub.html'), nav
