"Run nbs/explore.ipynb headless through papermill (widgets and figures built), then in JupyterLab in Chromium (the map as a user sees it)"
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'


def _mimes(nb: dict) -> dict:
    "mime type -> list of (cell index, data) over all outputs"
    out = {}
    for i, cell in enumerate(nb['cells']):
        for o in cell.get('outputs', []):
            for k, v in o.get('data', {}).items(): out.setdefault(k, []).append((i, v))
    return out


@pytest.fixture(scope='module')
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('explore')
    out_nb = tmp/'explore_out.ipynb'
    env = {k: v for k, v in os.environ.items() if k != 'MPLBACKEND'}  # the kernel's inline backend shows figures
    env['HF_HUB_OFFLINE'] = '1'
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT/'nbs'/'explore.ipynb'), str(out_nb),
                        '-p', 'out_dir', str(tmp/'work'), '-p', 'n_train', '4', '-p', 'patch_px', '64',
                        '--cwd', str(tmp), '-k', 'python3'], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, json.loads(out_nb.read_text())


def test_no_errors_and_parameters_injected(executed):
    tmp, nb = executed
    assert not [o for c in nb['cells'] for o in c.get('outputs', []) if o.get('output_type') == 'error']
    injected = [c for c in nb['cells'] if 'injected-parameters' in c.get('metadata', {}).get('tags', [])]
    assert injected and "patch_px = 64" in ''.join(injected[0]['source'])


def test_widgets_built(executed):
    tmp, nb = executed
    views = _mimes(nb).get(WIDGET_MIME, [])
    assert len(views) >= 2, 'expected the map and the downloader panel as widget views'
    assert all(v['model_id'] for _, v in views)
    # the widget state saved by papermill has the leaflet map and its image overlay (a PNG data URL)
    state = nb['metadata'].get('widgets', {}).get('application/vnd.jupyter.widget-state+json', {}).get('state', {})
    models = [m['model_name'] for m in state.values()]
    assert 'LeafletMapModel' in models and 'LeafletImageOverlayModel' in models, sorted(set(models))
    overlays = [m['state'] for m in state.values() if m['model_name'] == 'LeafletImageOverlayModel']
    assert any(o['url'].startswith('data:image/png;base64,') for o in overlays)
    # the zonal layer: tiles from the local tile server, coloured by the class table
    tiles = [m['state'] for m in state.values() if m['model_name'] == 'LeafletTileLayerModel']
    assert any('api/tiles/{z}/{x}/{y}.png' in t['url'] and 'colormap=custom' in t['url'] for t in tiles), tiles


def test_figures_and_download(executed):
    tmp, nb = executed
    assert len(_mimes(nb).get('image/png', [])) >= 4  # mosaic, CIR, prediction, class distributions
    down = tmp/'work'/'downloaded'
    assert (down/'D004-2021_AERIAL_RGBI').is_dir() and (down/'GLOBAL_ALL_MTD').is_dir()
    assert (tmp/'work'/'toy'/'csv').is_dir()


# ----------------------------------------------------------------------------------------------- in a real browser
# JupyterLab from this venv on 127.0.0.1 with a token, driven by Playwright in Debian's Chromium (Playwright's own
# browser download needs the network). The notebook is a copy in a temporary folder; screenshots are kept in
# tests/artefacts/explore/ (or $FLAIRHUB_ARTEFACTS/explore/), which git ignores.
ARTEFACTS = Path(os.environ.get('FLAIRHUB_ARTEFACTS', ROOT/'tests'/'artefacts'))/'explore'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                 '--disable-background-networking', '--disable-component-update', '--disable-sync']


