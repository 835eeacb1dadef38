"""End-to-end checks of the toy generator: the command line in a subprocess, and a run killed mid-way."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rasterio

PY = sys.executable
MAIN = "import sys; from flairhub_nb.toy.zone import main; sys.exit(main())"


def run_cli(*args, timeout=300):
    return subprocess.run([PY, '-c', MAIN, *args], capture_output=True, text=True, timeout=timeout)


def test_cli_writes_set_and_zone(tmp_path):
    r = run_cli(str(tmp_path), '--n-train', '3', '--n-val', '1', '--n-test', '1', '--patch-px', '64',
                '--no-progress', '--zone', '--zone-size-m', '150', '--zone-gsd', '0.8')
    assert r.returncode == 0, r.stderr
    info = json.loads((tmp_path/'toy_dataset.json').read_text())
    assert info['patch_px'] == 64 and len(info['patch_ids']['train']) == 3
    assert (tmp_path/'csv'/'FLAIR-HUB_TOY-DATASET_TRAIN.csv').read_text().count('\n') == 4
    zone = json.loads((tmp_path/'zone'/'TOY_ZONE.json').read_text())
    with rasterio.open(zone['files']['AERIAL_RGBI']) as src: assert (src.width, src.res) == (256, (0.8, 0.8))
    assert not list(tmp_path.rglob('*.part'))


def test_cli_bad_arguments_exit_nonzero_with_one_line(tmp_path):
    r = run_cli(str(tmp_path), '--patch-px', '100', '--no-progress')
    assert r.returncode == 2
    assert r.stderr.strip().count('\n') == 0 and 'patch_px=100' in r.stderr
    r = run_cli(str(tmp_path), '--zone-only', '--zone-gsd', '0.3', '--no-progress')
    assert r.returncode == 2 and 'aerial_gsd=0.3' in r.stderr


def test_killed_run_leaves_no_complete_looking_file(tmp_path):
    code = ("from flairhub_nb.toy.dataset import make_toy_dataset; "
            f"make_toy_dataset({str(tmp_path)!r}, 40, 0, 0, patch_px=512, workers=0, progress=False)")
    p = subprocess.Popen([PY, '-c', code])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(tmp_path.rglob('*.tif'))) < 15: time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert not (tmp_path/'toy_dataset.json').exists()  # the set is not marked complete
    tifs = list(tmp_path.rglob('*.tif'))
    assert tifs
    for f in tifs:  # every file with a final name is complete and readable
        with rasterio.open(f) as src: src.read()
    # a rerun completes the set and consumes the leftover temporary files
    r = subprocess.run([PY, '-c', code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'toy_dataset.json').exists() and not list(tmp_path.rglob('*.part'))


def test_committed_configs_check_after_flairhub_toy(tmp_path):
    "configs/train_toy.yaml, configs/train_toy/ and configs/zonal_toy.yaml pass --check once flairhub_toy wrote toy_data/"
    import shutil
    from flairhub_nb.cli import flairhub_main, zonal_main
    from flairhub_nb.testing import repo_root
    shutil.copytree(repo_root()/'configs', tmp_path/'configs')
    r = run_cli(str(tmp_path/'toy_data'), '--n-train', '2', '--n-val', '1', '--n-test', '1', '--patch-px', '32', '--workers', '0',
                '--no-progress', '--zone', '--zone-size-m', '150', '--zone-gsd', '1.6', '--zone-modalities', 'AERIAL_RGBI,SENTINEL2_TS')
    assert r.returncode == 0, r.stderr
    for cfg in ('train_toy.yaml', 'train_toy'):
        assert flairhub_main(['--config', str(tmp_path/'configs'/cfg), '--check']) == 0, cfg
    (tmp_path/'toy_data'/'results'/'toy'/'checkpoints').mkdir(parents=True)
    (tmp_path/'toy_data'/'results'/'toy'/'checkpoints'/'last.ckpt').write_bytes(b'')  # what a training run leaves
    assert zonal_main(['--config', str(tmp_path/'configs'/'zonal_toy.yaml'), '--check']) == 0


def test_committed_configs_fail_check_without_toy_data(tmp_path, capsys):
    import shutil
    from flairhub_nb.cli import flairhub_main
    from flairhub_nb.testing import repo_root
    shutil.copytree(repo_root()/'configs', tmp_path/'configs')
    assert flairhub_main(['--config', str(tmp_path/'configs'/'train_toy.yaml'), '--check']) == 1
    assert 'paths.train_csv: ../toy_data/csv/FLAIR-HUB_TOY-DATASET_TRAIN.csv: file not found' in capsys.readouterr().err


def test_write_config_flags(tmp_path):
    r = run_cli(str(tmp_path/'t'), '--n-train', '2', '--n-val', '1', '--n-test', '1', '--patch-px', '32', '--workers', '0',
                '--no-progress', '--write-config', str(tmp_path/'c'/'train.yaml'), '--config-modalities', 'AERIAL_RGBI')
    assert r.returncode == 0, r.stderr
    from flairhub_nb.config import load_config
    cfg = load_config(tmp_path/'c'/'train.yaml')
    assert [m for m, on in cfg['modalities']['inputs'].items() if on] == ['AERIAL_RGBI']
    assert cfg['paths']['val_csv'] == str((tmp_path/'t'/'csv'/'FLAIR-HUB_TOY-DATASET_VALID.csv').resolve())
    r = run_cli(str(tmp_path/'t'), '--no-progress', '--write-zonal-config', str(tmp_path/'z.yaml'))
    assert r.returncode == 2 and r.stderr.strip() == 'flairhub_toy: error: --write-zonal-config needs --zone'
