#!/usr/bin/env python
"""Regenerate the two README pictures: the exploration map and a zonal prediction.

Run from the repository root, with the project's virtual environment:

    .venv/bin/python tools/readme_images.py nbs/images                        # trains the demo model first (a few minutes on CPU)
    .venv/bin/python tools/readme_images.py nbs/images --demo /path/demo_out   # reuse a `make demo` / `run_demo` output folder

It writes, into the output folder:

- `explore_map.png`: a real screenshot of the `flairhub_nb.viz.maps.explore` widget (leafmap, ipyleaflet backend)
  on a small toy dataset: patch footprints coloured by split, one patch selected with its aerial image under its
  COSIA label overlay (opacity 0.55) and the class legend. How: a toy set is generated in a temporary folder, a
  one-cell notebook building the map is written next to it, JupyterLab (`.venv/bin/jupyter lab`) is started on
  127.0.0.1 without token and with its configuration, runtime, settings and workspace folders in the temporary
  folder, and headless Chromium, driven through its DevTools protocol (`websocket-client`, already a JupyterLab
  dependency), opens the notebook, runs it (`notebook:run-all-cells`), waits until the map, the footprints and the
  overlay image are drawn, and captures the widget's output area. The widget's JavaScript comes from the JupyterLab
  extensions installed in `.venv` (jupyter-leaflet, @jupyter-widgets); nothing is fetched from the network (no
  basemap: the map background stays grey).
- `zonal_prediction.png`: the toy zone's aerial input, its toy COSIA label, the demo model's zonal prediction (the
  `*_argmax.tif` written by `flairhub_nb.zonal.cli.predict_zone`) and the errors, with the class legend
  (`flairhub_nb.viz.plots.plot_prediction`). The demo outputs come from `--demo DIR` (a folder holding `zone/` and
  `zonal/` from `flairhub_nb.demo.run_demo`), or are made by `run_demo(<tmp>, epochs=--epochs)`.

Needs: Chromium (Debian: `apt-get install -y chromium`; `--chromium PATH` for another binary), JupyterLab with the
jupyter-leaflet and ipywidgets extensions (all in `.venv`), and only loopback network access. `--only map|zonal`
makes one of the two pictures. Each picture is checked to be under 80 kB (it is saved as a palette PNG of 256, 128
or 96 colours, the first under the limit, when the full-colour one is larger; tests/test_notebook_outputs.py checks
the committed ones).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_BYTES = 80_000
TASK = 'AERIAL_LABEL-COSIA'


def step(msg: str):
    "A progress line"
    print(f"[readme_images {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def save_png(img, path: Path) -> Path:
    "Save an (H,W,3|4) uint8 array or PIL image as PNG, as a palette of fewer colours while the file exceeds MAX_BYTES"
    from PIL import Image
    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    im = im.convert('RGB')
    im.save(path, optimize=True)
    for colors in (256, 128, 96):
        if path.stat().st_size <= MAX_BYTES: break
        im.quantize(colors=colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(path, optimize=True)
    if path.stat().st_size > MAX_BYTES: raise RuntimeError(f"{path}: {path.stat().st_size} bytes, over {MAX_BYTES}")
    return path

# ---------------------------------------------------------------------------------------------------- zonal picture

def demo_outputs(demo: Path|None, work: Path, epochs: int) -> tuple[Path, Path, Path]:
    "(aerial input, toy label, argmax prediction) of the demo's toy zone; runs the demo when `demo` is None"
    if demo is None:
        step(f"no --demo folder: running flairhub_nb.demo.run_demo({work/'demo'}, epochs={epochs}) (a few minutes on CPU)")
        from flairhub_nb.demo import run_demo
        run_demo(work/'demo', epochs=epochs)
        demo = work/'demo'
    zone, zonal = Path(demo)/'zone', Path(demo)/'zonal'
    aerial, label = sorted(zone.glob('*_AERIAL_RGBI.tif')), sorted(zone.glob(f'*_{TASK}.tif'))
    pred = sorted(zonal.glob(f'*_{TASK}_argmax.tif'))
    if not (aerial and label and pred):
        raise FileNotFoundError(f"{demo}: expected zone/*_AERIAL_RGBI.tif, zone/*_{TASK}.tif and zonal/*_{TASK}_argmax.tif "
                                "(the outputs of flairhub_nb.demo.run_demo)")
    return aerial[0], label[0], pred[0]


def zonal_picture(out: Path, demo: Path|None, work: Path, epochs: int) -> Path:
    "Aerial input, toy label, zonal prediction and errors of the demo zone, with the COSIA legend"
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from flairhub_nb.viz.plots import legend_handles, plot_prediction, read_decimated, stretch
    aerial, label, pred = demo_outputs(demo, work, epochs)
    step(f"zonal picture from {pred}")
    img, _ = read_decimated(aerial, 1024, bands=[1, 2, 3])
    lab, (lb, _) = read_decimated(label, 1024)
    prd, (pb, _) = read_decimated(pred, 1024)
    if lab.shape != prd.shape or lb != pb:
        raise ValueError(f"{label} {lab.shape} {lb} and {pred} {prd.shape} {pb}: label and prediction grids differ")
    fig = plot_prediction(lab[0], prd[0], TASK, image=stretch(img), size=3.2)
    for ax, name in zip(fig.axes, ['aerial input (RGB)', 'toy label', 'zonal prediction']): ax.set_title(name, fontsize=10)
    for ax in fig.axes:  # one legend below the panels instead of plot_prediction's own
        if ax.get_legend(): ax.get_legend().remove()
    for leg in list(fig.legends): leg.remove()
    classes = sorted(set(np.unique(lab).tolist()) | set(np.unique(prd).tolist()))
    fig.legend(handles=legend_handles(TASK, classes), loc='lower center', ncol=min(len(classes), 7), fontsize=8, frameon=False)
    w, h = (pb[2] - pb[0]), (pb[3] - pb[1])
    fig.suptitle(f"Zonal inference of the demo model over a {w:g} m x {h:g} m toy zone ({pred.name})", fontsize=11)
    rows = -(-len(classes) // 7)
    fig.set_size_inches(13, 3.6 + 0.25*rows)
    fig.tight_layout(rect=(0, 0.055*rows + 0.01, 1, 1))
    path = out/'zonal_prediction.png'
    fig.savefig(path, dpi=100, facecolor='white'); plt.close(fig)
    from PIL import Image
    save_png(Image.open(path), path)
    step(f"wrote {path} ({path.stat().st_size // 1000} KB)")
    return path

# ------------------------------------------------------------------------------------------------------ map picture

MAP_CELL = '''\
import asyncio
from flairhub_nb.viz.maps import explore
w = explore({toy!r}, color_by='split', patch_id={pid!r})
ex = w.explorer
ex.select({pid!r}, 'AERIAL_RGBI')
ex.overlay = None           # keep the aerial image under the label overlay drawn next
ex.opacity.value = 0.55
ex.select({pid!r}, 'AERIAL_LABEL-COSIA')
for t in asyncio.all_tasks():  # drop the pending fit_bounds zooms, to show the neighbouring footprints too
    if '_fit_bounds' in repr(t.get_coro()): t.cancel()
ex.map.zoom_snap = 0.25
ex.map.center, ex.map.zoom = {center!r}, {zoom}
w
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def wait_http(url: str, timeout: float, what: str):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r: return r.read()
        except OSError: time.sleep(0.5)
    raise TimeoutError(f"{what} did not answer on {url} within {timeout:.0f} s")


def map_notebook(work: Path) -> tuple[Path, str]:
    "A toy dataset and a one-cell notebook building the map on it; returns (notebook, selected patch id)"
    import nbformat
    import numpy as np

    from flairhub_nb.toy.dataset import make_toy_dataset
    from flairhub_nb.viz.maps import patch_footprints
    toy = work/'toy'
    step(f"toy dataset in {toy} (12 train / 4 valid / 4 test patches of 128 px)")
    make_toy_dataset(toy, n_train=12, n_val=4, n_test=4, patch_px=128, progress=False, workers=0)
    fp = patch_footprints(toy)
    # the (train patch, patch of another split) pair shown at the largest zoom in a ~1000 x 480 px map view
    g = fp.to_crs(3857).geometry; c = g.centroid; xy = np.c_[c.x, c.y]; split = np.asarray(fp['split'], dtype=str)
    side = float((g.bounds['maxx'] - g.bounds['minx']).max())
    dx, dy = (np.abs(xy[:, None, k] - xy[None, :, k]) + side for k in (0, 1))
    res = np.maximum(dx / 1000, dy / 480)  # metres (EPSG:3857) per pixel needed to see both
    res[(split[:, None] == split[None]) | (split[:, None] != 'train')] = np.inf
    i, j = np.unravel_index(np.argmin(res), res.shape)
    zoom = float(np.floor(4 * np.log2(156543.03 / res[i, j])) / 4)  # web-mercator zoom, in quarter steps
    a, b = fp.geometry.iloc[i].centroid, fp.geometry.iloc[j].centroid
    center = [round((a.y + b.y) / 2, 6), round((a.x + b.x) / 2, 6)]
    d = np.hypot(*(xy[i] - xy[j]))
    pid = fp['patch_id'].iloc[i]
    step(f"selected {pid} (train), neighbour {fp['patch_id'].iloc[j]} ({fp['split'].iloc[j]}) {d:.0f} m away, zoom {zoom:g}")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(MAP_CELL.format(toy=str(toy), pid=pid, center=center, zoom=zoom))]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3 (ipykernel)', 'language': 'python'}
    path = work/'explore_map.ipynb'
    nbformat.write(nb, path)
    return path, pid


def start_lab(work: Path, port: int) -> subprocess.Popen:
    "JupyterLab on 127.0.0.1:port, no token, all its state in `work`"
    cfg = work/'jupyter_config'
    (cfg/'labconfig').mkdir(parents=True, exist_ok=True)
    (cfg/'labconfig'/'page_config.json').write_text(json.dumps({'disabledExtensions': {
        '@jupyterlab/apputils-extension:announcements': True}}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(work/'jupyter_runtime'),
               JUPYTERLAB_SETTINGS_DIR=str(work/'lab_settings'), JUPYTERLAB_WORKSPACES_DIR=str(work/'lab_workspaces'),
               IPYTHONDIR=str(work/'ipython'), HF_HUB_OFFLINE='1', MPLBACKEND='Agg')
    exe = Path(sys.executable).parent/'jupyter'
    cmd = [str(exe), 'lab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', '--port-retries=0',
           f'--ServerApp.root_dir={work}', "--IdentityProvider.token=", "--ServerApp.password=",
           '--ServerApp.disable_check_xsrf=True', '--LabApp.expose_app_in_browser=True',
           '--LabServerApp.extension_manager=readonly', '--ServerApp.terminals_enabled=False']
    if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')  # loopback only, in a container
    step(f"starting JupyterLab on http://127.0.0.1:{port}/ (log: {work/'lab.log'})")
    p = subprocess.Popen(cmd, cwd=work, env=env, stdout=(work/'lab.log').open('w'),
                         stderr=subprocess.STDOUT)
    wait_http(f'http://127.0.0.1:{port}/api', 90, 'JupyterLab')
    return p


class Chrome:
    "Headless Chromium driven through the DevTools protocol"
    def __init__(self, binary: str, work: Path, size: tuple[int, int]):
        import websocket
        self.port = free_port()
        cmd = [binary, '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
               '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-default-apps',
               '--disable-extensions', f'--user-data-dir={work/"chromium"}', f'--window-size={size[0]},{size[1]}',
               '--remote-debugging-address=127.0.0.1', f'--remote-debugging-port={self.port}', 'about:blank']
        step(f"starting headless Chromium (DevTools on 127.0.0.1:{self.port})")
        self.proc = subprocess.Popen(cmd, stdout=(work/'chromium.log').open('w'),
                                     stderr=subprocess.STDOUT)
        wait_http(f'http://127.0.0.1:{self.port}/json/version', 60, 'Chromium')
        pages = json.loads(wait_http(f'http://127.0.0.1:{self.port}/json/list', 10, 'Chromium'))
        url = next(p['webSocketDebuggerUrl'] for p in pages if p['type'] == 'page')
        self.ws = websocket.create_connection(url, timeout=120, suppress_origin=True)
        self.n = 0
        self.call('Emulation.setDeviceMetricsOverride', width=size[0], height=size[1], deviceScaleFactor=1, mobile=False)
        self.call('Emulation.setFocusEmulationEnabled', enabled=True)  # JupyterLab tracks the current notebook by focus

    def call(self, method: str, **params):
        self.n += 1; self.ws.send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == self.n:
                if 'error' in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})

    def js(self, expr: str):
        r = self.call('Runtime.evaluate', expression=expr, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in r: raise RuntimeError(f"{expr[:80]}...: {r['exceptionDetails']}")
        return r['result'].get('value')

    def wait(self, expr: str, timeout: float, what: str):
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                v = self.js(expr)
                if v: return v
            except RuntimeError: pass
            time.sleep(1)
        raise TimeoutError(f"{what}: not seen within {timeout:.0f} s ({expr})")

    def close(self):
        try: self.ws.close()
        finally:
            self.proc.terminate()
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired: self.proc.kill()


_OUTPUT = "document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')"
_READY = f"""(() => {{ const o = {_OUTPUT}; if (!o) return false;
  const img = o.querySelector('.leaflet-image-layer'); const paths = o.querySelectorAll('path.leaflet-interactive');
  return !!(o.querySelector('.leaflet-container') && img && img.complete && img.naturalWidth > 0 && paths.length > 0
            && o.querySelector('.widget-html-content') && o.querySelector('.widget-html-content').innerText.length > 0); }})()"""


def map_picture(out: Path, work: Path, chromium: str, size: tuple[int, int] = (1280, 1100)) -> Path:
    "Screenshot of the exploration map widget, run in JupyterLab and captured with headless Chromium"
    import base64
    import io

    from PIL import Image
    nb, pid = map_notebook(work)
    port = free_port()
    lab = start_lab(work, port); chrome = None
    try:
        chrome = Chrome(chromium, work, size)
        step(f"opening {nb.name} in JupyterLab and running it")
        chrome.call('Page.enable')
        chrome.call('Page.navigate', url=f'http://127.0.0.1:{port}/lab/tree/{nb.name}?reset')
        chrome.wait("!!(window.jupyterapp && document.querySelector('.jp-NotebookPanel .jp-Cell'))", 120, 'notebook open')
        panel = "Array.from(window.jupyterapp.shell.widgets('main')).find(w => w.sessionContext)"
        chrome.wait(f"(() => {{ const w = {panel}; return !!w && w.sessionContext.session?.kernel?.status === 'idle'; }})()",
                    180, 'kernel idle')
        chrome.js(f"(() => {{ window.jupyterapp.shell.activateById({panel}.id); }})()")
        chrome.wait("!!window.jupyterapp.shell.currentWidget", 30, 'notebook active')
        chrome.js("window.jupyterapp.commands.execute('application:toggle-left-area')"
                  ".then(() => window.jupyterapp.commands.execute('notebook:run-all-cells'))")
        step("waiting for the map, its footprints and the overlay to be drawn")
        chrome.wait(_READY, 240, 'map widget drawn')
        time.sleep(3)  # let Leaflet finish its zoom animation
        chrome.js(f"{_OUTPUT}.scrollIntoView({{block: 'start'}})"); time.sleep(1)
        r = chrome.js(f"(() => {{ const b = {_OUTPUT}.getBoundingClientRect(); "
                      "return [b.left, b.top, b.width, b.height]; })()")
        step(f"capturing the widget ({r[2]:.0f} x {r[3]:.0f} px)")
        shot = chrome.call('Page.captureScreenshot', format='png', captureBeyondViewport=True,
                           clip={'x': r[0], 'y': r[1], 'width': r[2], 'height': r[3], 'scale': 1})
        img = Image.open(io.BytesIO(base64.b64decode(shot['data'])))
    except Exception:
        if chrome:  # the page as it was, to see what went wrong (kept with --keep)
            (work/'failed_page.png').write_bytes(base64.b64decode(chrome.call('Page.captureScreenshot', format='png')['data']))
            step(f"failed; page screenshot: {work/'failed_page.png'}, JupyterLab log: {work/'lab.log'}")
        raise
    finally:
        if chrome: chrome.close()
        lab.terminate()
        try: lab.wait(20)
        except subprocess.TimeoutExpired: lab.kill()
    path = save_png(img, out/'explore_map.png')
    step(f"wrote {path} ({path.stat().st_size // 1000} KB): patch {pid} selected")
    return path


def main(argv: list|None = None) -> int:
    p = argparse.ArgumentParser(description='Regenerate the README pictures (exploration map, zonal prediction)')
    p.add_argument('out', type=Path, help='output folder, e.g. nbs/images')
    p.add_argument('--demo', type=Path, default=None, help='existing run_demo output folder (zone/, zonal/)')
    p.add_argument('--epochs', type=int, default=6, help='demo training epochs when --demo is not given')
    p.add_argument('--chromium', default=shutil.which('chromium') or shutil.which('chromium-browser') or '/usr/bin/chromium')
    p.add_argument('--only', choices=['map', 'zonal'], default=None)
    p.add_argument('--keep', action='store_true', help='keep the temporary folder (logs, toy data, notebook)')
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='readme_images_'))
    try:
        if a.only in (None, 'zonal'): zonal_picture(a.out.resolve(), a.demo, work, a.epochs)
        if a.only in (None, 'map'): map_picture(a.out.resolve(), work, a.chromium)
    finally:
        if a.keep: step(f"kept {work}")
        else: shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