def chromium_path() -> str:
    "Debian's Chromium, installed with apt-get when missing and running as root (the Makefile's `chromium` target)"
    import shutil
    exe = shutil.which('chromium') or ('/usr/bin/chromium' if Path('/usr/bin/chromium').exists() else None)
    if exe: return exe
    if os.geteuid() == 0 and shutil.which('apt-get'):
        env = {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
        subprocess.run(['apt-get', 'update', '-qq'], check=True, capture_output=True, env=env, timeout=600)
        subprocess.run(['apt-get', 'install', '-y', '-qq', 'chromium'], check=True, capture_output=True, env=env, timeout=900)
        exe = shutil.which('chromium')
    if not exe: pytest.fail("Chromium is needed for the browser test: `sudo apt-get install -y chromium` (or `make chromium`)")
    return exe


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "A JupyterLab server on 127.0.0.1 serving a folder with a copy of nbs/explore.ipynb (small toy parameters)"
    import secrets
    import time
    import urllib.request
    tmp = tmp_path_factory.mktemp('lab')
    nb = json.loads((ROOT/'nbs'/'explore.ipynb').read_text())
    params = next(c for c in nb['cells'] if 'parameters' in c.get('metadata', {}).get('tags', []))
    src = ''.join(params['source']).replace('n_train = 6 ', 'n_train = 2 ').replace('patch_px = 128 ', 'patch_px = 64 ')
    assert 'n_train = 2 ' in src and 'patch_px = 64 ' in src, src
    params['source'] = src + f"\nout_dir = {str(tmp/'work')!r}\n"
    nb['metadata']['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3 (ipykernel)', 'language': 'python'}
    (tmp/'explore.ipynb').write_text(json.dumps(nb))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', 'JUPYTER_CONFIG_DIR': str(tmp/'cfg'),
           'JUPYTERLAB_SETTINGS_DIR': str(tmp/'settings'), 'JUPYTERLAB_WORKSPACES_DIR': str(tmp/'ws'),
           'JUPYTER_RUNTIME_DIR': str(tmp/'runtime')}
    env.pop('MPLBACKEND', None)  # the kernel's inline backend
    log = open(tmp/'jupyterlab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={tmp}', '--LabApp.news_url=None',
                             '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                             '--LabApp.extension_manager=readonly', '--allow-root'], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f'{base}/api/status?token={token}', timeout=5) as r:
                    if r.status == 200: break
            except OSError: time.sleep(0.5)
            assert proc.poll() is None, (tmp/'jupyterlab.log').read_text()[-3000:]
        else: pytest.fail('JupyterLab did not start in 2 minutes:\n' + (tmp/'jupyterlab.log').read_text()[-3000:])
        yield base, token, tmp
    finally:
        proc.terminate()
        try: proc.wait(timeout=20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()


# page-side checks: the leaflet container, the patch overlay's and the tiles' images, the scale bar
MAP_STATE_JS = """() => {
  const maps = [...document.querySelectorAll('.jp-OutputArea .leaflet-container')];
  if (!maps.length) return null;
  const m = maps[maps.length - 1], mr = m.getBoundingClientRect();
  const box = e => { const r = e.getBoundingClientRect(); return [r.left - mr.left, r.top - mr.top, r.width, r.height]; };
  const img = e => ({src: e.src.slice(0, 120), loaded: e.complete && e.naturalWidth > 0, box: box(e)});
  return {size: [mr.width, mr.height],
          overlays: [...m.querySelectorAll('img.leaflet-image-layer')].map(img),
          tiles: [...m.querySelectorAll('img.leaflet-tile')].map(img),
          scale: (m.querySelector('.leaflet-control-scale-line') || {}).textContent || null,
          legend: (m.querySelector('.leaflet-control .legend, .leaflet-control-container') || {}).textContent || ''};
}"""


def _wait_idle(page, timeout_s: float):
    "Wait until every code cell with code has run (a number in its prompt, none `[*]`) and the kernel is idle"
    page.wait_for_function("""() => {
      const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
        .filter(c => (c.querySelector('.cm-content') || {textContent: ''}).textContent.trim());
      const prompts = cells.map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent || '');
      const busy = document.querySelector('.jp-Notebook-ExecutionIndicator[data-status="busy"]');
      return cells.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t)) && !busy;
    }""", timeout=timeout_s*1000, polling=500)


def _run_cell(page, code: str, marker: str) -> str:
    "Add a code cell at the end of the notebook, run it and return the text of the output holding `marker`"
    page.locator('.jp-Notebook .jp-Cell').last.click()
    page.keyboard.press('Escape')
    page.keyboard.press('b')
    page.keyboard.press('Enter')
    page.keyboard.insert_text(code)
    page.keyboard.press('Shift+Enter')
    out = page.locator('.jp-OutputArea-output', has_text=marker).last
    out.wait_for(timeout=60000)
    return out.inner_text()


def test_explore_in_jupyterlab(lab):
    "Run all cells in JupyterLab, change the patch, and check the map's view, the overlay and the zonal tiles"
    from playwright.sync_api import sync_playwright
    base, token, tmp = lab
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={'width': 1400, 'height': 1000})
        errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        tile_responses = []
        page.on('response', lambda r: 'api/tiles' in r.url and tile_responses.append((r.status, r.url[:160])))
        try:
            page.goto(f'{base}/lab/tree/explore.ipynb?token={token}', timeout=120000)
            page.locator('.jp-Notebook .jp-Cell').first.wait_for(timeout=120000)
            page.wait_for_function("() => document.querySelector('.jp-Notebook') && "
                                   "[...document.querySelectorAll('.jp-Toolbar-kernelStatus, .jp-KernelStatus, "
                                   "[title*=\"Kernel\"]')].length > 0", timeout=60000)
            page.wait_for_timeout(2000)
            dialog = page.locator('.jp-Dialog button.jp-mod-accept')  # "Select Kernel": take the proposed one
            if dialog.count(): dialog.first.click()
            page.get_by_role('menuitem', name='Run', exact=True).click()
            page.get_by_text('Run All Cells', exact=True).click()
            _wait_idle(page, 150)
            page.locator('.jp-OutputArea .leaflet-container').last.scroll_into_view_if_needed()
            page.wait_for_timeout(1500)
            first = page.evaluate(MAP_STATE_JS)
            page.screenshot(path=str(ARTEFACTS/'after_run_all.png'))
            # the patch list: choose another patch, as a user would
            select = page.locator('.jp-OutputArea .widget-dropdown select').first
            options = select.locator('option').all_inner_texts()
            current = select.input_value()
            other = next(o for o in options if o.strip() and o != current)
            select.select_option(label=other)
            page.wait_for_function("""() => [...document.querySelectorAll('.jp-OutputArea img.leaflet-image-layer')]
                                      .some(i => i.complete && i.naturalWidth > 0)""", timeout=30000)
            page.wait_for_timeout(2000)
            after = page.evaluate(MAP_STATE_JS)
            page.screenshot(path=str(ARTEFACTS/'after_select.png'))
            # the view as the browser reports it to the widget model, and the chosen patch's footprint
            txt = _run_cell(page, "import json\nprint(json.dumps({'pid': ex.patch_id, 'bounds': ex.map.bounds, "
                                  "'patch': ex.footprints.set_index('patch_id').geometry[ex.patch_id].bounds}))", '"pid"')
        finally:
            page.screenshot(path=str(ARTEFACTS/'final.png'))
            browser.close()
    assert first and after, 'no Leaflet map in the outputs'
    st = json.loads(txt[txt.index('{'):txt.rindex('}') + 1])
    assert st['pid'] == other, (st['pid'], other)
    (s, w), (n, e) = st['bounds']
    x0, y0, x1, y1 = st['patch']
    assert w <= x0 and x1 <= e and s <= y0 and y1 <= n, ('the map does not show the patch', st)
    assert (e - w) < 50*(x1 - x0), ('the map is zoomed out far from the patch', st)
    # the patch overlay is loaded, inside the map and covering a good part of it
    ov = [o for o in after['overlays'] if o['loaded']]
    assert ov, after['overlays']
    W, H = after['size']
    l, t, ow, oh = ov[-1]['box']
    assert l >= -1 and t >= -1 and l + ow <= W + 1 and t + oh <= H + 1 and ow > 0.2*min(W, H), (ov[-1], after['size'])
    # the zonal layer's tiles came from the local tile server and loaded
    tiles = [x for x in first['tiles'] + after['tiles'] if 'api/tiles' in x['src']]
    assert tiles and any(x['loaded'] for x in tiles), (first['tiles'][:5], tile_responses[:5])
    assert tile_responses and all(st == 200 for st, _ in tile_responses), tile_responses[:10]
    assert all(x['loaded'] for x in after['tiles'] if 'api/tiles' in x['src']), after['tiles']
    # the scale bar, at start and after the change: metres, not thousands of kilometres
    assert first['scale'] and 'km' not in first['scale'], first['scale']
    assert after['scale'] and 'km' not in after['scale'], after['scale']
    assert not errors, errors
