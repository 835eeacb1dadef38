"""FlairHubDataset in DataLoader worker processes: same batches as in-process, picklable under spawn,
and data errors raised in a worker reach the caller naming the file."""
import shutil

import pytest
import torch
from torch.utils.data import DataLoader

from flairhub_nb.data.dataset import FlairHubDataset, pad_collate
from flairhub_nb.data.io import patch_path
from flairhub_nb.testing import load_safetensors, reference_dir

PRE = reference_dir() / 'preprocessing'
IDS = ['D006-2020_FF-S1-14_5-5', 'D006-2020_FF-S1-14_5-6', 'D032-2019_UN-S1-U9_2-3']


def _cfg(run='filter_only'):
    "The fixture config, its relative paths resolved against dataset/csv/ (the reference's working directory)"
    from flairhub_nb.config import load_config
    return load_config(PRE / 'configs' / f'config_{run}.yaml', base_dir=PRE / 'dataset' / 'csv', validate=False)


@pytest.mark.parametrize('context', ['fork', 'spawn'])
def test_workers_match_reference_collate(context):
    ds = FlairHubDataset(_cfg(), 'test', base_dir=PRE / 'dataset' / 'csv')
    dl = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=pad_collate, multiprocessing_context=context)
    (batch,) = list(dl)
    assert batch['patch_id'] == IDS
    exp = load_safetensors(PRE / 'expected' / 'filter_only' / 'collated_timeseries.safetensors')
    for key, val in exp.items():
        assert batch[key].shape == val.shape, key
        torch.testing.assert_close(batch[key], val, atol=1e-5, rtol=0)
    assert batch['SENTINEL2_TS_PAD_MASK'].sum().item() == 1
    assert batch['AERIAL_LABEL-COSIA'].dtype == torch.int64


def test_worker_error_names_file(tmp_path):
    root = tmp_path / 'dataset'
    shutil.copytree(PRE / 'dataset', root)
    ds = FlairHubDataset(_cfg(), root / 'csv' / 'FIXTURE_TEST.csv')
    patch_path(root, IDS[1], 'DEM_ELEV').unlink()  # after the construction-time check: the worker finds it missing
    dl = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=pad_collate)
    with pytest.raises(FileNotFoundError, match='D006-2020_DEM_ELEV_FF-S1-14_5-6.tif: file not found') as e:
        list(dl)
    msg = str(e.value)
    assert '\n' not in msg and msg.endswith('file not found (in DataLoader worker process 1)'), msg
    assert 'Traceback' in e.value.worker_traceback


def test_worker_error_reaches_the_cli_as_one_line(tmp_path, capsys, monkeypatch):
    "A DataLoader worker's data error printed by a command: one line naming the file, not the worker's traceback"
    from flairhub_nb.cli import run_command
    root = tmp_path / 'dataset'
    shutil.copytree(PRE / 'dataset', root)
    ds = FlairHubDataset(_cfg(), root / 'csv' / 'FIXTURE_TEST.csv')
    patch_path(root, IDS[0], 'SPOT_RGBI').write_bytes(b'II*\x00garbage')
    cfg = tmp_path / 'c.yaml'
    cfg.write_text('{}')

    def run(_cfg):
        list(DataLoader(ds, batch_size=1, num_workers=1, collate_fn=pad_collate))
    import sys, types
    monkeypatch.setitem(sys.modules, '_fake_runner', types.SimpleNamespace(run=run))
    rc = run_command('flairhub', ['--config', str(cfg), '--no-file-check'], lambda *a, **k: {}, '_fake_runner:run', 'x')
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert 'RasterReadError: ' in err[0] and 'D006-2020_SPOT_RGBI_FF-S1-14_5-5.tif: cannot read GeoTIFF' in err[0], err
