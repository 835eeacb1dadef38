"""End-to-end runs of `flairhub_zonal` (the console script; `python -m flairhub_nb.zonal.cli` is the same command): the
reference zonal config pointed at a small synthetic zone, bad inputs, a crash (SIGKILL) and resume, two ranks writing
one zone, and the Python API (`predict_zone`) accepting and rejecting exactly the configs the command does.

The runs that are not about readers use `readers: 0` (a thread): a spawned reader costs ~3 s of interpreter and
imports per run here. The default (`readers: 1`) runs the reference run every other run is compared with, the
kill-and-resume run and the spoiled-raster run."""
import copy, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pytest
import rasterio
import torch
import yaml
from rio_cogeo.cogeo import cog_validate

os.environ.setdefault('HF_HUB_OFFLINE', '1')
from flairhub_nb.models.fusion import FlairHubModel
from flairhub_nb.models.checkpoint import save_checkpoint
from flairhub_nb.toy.zone import make_test_zone, write_test_raster, zonal_config
from flairhub_nb.config import ConfigError, load_zonal_config, zonal_training_config
from flairhub_nb.zonal.cli import predict_zone

TASK = 'AERIAL_LABEL-COSIA'


def _script(name: str) -> str:
    p = Path(sys.executable).parent / name
    return str(p) if p.exists() else (shutil.which(name) or pytest.fail(f'console script {name} not installed (pip install -e .)'))


def _cli(cfg: dict, folder: Path, name: str = 'cfg', env: dict | None = None, wait: bool = True):
    p = folder / f'{name}.yaml'
    p.write_text(yaml.safe_dump(cfg))
    cmd = [_script('flairhub_zonal'), '--config', str(p)]
    e = {**os.environ, 'HF_HUB_OFFLINE': '1', **(env or {})}
    if not wait: return subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600, check=False)


def _weights(cfg: dict, folder: Path, sizes: dict) -> str:
    torch.manual_seed(0)
    mc = zonal_training_config(load_zonal_config(cfg, need_weights=False))
    return str(save_checkpoint(FlairHubModel(mc, sizes), folder / f"w_{'_'.join(sizes)}.safetensors"))


@pytest.fixture(scope='module')
def zone(tmp_path_factory):
    d = tmp_path_factory.mktemp('zone')
    paths = make_test_zone(d / 'inputs', width_m=30.0, height_m=100.0)
    cfg = zonal_config(paths, ('AERIAL_RGBI',), img_pixels_detection=128, margin=16, output_px_meters=0.2,
                       batch_size=1, num_worker=0, use_gpu=False, monotemp_arch='test_convnext-upernet',
                       output_path=str(d / 'out'), output_name='toy', readers=0)
    cfg['model_weights'] = _weights(cfg, d, {'AERIAL_RGBI': 128})
    ref = {k: v for k, v in cfg.items() if k != 'readers'}  # the default: one reader process
    r = _cli(ref, d)  # one uninterrupted single-process run, the reference for the other tests
    return d, paths, cfg, r


def test_reference_config_end_to_end(zone):
    d, paths, _, r = zone
    assert r.returncode == 0, r.stderr
    f = d / 'out' / f'toy_{TASK}_argmax.tif'
    assert cog_validate(str(f), quiet=True)[0]
    with rasterio.open(f) as ds, rasterio.open(paths['AERIAL_RGBI']) as src:
        assert (ds.crs, ds.transform, ds.width, ds.height) == (src.crs, src.transform, src.width, src.height)
        assert ds.read(1).max() < 19
    assert (d / 'out' / f'toy_{TASK}_argmax.vrt').is_file() and (d / 'out' / 'toy_cells.gpkg').is_file()
    assert not (d / 'out' / '.toy.units.lock').exists()


