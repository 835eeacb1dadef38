"""Run nbs/train.ipynb with papermill: the toy set, a short multimodal training, curves, confusion matrix, predictions."""
import json, subprocess, sys
import pytest
from flairhub_nb.testing import repo_root

def _papermill(tmp_path, *params):
    out = tmp_path/'out.ipynb'
    cmd = [sys.executable, '-m', 'papermill', str(repo_root()/'nbs'/'train.ipynb'), str(out), '-k', 'python3',
           '-p', 'out_dir', str(tmp_path/'work'), '-p', 'toy_n_train', '8', '-p', 'toy_n_val', '4', '-p', 'toy_n_test', '4',
           *params]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-4000:]
    nb = json.loads(out.read_text())
    texts = [''.join(o.get('text', '')) + json.dumps(o.get('data', {}).get('text/plain', '')) for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    pngs = sum('image/png' in o.get('data', {}) for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', []))
    return nb, '\n'.join(texts), pngs

def test_papermill_multimodal(tmp_path):
    nb, text, pngs = _papermill(tmp_path, '-p', 'modalities', '["AERIAL_RGBI","SENTINEL2_TS"]', '-p', 'epochs', '1')
    assert 'AERIAL_LABEL-COSIA: test mIoU' in text and pngs >= 3    # curves, confusion matrix, predictions
    preds = list((tmp_path/'work'/'runs'/'toy-run'/'results_toy-run'/'predictions_toy-run'/'AERIAL_LABEL-COSIA').glob('PRED_*.tif'))
    assert len(preds) == 4

@pytest.mark.slow
def test_papermill_multitask_cosia_lpis(tmp_path):
    nb, text, pngs = _papermill(tmp_path, '-p', 'tasks', '["AERIAL_LABEL-COSIA","ALL_LABEL-LPIS"]', '-p', 'epochs', '1')
    assert 'AERIAL_LABEL-COSIA: test mIoU' in text and 'ALL_LABEL-LPIS: test mIoU' in text and pngs >= 4
