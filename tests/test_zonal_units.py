"""Zonal work units (`flairhub_nb.zonal.units`) and engines (`flairhub_nb.zonal.engines`): the same output whatever the
cell size, the worker count, the reader processes and the engine (local processes, submitit's local executor); reruns
recompute only unfinished cells; markers, lock and previous outputs are safe; a reader's error names the file.

Tests that are not about readers run with `readers=0` (a thread): each spawned reader costs ~2.5 s of interpreter and
imports on this machine. The default (`readers: 1`) runs in the reader tests here and in every `flairhub_zonal` run
of tests/test_zonal_cli.py."""
import json, os, re, subprocess, sys, textwrap
import numpy as np
import pytest
import rasterio
import torch
import geopandas as gpd

from flairhub_nb.zonal.plan import plan_zone
from flairhub_nb.toy.zone import write_test_raster
from flairhub_nb.zonal.read import ModalitySpec, ZoneReader
from flairhub_nb.zonal.write import write_zone
from flairhub_nb.zonal.units import UnitStore, UnitJob, OutputLockedError, run_cells, cell_inputs
from flairhub_nb.zonal.device import ZoneReadError
from flairhub_nb.zonal.engines import run_local, run_submitit, shares, slurm_share, sbatch_script

K, TASK = 5, 'AERIAL_LABEL-COSIA'
TASKS = {TASK: K}


def wavy(k: int = K):
    "A 'model' whose logits depend on the pixel and on the tile's position, so blending matters at every seam"
    def fn(batch):
        x = batch['AERIAL_RGBI'][:, 0].float()
        r, c = batch['tile_row'][:, None, None].float(), batch['tile_col'][:, None, None].float()
        return {TASK: 3 * torch.stack([torch.sin(x * (i + 1) + 0.3 * c + 0.7 * r) for i in range(k)], 1)}
    return fn


@pytest.fixture(scope='module')
def zone(tmp_path_factory):
    d = tmp_path_factory.mktemp('units')
    cls = np.random.default_rng(2).integers(0, K, (157, 203)).astype(np.uint8)
    path = write_test_raster(d / 'zone.tif', np.stack([cls] * 4))
    plan = plan_zone({'AERIAL_RGBI': path}, 48, 12)
    reader = ZoneReader(plan, {'AERIAL_RGBI': ModalitySpec('AERIAL_RGBI', str(path), [1, 2, 3])})
    return d, plan, reader


def _job(zone, sub, cell_px, output_type='argmax', make=wavy, readers=0):
    d, plan, reader = zone
    return UnitJob(plan, reader, UnitStore(d / sub / 'z.units', {'v': 1}, TASKS, output_type), make, cell_px, 'blend', 3,
                   readers=readers)


def _read(path):
    with rasterio.open(path) as ds: return ds.read()


@pytest.mark.parametrize('output_type', ['argmax', 'class_prob'])
def test_same_output_any_cell_size_and_workers(zone, output_type):
    d, plan, reader = zone
    single = write_zone(plan, reader, wavy(), TASKS, d / f'single_{output_type}', 'z', output_type, 'blend', 3, max_strip_px=None)
    ref = _read(single[TASK]).astype(int)
    for cell_px, workers in [(36, 1), (36, 3), (72, 2), (1000, 1)]:
        job = _job(zone, f'{output_type}_{cell_px}_{workers}', cell_px, output_type)
        assert len(job.cells) > 1 or cell_px == 1000
        run_local(job, job.todo(), workers)
        res = job.finalize(d / f'{output_type}_{cell_px}_{workers}', 'z')
        out = _read(res[TASK]).astype(int)
        if output_type == 'argmax': assert np.array_equal(out, ref), (cell_px, workers)
        else: assert np.abs(out - ref).max() <= 1, (cell_px, workers)
        vrt = res[TASK].with_suffix('.vrt')
        assert np.array_equal(_read(vrt), out)   # the VRT over the cells' COGs is the merged mosaic