def test_class_prob_and_coarser_output(zone):
    d, _, cfg, _ = zone
    r = _cli({**cfg, 'output_type': 'class_prob', 'output_px_meters': 0.5, 'output_name': 'prob'}, d, 'prob')
    assert r.returncode == 0, r.stderr
    f = d / 'out' / f'prob_{TASK}_class-prob.tif'
    assert cog_validate(str(f), quiet=True)[0]
    with rasterio.open(f) as ds:
        assert (ds.count, ds.width, ds.height, ds.res) == (19, 60, 200, (0.5, 0.5))
        s = ds.read().astype(int).sum(0)
        assert abs(s.mean() - 255) < 10  # probabilities sum to ~1 (rounding per class)


@pytest.mark.parametrize('case', ['missing', 'crs', 'cover', 'channels', 'weights', 'dates'])
def test_bad_inputs_exit_1(zone, case):
    d, paths, cfg, _ = zone
    c = json.loads(json.dumps(cfg))
    if case == 'missing':
        c['modalities']['AERIAL_RGBI']['input_img_path'] = str(d / 'nope.tif'); msg = 'nope.tif'
    elif case == 'crs':
        p = write_test_raster(d / 'spot_utm.tif', np.ones((4, 65, 20), np.uint16), 1.6, crs='EPSG:32631')
        c = zonal_config({**paths, 'SPOT_RGBI': p}, ('AERIAL_RGBI', 'SPOT_RGBI'), base=c); msg = 'has CRS'
    elif case == 'cover':
        p = write_test_raster(d / 'spot_small.tif', np.ones((4, 30, 20), np.uint16), 1.6, origin=(651000.0, 6861000.0))
        c = zonal_config({**paths, 'SPOT_RGBI': p}, ('AERIAL_RGBI', 'SPOT_RGBI'), base=c); msg = 'do not cover the zone'
    elif case == 'channels':
        p = write_test_raster(d / 'aerial_3bands.tif', np.ones((3, 500, 150), np.uint8), origin=(651000.0, 6861000.0))
        c['modalities']['AERIAL_RGBI']['input_img_path'] = str(p)  # channels [4, 1, 2] need 4 bands
        msg = 'BandCountError: AERIAL_RGBI: ' + str(p) + ' has 3 band(s) but channels [4, 1, 2]'
    elif case == 'weights':
        c['model_weights'] = str(d / 'nope.safetensors'); msg = 'model_weights'
    else:
        (d / 'bad_dates.txt').write_text('20210101\n2021-02-02\n')
        c = zonal_config(paths, ('AERIAL_RGBI', 'SENTINEL2_TS'), base=c)
        c['modalities']['SENTINEL2_TS']['dates_txt'] = str(d / 'bad_dates.txt'); msg = 'bad_dates.txt:2'
    c['output_name'] = f'bad_{case}'
    r = _cli(c, d, f'bad_{case}')
    assert r.returncode == 1, (r.returncode, r.stderr)
    err = r.stderr[r.stderr.find('flairhub_zonal: error:'):]  # the error, possibly a multi-line list of config problems
    assert err and msg in err and 'Traceback' not in r.stderr, r.stderr
    assert not list((d / 'out').glob(f'bad_{case}_*.tif'))


