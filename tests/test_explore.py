"Run nbs/explore.ipynb headless through papermill and check it built real widgets and figures"
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


def test_figures_and_download(executed):
    tmp, nb = executed
    assert len(_mimes(nb).get('image/png', [])) >= 4  # mosaic, CIR, prediction, class distributions
    down = tmp/'work'/'downloaded'
    assert (down/'D004-2021_AERIAL_RGBI').is_dir() and (down/'GLOBAL_ALL_MTD').is_dir()
    assert (tmp/'work'/'toy'/'csv').is_dir()