@pytest.mark.parametrize('output_type,readers,workers', [('argmax', 2, 1), ('argmax', 1, 2), ('class_prob', 1, 1)])
def test_reader_processes_same_output(zone, output_type, readers, workers):
    """Cells read in 1 or 2 reader processes (also by 2 local workers with a reader each) give the bytes of readers=0"""
    d = zone[0]
    ref = _job(zone, f'r0_{output_type}_{readers}{workers}', 36, output_type, readers=0)
    assert len(ref.cells) >= 6
    run_cells(ref, ref.todo())
    want = _read(ref.finalize(d / f'r0_{output_type}_{readers}{workers}', 'z')[TASK])
    sub = f'r{readers}w{workers}_{output_type}'
    job = _job(zone, sub, 36, output_type, readers=readers)
    run_local(job, job.todo(), workers)
    assert _read(job.finalize(d / sub, 'z')[TASK]).tobytes() == want.tobytes()


def test_reads_happen_in_reader_processes(zone):
    job = _job(zone, 'pids', 36, readers=2)
    items = list(cell_inputs(job, job.cells, torch.device('cpu')))
    assert [i.cell for i in items] == [c.id for c in job.cells]          # the planned order
    pids = {i.pid for i in items}
    assert os.getpid() not in pids and len(pids) == 2                     # both readers, neither this process
    assert all(b.data.is_shared() for i in items for b in i.blocks.values())  # handed over in shared memory
    assert {i.pid for i in cell_inputs(_job(zone, 'pids0', 36, readers=0), job.cells[:2], torch.device('cpu'))} == {os.getpid()}


@pytest.mark.parametrize('v', [-1, 1.5, True])
def test_readers_must_be_a_count(zone, v):
    with pytest.raises(ValueError, match=f"readers: {v!r} must be an integer >= 0"): _job(zone, 'bad', 36, readers=v)