def test_raster_spoiled_after_its_header_exits_1_naming_it(zone):
    """A raster whose header opens (planning passes) but whose tiles are cut short: the reader process's error names
    the file, the command exits 1 with one line, the spoiled cell has no marker (the cells read before it do)"""
    d, paths, cfg, _ = zone
    cut = d / 'aerial_cut.tif'
    cut.write_bytes(Path(paths['AERIAL_RGBI']).read_bytes()[:Path(paths['AERIAL_RGBI']).stat().st_size * 2 // 3])
    c = json.loads(json.dumps(cfg))
    c['modalities']['AERIAL_RGBI']['input_img_path'], c['output_name'], c['cell_px'], c['readers'] = str(cut), 'cut', 96, 1
    r = _cli(c, d, 'cut')
    assert r.returncode == 1, (r.returncode, r.stderr)
    line = [l for l in r.stderr.splitlines() if l.startswith('flairhub_zonal: error:')]
    assert line and 'ZoneReadError: cell ' in line[0] and f'{cut}: cannot read AERIAL_RGBI' in line[0], r.stderr
    assert 'Traceback' not in r.stderr, r.stderr
    bad = line[0].split('ZoneReadError: cell ')[1].split(':')[0]
    units = d / 'out' / '.cut.units'
    assert not (units / f'{bad}.done').exists() and not [f for f in units.rglob('*') if bad in f.name]
    assert not (d / 'out' / f'cut_{TASK}_argmax.tif').exists() and not (d / 'out' / '.cut.units.lock').exists()


def test_kill_and_resume(zone):
    d, _, cfg, _ = zone
    c = {**cfg, 'output_name': 'killed', 'cell_px': 96, 'readers': 1}  # one tile per cell: 12 cells
    units = d / 'out' / '.killed.units'
    proc = _cli(c, d, 'killed', wait=False)
    t0 = time.time()
    while time.time() - t0 < 300 and proc.poll() is None:
        if len(list(units.glob('*.done'))) >= 3: break
        time.sleep(0.02)
    assert proc.poll() is None, 'the run finished before it could be interrupted'
    proc.send_signal(signal.SIGKILL); proc.wait()
    final = d / 'out' / f'killed_{TASK}_argmax.tif'
    assert not final.exists()                       # nothing that looks complete
    assert (d / 'out' / '.killed.units.lock').exists()  # the killed run's lock: taken over (same host, dead pid)
    r = _cli(c, d, 'killed')
    assert r.returncode == 0, r.stderr
    assert 'lock of dead process' in r.stderr
    with rasterio.open(final) as a, rasterio.open(d / 'out' / f'toy_{TASK}_argmax.tif') as b:
        assert np.array_equal(a.read(1), b.read(1))


def test_two_ranks_one_zone(zone):
    d, _, cfg, _ = zone
    c = {**cfg, 'output_name': 'ranks'}
    procs = [_cli(c, d, f'ranks{r}', env={'RANK': str(r), 'WORLD_SIZE': '2'}, wait=False) for r in (1, 0)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    with rasterio.open(d / 'out' / f'ranks_{TASK}_argmax.tif') as a, rasterio.open(d / 'out' / f'toy_{TASK}_argmax.tif') as b:
        assert np.array_equal(a.read(1), b.read(1))


def _put(d: dict, path: str, value):
    *head, last = path.split('.')
    for k in head: d = d.setdefault(k, {})
    d[last] = value


SAME_CASES = {  # id: (changes {dotted path: value}, top-level keys removed, key the rejection must name; None: valid)
    'valid': ({}, (), None),
    'default_px_size': ({}, ('output_px_meters',), None),  # a missing key that has a default
    'crop_batch_3': ({'stitching': 'crop', 'batch_size': 3}, (), None),
    'no_output_name': ({}, ('output_name',), 'output_name'),
    'no_tasks': ({}, ('tasks',), 'tasks'),
    'tile_zero': ({'img_pixels_detection': 0}, (), 'img_pixels_detection'),
    'batch_zero': ({'batch_size': 0}, (), 'batch_size'),
    'margin_text': ({'margin': 'wide'}, (), 'margin'),
    'flag_text': ({'use_gpu': 'sometimes'}, (), 'use_gpu'),
    'output_type': ({'output_type': 'probs'}, (), 'output_type'),
    'margin_too_large': ({'margin': 64}, (), 'margin'),  # 2 x 64 is not smaller than the 128 px tile
    'px_size_negative': ({'output_px_meters': -0.2}, (), 'output_px_meters'),
    'input_missing': ({'modalities.AERIAL_RGBI.input_img_path': '{d}/nope.tif'}, (), 'modalities.AERIAL_RGBI.input_img_path'),
    'weights_missing': ({'model_weights': '{d}/nope.safetensors'}, (), 'model_weights'),
    'unknown_modality': ({'modalities.inputs.AERIAL_RGB': True}, (), 'modalities.inputs.AERIAL_RGB'),
    'channel': ({'modalities.AERIAL_RGBI.channels': [4, 1, 9]}, (), 'modalities.AERIAL_RGBI.channels[2]'),
    'no_active_task': ({'tasks': []}, (), 'tasks'),
    'readers_negative': ({'readers': -1}, (), 'readers'),
    'readers_fraction': ({'readers': 1.5}, (), 'readers'),
}


@pytest.mark.parametrize('case', list(SAME_CASES))
def test_api_and_command_accept_the_same_configs(zone, case):
    "`predict_zone(dict)` and `flairhub_zonal --config` both run, or both reject naming the same keys, each config"
    d, _, cfg, _ = zone
    changes, drop, key = SAME_CASES[case]
    c = {k: v for k, v in copy.deepcopy(cfg).items() if k not in drop}
    if 'output_name' in c: c['output_name'] = f'same_{case}'
    for p, v in changes.items(): _put(c, p, v.format(d=d) if isinstance(v, str) else copy.deepcopy(v))
    api_keys = None
    try: res = predict_zone({**copy.deepcopy(c), 'output_path': str(d / 'same_api')}, progress=False)
    except ConfigError as e: api_keys = {k for k, _ in e.problems}
    r = _cli({**c, 'output_path': str(d / 'same_cli')}, d, f'same_{case}')
    cli_keys = {l.strip().split(': ', 1)[0] for l in r.stderr.splitlines() if l.startswith('  ')}
    if key is None:
        assert api_keys is None and r.returncode == 0, (api_keys, r.stderr)
        with rasterio.open(res[TASK]) as a, rasterio.open(d / 'same_cli' / Path(res[TASK]).name) as b:
            assert np.array_equal(a.read(1), b.read(1))
    else:
        assert api_keys is not None and key in api_keys, api_keys
        assert r.returncode == 1 and r.stderr.startswith('flairhub_zonal: error: invalid config'), r.stderr
        assert cli_keys == api_keys, (cli_keys, api_keys)


def test_module_form_is_the_console_script(zone):
    "`python -m flairhub_nb.zonal.cli` (what torchrun runs) is `flairhub_zonal`: same flags, same answers"
    d, _, cfg, _ = zone
    p = d / 'check.yaml'
    p.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    forms = [[_script('flairhub_zonal')], [sys.executable, '-m', 'flairhub_nb.zonal.cli']]
    run = lambda args: [subprocess.run(f + args, capture_output=True, text=True, env=env, timeout=300, check=False) for f in forms]
    helps = run(['--help'])
    assert [h.returncode for h in helps] == [0, 0] and helps[0].stdout == helps[1].stdout, helps
    assert '--check' in helps[0].stdout and '--override' in helps[0].stdout
    checks = run(['--config', str(p), '--check'])
    assert [c.returncode for c in checks] == [0, 0] and checks[0].stdout == checks[1].stdout, checks
    bad = run(['--config', str(p), '--check', '-o', 'batch_size=0'])
    assert [b.returncode for b in bad] == [1, 1] and bad[0].stderr == bad[1].stderr, bad
    assert '  batch_size: 0 must be an integer >= 1' in bad[0].stderr.splitlines()


@pytest.mark.slow
def test_multimodal_zone(tmp_path):
    """Aerial + DEM + SPOT + Sentinel-2 (cloud filter, monthly average) through a tiny fusion model."""
    paths = make_test_zone(tmp_path / 'inputs', width_m=60.0, height_m=60.0)
    mods = ('AERIAL_RGBI', 'DEM_ELEV', 'SPOT_RGBI', 'SENTINEL2_TS')
    cfg = zonal_config(paths, mods, img_pixels_detection=256, margin=32, output_px_meters=0.2, batch_size=2,
                       num_worker=2, use_gpu=False, monotemp_arch='test_convnext-upernet',
                       output_path=str(tmp_path / 'out'), output_name='mm')
    cfg['modalities']['SENTINEL2_TS']['temporal_average'] = 'monthly'
    cfg['modalities']['DEM_ELEV']['normalization'] = {'type': 'custom', 'means': [311.06, 311.06], 'stds': [537.55, 537.55]}
    cfg['model_weights'] = _weights(cfg, tmp_path, {'AERIAL_RGBI': 256, 'DEM_ELEV': 256, 'SPOT_RGBI': 32, 'SENTINEL2_TS': 5})
    r = _cli(cfg, tmp_path)
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path / 'out' / f'mm_{TASK}_argmax.tif') as ds:
        assert (ds.width, ds.height) == (300, 300) and ds.read(1).max() < 19


def test_outputs_printed_and_finished_zone_not_recomputed(zone):
    """`flairhub_zonal` prints its COG / VRT / index on success; a rerun on the finished zone says so and writes nothing."""
    d, _, cfg, _ = zone
    c = {**cfg, 'output_path': str(d / 'again'), 'output_name': 'again', 'cell_px': 192}
    first = _cli(c, d, 'again')
    assert first.returncode == 0, first.stderr
    cog, vrt, idx = (d / 'again' / f'again_{TASK}_argmax.tif', d / 'again' / f'again_{TASK}_argmax.vrt',
                     d / 'again' / 'again_cells.gpkg')
    assert first.stdout.splitlines()[-3:] == [f'{TASK} COG: {cog}', f'{TASK} VRT: {vrt}', f'cell index: {idx}']
    stamps = {f: f.stat().st_mtime_ns for f in (cog, vrt, idx)}
    cells = len(list((d / 'again' / '.again.units').glob('*.done')))
    assert cells > 1
    second = _cli(c, d, 'again')
    assert second.returncode == 0, second.stderr
    assert f'already complete: {cells} cells, nothing to do' in second.stdout
    assert second.stdout.splitlines()[-3:] == first.stdout.splitlines()[-3:]
    assert {f: f.stat().st_mtime_ns for f in stamps} == stamps
    third = _cli({**c, 'resume': False}, d, 'again')  # resume: false recomputes
    assert third.returncode == 0 and 'already complete' not in third.stdout
    assert cog.stat().st_mtime_ns != stamps[cog]


def _small_shm_routes(cmd: list) -> list:
    "The command with a 64 KiB /dev/shm: a mount namespace as root, else inside a user namespace"
    mount = 'mount -t tmpfs -o size=64k tmpfs /dev/shm && exec "$0" "$@"'
    return [['unshare', '--mount', 'sh', '-c', mount] + cmd,
            ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', mount] + cmd]


def test_shared_memory_too_small_is_named(zone, monkeypatch):
    """A container with little shared memory (Docker's default is 64 MiB): a reader that cannot allocate a cell's
    block in /dev/shm fails the run with one line saying so and what to change, not a reader crash"""
    d, _, cfg, _ = zone
    c = {**cfg, 'output_name': 'shm', 'readers': 1}
    p = d / 'shm.yaml'
    p.write_text(yaml.safe_dump(c))
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    for cmd in _small_shm_routes([_script('flairhub_zonal'), '--config', str(p)]):
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
        if 'flairhub_zonal' in r.stderr: break  # the command ran under the small /dev/shm
    else:  # no namespaces here: the same failure injected where torch reports it
        from flairhub_nb.zonal import device
        def full(n): raise RuntimeError(f"unable to allocate shared memory(shm) for file </torch_0>: No space left on device (28)")
        monkeypatch.setattr(device.torch.UntypedStorage, '_new_shared', staticmethod(full))
        with pytest.raises(device.ZoneReadError, match='no room in shared memory') as e: device.host_tensor((4, 8, 8), np.uint8, True)
        assert 'readers: 0' in str(e.value) and '--shm-size' in str(e.value)
        return
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    line = [l for l in r.stderr.splitlines() if l.startswith('flairhub_zonal: error:')]
    assert line and 'no room in shared memory' in line[0] and 'readers: 0' in line[0] and '--shm-size' in line[0], r.stderr[-2000:]
    assert 'Traceback' not in r.stderr and not (d / 'out' / f'shm_{TASK}_argmax.tif').exists()
    c['readers'] = 0  # the advice works: the same run in a thread of the process
    p.write_text(yaml.safe_dump(c))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0 and (d / 'out' / f'shm_{TASK}_argmax.tif').is_file(), r.stderr[-2000:]
