"""A simulated country-scale plan: planning, the VRT and the cell index of 100, 1,000 and 10,000 km² zones at 0.2 m,
from bounds alone (no rasters: the zone's header is a `RasterInfo` built in memory), timed side by side.

    python benchmarks/bench_zonal_area.py [--areas 100 1000 10000] [--tile 2048] [--margin 512] [--cell-px 8192]

Per zone: the `TilingPlan`, its cells (`cells`, `cell_window` of each, `cell_tiles_to_run` counted), `UnitJob.todo`
(a stat per cell marker), the VRT XML over every cell's COG (`write_vrt`) and the GeoPackage cell index
(`UnitStore.write_index`). What must hold: time per km² flat from 100 to 10,000 km² (linear in area; today's
`merge_parts` was quadratic).

Measured on the project's 2-core VM (load average ~8; wall seconds; 2048 px tiles, 512 margin, 8192 px cells):
      km²   cells     tiles       run   plan s  todo s   vrt s  index s  total s  ms/km²
      100      49      2401      3721     0.12    0.04    0.03     0.13     0.32    3.23
     1000     400     24025     37249     0.82    0.06    0.17     0.66     1.71    1.71
    10000    3844    239121    373321     8.18    0.49    0.90     3.23    12.80    1.28
  -> 100x the area in 40x the time (fixed costs at 100 km²): linear. `run` counts the tiles the cells run with their
     aprons: +56 % over the zone's tiles at these settings (a halo of one tile around 8-tile cells).
"""
import argparse, math, subprocess, tempfile, time
from pathlib import Path

TASK, K = 'AERIAL_LABEL-COSIA', 19


def zone_plan(area_km2: float, tile: int, margin: int):
    "A square zone of `area_km2` at 0.2 m, from its header only"
    from rasterio.crs import CRS
    from rasterio.transform import from_origin
    from flairhub_nb.zonal.plan import RasterInfo, TilingPlan
    side = round(math.sqrt(area_km2) * 1000 / 0.2)
    info = RasterInfo('AERIAL_RGBI', 'aerial.vrt', CRS.from_epsg(2154), from_origin(600000.0, 6900000.0, 0.2, 0.2),
                      side, side, 4, 'uint8', None, False)
    return TilingPlan({'AERIAL_RGBI': info}, tile, margin)


def run(area: float, a, tmp: Path) -> dict:
    from flairhub_nb.zonal.read import ZoneReader, ModalitySpec
    from flairhub_nb.zonal.units import UnitJob, UnitStore, write_vrt
    from flairhub_nb.zonal.write import task_colormap
    t = {}
    t0 = time.perf_counter()
    plan = zone_plan(area, a.tile, a.margin)
    reader = ZoneReader.__new__(ZoneReader)  # no files to open: the reader is only carried
    reader.plan, reader.specs, reader.dates = plan, {'AERIAL_RGBI': ModalitySpec('AERIAL_RGBI', 'aerial.vrt', [1, 2, 3])}, {}
    store = UnitStore(tmp / f'{area:g}' / 'z.units', {'area': area}, {TASK: K})
    job = UnitJob(plan, reader, store, lambda: None, a.cell_px)
    cells = job.cells
    wins = [plan.cell_window(c) for c in cells]
    n_run = sum(len(plan.cell_tiles_to_run(c)) for c in cells)
    t['plan'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    todo = job.todo()
    t['todo'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_vrt(plan, [(store.cog(TASK, c), w) for c, w in zip(cells, wins)], tmp / f'{area:g}' / 'z.vrt', 1, 'argmax',
              task_colormap(TASK, K))
    t['vrt'] = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.write_index(plan, cells, tmp / f'{area:g}' / 'z_cells.gpkg')
    t['index'] = time.perf_counter() - t0
    return dict(area=area, cells=len(cells), tiles=plan.n_tiles, tiles_run=n_run, n_todo=len(todo), **t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--areas', type=float, nargs='+', default=[100, 1000, 10000])
    ap.add_argument('--tile', type=int, default=2048)
    ap.add_argument('--margin', type=int, default=512)
    ap.add_argument('--cell-px', type=int, default=8192)
    a = ap.parse_args()
    print(subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip(), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix='bench_zonal_area_'))
    print(f"0.2 m, tiles {a.tile} px, margin {a.margin}, cells {a.cell_px} px ({a.cell_px * 0.2 / 1000:g} km)")
    print(f"{'km²':>7s} {'cells':>7s} {'tiles':>9s} {'run':>9s} {'plan s':>8s} {'todo s':>7s} {'vrt s':>7s} "
          f"{'index s':>8s} {'total s':>8s} {'ms/km²':>7s}")
    rows = []
    run(1, a, tmp)  # warm-up: imports (geopandas, pyogrio) are not part of the timings
    for area in a.areas:
        r = run(area, a, tmp)
        total = r['plan'] + r['todo'] + r['vrt'] + r['index']
        rows.append((area, total))
        print(f"{area:7g} {r['cells']:7d} {r['tiles']:9d} {r['tiles_run']:9d} {r['plan']:8.2f} {r['todo']:7.2f} "
              f"{r['vrt']:7.2f} {r['index']:8.2f} {total:8.2f} {1000 * total / area:7.2f}", flush=True)
    (a0, t0), (a1, t1) = rows[0], rows[-1]
    print(f"scaling: {a1 / a0:g}x the area took {t1 / t0:.1f}x the time (linear: {a1 / a0:g}x)")


if __name__ == '__main__':
    main()