@pytest.mark.parametrize('readers', [0, 1])
def test_reader_error_names_the_file_and_leaves_no_marker(tmp_path, readers):
    """A raster cut short after planning: the share stops at the first cell it spoils, naming the file; that cell
    leaves no marker and no file, the cells before it are done"""
    cls = np.random.default_rng(3).integers(0, K, (157, 203)).astype(np.uint8)
    path = write_test_raster(tmp_path / 'zone.tif', np.stack([cls] * 4))
    plan = plan_zone({'AERIAL_RGBI': path}, 48, 12)
    reader = ZoneReader(plan, {'AERIAL_RGBI': ModalitySpec('AERIAL_RGBI', str(path), [1, 2, 3])})
    job = UnitJob(plan, reader, UnitStore(tmp_path / 'z.units', {'v': 1}, TASKS), wavy, 36, 'blend', 3, readers=readers)
    path.write_bytes(path.read_bytes()[:path.stat().st_size * 2 // 3])
    with pytest.raises(ZoneReadError, match=rf"cell cell_\d+_\d+: {re.escape(str(path))}: cannot read AERIAL_RGBI") as e:
        run_cells(job, job.todo())
    bad = e.value.args[0].split(':')[0].removeprefix('cell ')
    ids = [c.id for c in job.cells]
    assert job.todo() == ids[ids.index(bad):]                             # done up to the spoiled cell, then nothing
    assert not [f for f in (tmp_path / 'z.units').rglob('*') if bad in f.name]


def test_unguarded_script_gets_a_hint(tmp_path):
    """Spawned readers import the main module: a script running cells at import time fails, saying why"""
    script = tmp_path / 'unguarded.py'
    script.write_text(textwrap.dedent(f"""
        import numpy as np
        from flairhub_nb.toy.zone import write_test_raster
        from flairhub_nb.zonal.plan import plan_zone
        from flairhub_nb.zonal.read import ModalitySpec, ZoneReader
        from flairhub_nb.zonal.units import UnitJob, UnitStore, run_cells
        import torch
        p = write_test_raster({str(tmp_path / 'z.tif')!r}, np.ones((4, 60, 60), np.uint8))
        plan = plan_zone({{'AERIAL_RGBI': p}}, 48, 12)
        reader = ZoneReader(plan, {{'AERIAL_RGBI': ModalitySpec('AERIAL_RGBI', str(p), [1, 2, 3])}})
        make = lambda: (lambda b: {{'T': torch.zeros(len(b['tile_row']), 2, 48, 48)}})
        run_cells(UnitJob(plan, reader, UnitStore({str(tmp_path / 'u')!r}, {{}}, {{'T': 2}}), make, 36, readers=1), ['cell_0000_0000'])
        """))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False,
                       env={**os.environ, 'PYTHONPATH': os.pathsep.join(sys.path)})
    assert r.returncode != 0 and "needs `if __name__ == '__main__':`, or set readers: 0" in r.stderr, r.stderr[-2000:]


def test_index_and_vrt_georeference(zone):
    d, plan, _ = zone
    job = _job(zone, 'index', 36)
    run_local(job, job.todo())
    res = job.finalize(d / 'index', 'z', mosaic='vrt')
    assert res[TASK].suffix == '.vrt' and not (d / 'index' / f'z_{TASK}_argmax.tif').exists()
    with rasterio.open(res[TASK]) as ds:
        assert (ds.crs.to_epsg(), ds.transform, ds.width, ds.height, ds.nodata) == (2154, plan.out_transform, plan.out_width,
                                                                                   plan.out_height, 255)
        assert ds.colormap(1)[0][:3] != (0, 0, 0) or ds.colormap(1)[1][:3] != (0, 0, 0)
    idx = gpd.read_file(d / 'index' / 'z_cells.gpkg')
    assert len(idx) == len(job.cells) and idx.crs.to_epsg() == 2154
    assert abs(idx.geometry.area.sum() - plan.out_width * plan.out_height * plan.out_res ** 2) < 1e-6
    assert all((d / 'index' / p).is_file() for p in idx[f'location_{TASK}'])


def test_rerun_runs_only_unfinished_cells(zone):
    _, plan, _ = zone
    job = _job(zone, 'rerun', 36)
    run_local(job, job.todo(), 2)
    assert job.todo() == []
    cells = job.cells
    gone = [cells[1], cells[-1]]
    for c in gone: job.store.marker(c).unlink()
    keep = job.store.marker(cells[0]).stat().st_mtime_ns
    assert job.todo() == [c.id for c in gone]
    n = run_local(job, job.todo(), 3)
    assert n == sum(len(plan.cell_tiles_to_run(c)) for c in gone)
    assert job.store.marker(cells[0]).stat().st_mtime_ns == keep and job.todo() == []


def test_corrupt_marker_is_named_and_recomputed(zone):
    job = _job(zone, 'corrupt', 72)
    run_local(job, job.todo())
    c = job.cells[0]
    job.store.marker(c).write_text('{"signature": ')  # a marker cut short
    with pytest.warns(UserWarning, match=f"{job.store.marker(c)}: corrupt done marker"):
        assert job.todo() == [c.id]
    job.store.cog(TASK, c).write_bytes(b'')  # a marker whose COG lost its bytes is not done either
    run_local(job, [c.id])
    assert job.todo() == []
    job.store.cog(TASK, c).write_bytes(b'truncated')
    assert job.todo() == [c.id]


def test_lock_stops_a_second_run(zone, tmp_path):
    st = UnitStore(tmp_path / 'z.units', {}, TASKS)
    lock = st.lock()
    with pytest.raises(OutputLockedError, match='another run .* is writing this output'):
        UnitStore(tmp_path / 'z.units', {}, TASKS).lock()
    st.unlock()
    lock.write_text(json.dumps({'host': os.uname().nodename, 'pid': 2 ** 22 + 12345}))  # a dead process's lock
    with pytest.warns(UserWarning, match='lock of dead process'):
        st.lock()
    st.unlock()
    assert not lock.exists()


def test_previous_output_kept_until_the_new_one_is_complete(zone):
    d, _, _ = zone
    job = _job(zone, 'keep', 72)
    run_local(job, job.todo())
    final = job.finalize(d / 'keep', 'z')[TASK]
    before = final.read_bytes()
    job.store.forget()

    def broken():
        def fn(batch): raise RuntimeError('GPU fell off the bus')
        return fn
    bad = _job(zone, 'keep', 72, make=broken)
    with pytest.raises(RuntimeError, match='GPU fell off'): run_local(bad, bad.todo())
    with pytest.raises(RuntimeError, match='not done yet'): bad.finalize(d / 'keep', 'z')
    assert final.read_bytes() == before


@pytest.mark.timeout(300)  # an engine that cannot start its workers fails here, named, instead of hanging
def test_submitit_local_executor_matches_single_process(zone, tmp_path):
    import sys, cloudpickle
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the jobs' processes cannot import this test file
    d, plan, _ = zone
    job = _job(zone, 'submitit', 36)
    n = run_submitit(job, job.todo(), 3, tmp_path / 'submitit', cluster='local')
    assert n == sum(len(plan.cell_tiles_to_run(c)) for c in job.cells)
    out = _read(job.finalize(d / 'submitit', 'z')[TASK])
    ref = _job(zone, 'submitit_ref', 36)
    run_cells(ref, ref.todo())
    assert np.array_equal(out, _read(ref.finalize(d / 'submitit_ref', 'z')[TASK]))


def test_shares_and_slurm_environment(monkeypatch):
    assert shares(list('abcde'), 2) == [['a', 'c', 'e'], ['b', 'd']] and shares(list('ab'), 4) == [['a'], ['b']]
    for k in ('SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_COUNT', 'SLURM_PROCID', 'SLURM_NTASKS'):
        monkeypatch.delenv(k, raising=False)
    assert slurm_share() is None
    monkeypatch.setenv('SLURM_NTASKS', '4'); monkeypatch.setenv('SLURM_PROCID', '2')
    assert slurm_share() == (2, 4)
    monkeypatch.setenv('SLURM_ARRAY_TASK_ID', '7'); monkeypatch.setenv('SLURM_ARRAY_TASK_MIN', '5')
    monkeypatch.setenv('SLURM_ARRAY_TASK_COUNT', '3')
    assert slurm_share() == (2, 3)  # an array wins over srun's tasks


def test_sbatch_script():
    s = sbatch_script('/data/zone a.yaml', 8, partition='gpu_p2', gpus=1, account='abc@v100')
    lines = s.splitlines()
    assert lines[0] == '#!/bin/bash' and '#SBATCH --array=0-7' in lines and '#SBATCH --gres=gpu:1' in lines
    assert '#SBATCH --partition=gpu_p2' in lines and '#SBATCH --account=abc@v100' in lines
    assert lines[-1] == "flairhub_zonal --config '/data/zone a.yaml'"


@pytest.mark.timeout(300)  # an engine that cannot start its workers fails here, named, instead of hanging
def test_ray_local_cluster_matches_single_process(zone, tmp_path):
    """A local Ray cluster (2 CPUs, no GPU) runs the shares as Ray tasks; the mosaic is the single-process one."""
    import sys
    import ray
    from ray import cloudpickle
    from flairhub_nb.zonal.engines import run_ray
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this test file
    d, plan, _ = zone
    job = _job(zone, 'ray', 36)
    for attempt in range(3):  # Ray gives its raylet a fixed 30 s to register: a loaded 2-core machine can miss that
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024**2)
            break
        except Exception as e:
            ray.shutdown()
            if 'timed out during startup' not in str(e) or attempt == 2: raise
    try:
        n = run_ray(job, job.todo(), 2, gpus=0, timeout=240)
        stuck = _job(zone, 'ray_stuck', 36)
        with pytest.raises(TimeoutError, match=r'did not finish in 3 s'):  # a GPU task on a CPU-only cluster never starts
            run_ray(stuck, stuck.todo(), 1, gpus=1, timeout=3)
    finally: ray.shutdown()
    assert n == sum(len(plan.cell_tiles_to_run(c)) for c in job.cells) and job.todo() == []
    out = _read(job.finalize(d / 'ray', 'z')[TASK])
    ref = _job(zone, 'ray_ref', 36)
    run_cells(ref, ref.todo())
    assert np.array_equal(out, _read(ref.finalize(d / 'ray_ref', 'z')[TASK]))
