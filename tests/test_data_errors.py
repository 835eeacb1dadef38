"""FlairHubDataset in DataLoader worker processes: same batches as in-process, picklable under spawn,
and data errors raised in a worker reach the caller naming the file."""
import shutil

import pytest
import torch
import yaml
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
    patch_path(root, IDS[1], 'DEM_ELEV').unlink()
    ds = FlairHubDataset(_cfg(), root / 'csv' / 'FIXTURE_TEST.csv')
    dl = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=pad_collate)
    with pytest.raises(FileNotFoundError, match='D006-2020_DEM_ELEV_FF-S1-14_5-6.tif: file not found'):
        list(dl)
