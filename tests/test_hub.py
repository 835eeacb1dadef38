"End-to-end runs of the `flairhub_download` command (python -m flairhub_nb.hub) against local mirrors, offline"
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from flairhub_nb.hub import ZIPS_SUBDIR, extracted_marker, main, make_local_mirror

ENV = {**os.environ, 'HF_HUB_OFFLINE': '1'}


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'flairhub_nb.hub', *map(str, args)], env=ENV, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def mirror(tmp_path):
    return make_local_mirror(tmp_path/'mirror')


def test_list_and_download_then_resume(mirror, tmp_path):
    r = cli('--list', '--repo-dir', mirror, '--domain', 'D033', '--year', '2021')
    assert r.returncode == 0, r.stderr
    assert 'D033-2021_AERIAL_RGBI.zip' in r.stdout and 'D033-2018' not in r.stdout and '3 zip(s)' in r.stdout
    out = tmp_path/'ds'
    r = cli('--repo-dir', mirror, '--domain', 'D033', '--year', '2021', '--modality', 'AERIAL_RGBI', 'ALL_LABEL-LPIS',
            '--out', out)
    assert r.returncode == 0, r.stderr
    tifs = sorted(p.relative_to(out).as_posix() for p in out.glob('D033-2021_*/*/*.tif'))
    assert tifs == [f'D033-2021_{m}/UN-S1-U9/D033-2021_{m}_UN-S1-U9_{i}-0.tif'
                    for m in ('AERIAL_RGBI', 'ALL_LABEL-LPIS') for i in (0, 1)]
    # the extracted files are the zips' bytes
    with zipfile.ZipFile(mirror/'data'/'D033-2021_AERIAL_RGBI.zip') as zf:
        name = 'D033-2021_AERIAL_RGBI/UN-S1-U9/D033-2021_AERIAL_RGBI_UN-S1-U9_0-0.tif'
        assert zf.read(name) == (out/name).read_bytes()
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob('*') if p.is_file()}
    r = cli('--repo-dir', mirror, '--domain', 'D033', '--year', '2021', '--modality', 'AERIAL_RGBI,ALL_LABEL-LPIS', '--out', out)
    assert r.returncode == 0 and r.stdout.count('present') >= 6, r.stdout  # zip and extraction of 3 zips
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.rglob('*') if p.is_file()}


def test_corrupt_zip_fails_cleanly_then_recovers(mirror, tmp_path):
    "Failure injection: a truncated zip in the source gives exit 2 naming it, no half-extracted folder; fixed, a rerun completes"
    good = (mirror/'data'/'D004-2021_AERIAL_RGBI.zip').read_bytes()
    (mirror/'data'/'D004-2021_AERIAL_RGBI.zip').write_bytes(good[:200])
    out = tmp_path/'ds'
    r = cli('--repo-dir', mirror, '--domain', 'D004', '--year', '2021', '--data-type', 'image', '--out', out)
    assert r.returncode == 2, (r.stdout, r.stderr)
    errors = [l for l in r.stderr.splitlines() if l.startswith('flairhub_download:')]  # (the rest is the tqdm bar)
    assert len(errors) == 1 and 'D004-2021_AERIAL_RGBI.zip: not a valid zip' in errors[0], r.stderr
    assert not (out/'D004-2021_AERIAL_RGBI').exists()
    assert not [p for p in out.iterdir() if p.name.startswith('.D004')]  # no temporary folder left behind
    (mirror/'data'/'D004-2021_AERIAL_RGBI.zip').write_bytes(good)
    r = cli('--repo-dir', mirror, '--domain', 'D004', '--year', '2021', '--data-type', 'image', '--out', out)
    assert r.returncode == 0, r.stderr
    assert extracted_marker(out, 'D004-2021_AERIAL_RGBI').exists()
    assert len(list((out/'D004-2021_AERIAL_RGBI'/'UN-S1-U9').glob('*.tif'))) == 2


def test_interrupted_extraction_is_redone(mirror, tmp_path):
    "A folder left without its marker (a crash between rename and marker) is replaced on the next run"
    out = tmp_path/'ds'
    assert main(['--repo-dir', str(mirror), '--domain', 'D004', '--modality', 'AERIAL-RLT_PAN', '--no-metadata', '--out', str(out)]) == 0
    target = out/'D004-195X_AERIAL-RLT_PAN'
    extracted_marker(out, target.name).unlink()
    (target/'stale.txt').write_text('left over')
    assert main(['--repo-dir', str(mirror), '--domain', 'D004', '--modality', 'AERIAL-RLT_PAN', '--no-metadata', '--out', str(out)]) == 0
    assert not (target/'stale.txt').exists() and extracted_marker(out, target.name).exists()
    assert (out/ZIPS_SUBDIR/'data'/'D004-195X_AERIAL-RLT_PAN.zip').exists()


def test_errors_exit_nonzero_with_one_line(mirror, tmp_path):
    r = cli('--repo-dir', mirror, '--out', tmp_path/'all')  # no filter
    assert r.returncode == 2 and 'pass --all' in r.stderr
    r = cli('--list', '--repo-dir', tmp_path/'no_mirror')
    assert r.returncode == 2 and "no 'data/' folder" in r.stderr
    r = cli('--list')  # the Hub, but HF_HUB_OFFLINE=1: refused without touching the network
    assert r.returncode == 1 and 'offline' in r.stderr and '--repo-dir' in r.stderr
    assert r.stderr.strip().count('\n') == 0, r.stderr


def test_console_script(mirror):
    "The installed `flairhub_download` entry point (flairhub_nb.cli:download_main) reaches the same command"
    exe = Path(sys.executable).parent/'flairhub_download'
    assert exe.exists(), f"{exe}: console script missing; reinstall the package (pip install -e .)"
    r = subprocess.run([str(exe), '--list', '--repo-dir', str(mirror), '--year', '195X'], env=ENV, capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert 'D004-195X_AERIAL-RLT_PAN.zip' in r.stdout and '2 zip(s)' in r.stdout  # with GLOBAL_ALL_MTD.zip
