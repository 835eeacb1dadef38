"""The dataset's files as shipped: a `;`-separated split CSV with `../` paths, away from the data, trains through
`flairhub --config` with `paths.data_root` set; a missing file fails before training starts, named in one line."""
from pathlib import Path

import pytest
import yaml

from flairhub_nb.cli import flairhub_main
from flairhub_nb.toy.dataset import TOY_CSV_NAMES, make_toy_dataset, write_toy_config


@pytest.fixture(scope='module')
def shipped(tmp_path_factory):
    "A toy set in data/ and its split CSVs rewritten as shipped (`;`, `../` paths) in downloads/, plus a config"
    tmp = tmp_path_factory.mktemp('shipped')
    ds = make_toy_dataset(tmp/'data', 4, 2, 2, patch_px=32, modalities=['AERIAL_RGBI'], progress=False, workers=0)
    dl = tmp/'downloads'
    dl.mkdir()
    for name in TOY_CSV_NAMES.values():
        text = (ds.root/'csv'/name).read_text()
        assert '../' in text
        (dl/name.replace('TOY-DATASET', 'SHIPPED')).write_text(text.replace(',', ';'))
    (cfg,) = write_toy_config(ds.root, tmp/'cfg'/'train.yaml', ['AERIAL_RGBI'], hyperparams={'num_epochs': 1, 'batch_size': 2},
                              hardware={'accelerator': 'cpu', 'num_workers': 0})
    c = yaml.safe_load(cfg.read_text())
    c['paths'].update({f'{k}_csv': str(dl/TOY_CSV_NAMES[s].replace('TOY-DATASET', 'SHIPPED'))
                       for k, s in (('train', 'train'), ('val', 'valid'), ('test', 'test'))})
    c['paths'].update(data_root=str(ds.root), out_folder=str(tmp/'runs'))
    c['saving'] = {'enable_progress_bar': False}
    cfg.write_text(yaml.safe_dump(c, sort_keys=False))
    return ds, cfg, tmp


def test_shipped_csv_trains_with_data_root(shipped):
    _, cfg, tmp = shipped
    assert flairhub_main(['--config', str(cfg)]) == 0
    run = tmp/'runs'/'toy'
    assert list((run/'checkpoints').glob('*.ckpt'))
    assert list(run.rglob('metrics.json'))


def test_shipped_csv_needs_data_root(shipped, capsys):
    _, cfg, tmp = shipped
    rc = flairhub_main(['--config', str(cfg), '-o', 'paths.data_root=', 'paths.out_folder=' + str(tmp/'runs_no_root')])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert 'FLAIR-HUB_SHIPPED_TRAIN.csv: 8 listed file(s) missing (AERIAL_RGBI: 4, AERIAL_LABEL-COSIA: 4)' in err[0], err


def test_missing_file_fails_before_training(shipped, capsys):
    ds, cfg, tmp = shipped
    victim = next((ds.root).glob('*_AERIAL_RGBI/*/*.tif'))
    victim.rename(victim.with_suffix('.bak'))
    try:
        rc = flairhub_main(['--config', str(cfg), '-o', 'paths.out_folder=' + str(tmp/'runs_missing')])
    finally:
        victim.with_suffix('.bak').rename(victim)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert 'MissingFilesError' in err[0] and "column 'AERIAL_RGBI'" in err[0] and victim.name in err[0], err
    assert not list(Path(tmp/'runs_missing').rglob('*.ckpt'))
