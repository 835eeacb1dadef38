"""Zonal inference throughput and memory: our pipeline vs the reference's way, on a 1 km² and a 25 km² zone.

    python benchmarks/bench_zonal.py [--gsd 1.0] [--areas 1 25] [--ref-areas 1 25] [--out bench_zonal.json]

Each (way, zone) runs in its own subprocess, so its peak RSS (`ru_maxrss`) is its own. Figures: output px/s, km²/h,
output px per CPU-second (user+sys of the process: much less sensitive than wall time to other load on a shared
machine) and peak RSS; the wall time covers the whole `predict_zone` call (model build + weights, reading, inference,
stitching, part files, merge and COG conversion).

* Zones: synthetic 4-band uint8 aerial rasters (EPSG:2154), square, `--gsd` metres per pixel. At the real 0.2 m a
  25 km² zone is 625 Mpx, hours for the reference's way on a 2-core CPU, so the default is 1.0 m for both zones
  (1 km² = 1000x1000 px, 25 km² = 5000x5000 px): same GSD, 25x the pixels.
* Model: `test_convnext-upernet` (timm's 1.0 M-parameter test ConvNeXt + the project's UPerNet head, 19 COSIA
  classes), random weights saved to .safetensors, CPU, `num_worker 0` for both ways.
* Ours: blend stitching, 512 px tiles, 16 px margins, batch 2, strips of 960 px (memory bounded by the strip, not
  the zone), channels-last, bf16 autocast when the CPU has AVX512-BF16/AMX (also measured in fp32: `ours_fp32`).
* The reference's way: its defaults on the same pipeline: crop-only, 2048 px tiles, 512 px margins, batch 1, fp32,
  default (NCHW) memory layout.

Measured on the project's 2-core AMD EPYC (AVX512-BF16) VM, load average < 2, GSD 1.0 m:
  way         zone     wall     Mpx/s   km²/h   CPU-s  peak RSS
  ours        1 km²     2.3 s   0.431   1551      4.3   1160 MB
  ours        25 km²   39.4 s   0.635   2284     63.7   1216 MB   (+4.8 % vs 1 km²)
  ours_fp32   25 km²   47.8 s   0.523   1883     89.6   1374 MB
  reference   1 km²     6.4 s   0.156    560     11.9   4816 MB
  reference   25 km²  160.6 s   0.156    560    300.4   5635 MB   (+17 % vs 1 km²)
  -> 25 km²: ours 4.1x the reference's throughput (wall; 4.7x per CPU-second), fp32 only 3.4x; 1 km²: 2.8x.

`--e2e-swin` (issue 12, 5b): end to end at the real 0.2 m with swin-tiny UPerNet (`swin_tiny_patch4_window7_224-upernet`,
random weights, `encoder_weights=None`) on a 0.26 km² (2560² px) and a 1 km² (5120² px) zone: `ours_default` (the
config defaults of `ZONAL_DEFAULTS`: blend, its tile/margin/batch/strip, channels-last, `cpu_bf16` as the default)
beside the reference's way (2048 px tiles, 512 margin crop, batch 1, fp32), each (way, zone) in its own subprocess;
prints `uptime` before and after and a table of CPU-s, wall-s, km²/h, peak RSS and the ratios ours / reference.
Measured (shared 2-core VM, load 5-9, no AVX512-BF16 so fp32 both; only the 0.26 km² zone: the 1 km² one, ~2,000
CPU-s for both ways, did not fit), first with the former default margin 512 (same tiles as the reference's way):
  02:37:47 up  5:18,  0 user,  load average: 5.12, 6.19, 7.35
       zone way           tiles    CPU-s   wall-s   km²/h peak RSS MB   ours/reference:  CPU-s wall-s  km²/h   RSS
    0.26km² ours_default      9    352.9   1069.0    0.88        5102                     0.99   1.45   0.69  0.86
    0.26km² reference         9    357.3    737.7    1.28        5925
  -> at equal tiles, blending and channels-last cost what cropping costs (CPU-s 0.99x; the wall ratio is the load);
     the peak RSS is 14 % lower.
  then with the default margin 128 (tile/16, chosen by benchmarks/bench_zonal_seams.py):
  02:53:00 up  5:33,  0 user,  load average: 6.72, 6.37, 6.08
       zone way           tiles    CPU-s   wall-s   km²/h peak RSS MB   ours/reference:  CPU-s wall-s  km²/h   RSS
    0.26km² ours_default      4    136.3     83.7   11.27        5140                     0.40   0.15   6.72  0.85
    0.26km² reference         9    338.6    562.7    1.68        6015
  -> 2.48x the reference's km² per CPU-second (4 tiles instead of 9); the wall ratio (6.7x) is mostly load (ours ran at
     load 2, the reference at 6.7). Peak RSS 15 % lower; both about 5-6 GB, set by one 2048 px swin-tiny tile in fp32.
  the 1 km² zone (5120² px), default margin 256 (tile/8), fp32 both, reader thread (06:09-06:27, load 2.3-3.6):
       zone way           tiles    CPU-s   wall-s   km²/h peak RSS MB   ours/reference:  CPU-s wall-s  km²/h   RSS
    1.05km² ours_default     16    493.3    471.6    8.00        6646                     0.68   0.81   1.24  1.03
    1.05km² reference        25    721.6    582.7    6.48        6424
  -> 1.46x the reference's km² per CPU-second (16 tiles instead of 25), 1.24x wall; peak RSS 3 % higher (a cell's
     blend accumulators over 5120 px rows beside one 2048 px swin-tiny tile).
`--ways ours_cells --areas 1 25` (the default's tiles and cells scaled to 1 m pixels; test_convnext-upernet; CPU and
peak RSS count the reader process; 06:56-06:58, load 0.8-1.6): 1 km² (1 cell, 9 tiles) 8.2 CPU-s, 2,038 MB; 25 km²
(9 cells, 196 tiles) 154.8 CPU-s, 2,249 MB: +10 % peak RSS for 25x the area. (With the default cells at 1 m, one
8192 px cell holds the whole 25 km² zone and the peak grows with it: 4,429 -> 6,774 MB.)
"""
import argparse, json, math, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

os.environ.setdefault('HF_HUB_OFFLINE', '1')
WAYS = {
    'ours': dict(stitching='blend', img_pixels_detection=512, margin=16, batch_size=2, max_strip_px=960, cpu_bf16=True),
    'ours_fp32': dict(stitching='blend', img_pixels_detection=512, margin=16, batch_size=2, max_strip_px=960, cpu_bf16=False),
    # the default config (2048 px tiles, tile/8 margin, 8192 px cells) scaled to 1 m pixels: the same tiles and cells on the
    # ground as at 0.2 m, so a 25 km² zone runs through 9 cells while 1 km² is one (peak RSS bounded by a cell, not the zone)
    'ours_cells': dict(stitching='blend', img_pixels_detection=512, margin=64, batch_size=2, cell_px=2048, cpu_bf16=False),
    'reference': dict(stitching='crop', img_pixels_detection=2048, margin=512, batch_size=1, max_strip_px=1024, cpu_bf16=False,
                      channels_last=False),
}
SWIN_TINY = 'swin_tiny_patch4_window7_224-upernet'
E2E_AREAS = [0.262144, 1.048576]  # 2560² and 5120² px at 0.2 m


def default_way() -> dict:
    "Our config defaults (`ZONAL_DEFAULTS`) for the keys the ways set"
    from flairhub_nb.config import ZONAL_DEFAULTS
    keys = ('stitching', 'img_pixels_detection', 'margin', 'batch_size', 'max_strip_px', 'cpu_bf16', 'channels_last')
    return {k: ZONAL_DEFAULTS[k] for k in keys}


def uptime() -> str: return subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip()


def cpu_has_bf16() -> bool:
    try: flags = Path('/proc/cpuinfo').read_text()
    except OSError: return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def make_zone(path: Path, side_px: int, gsd: float, seed: int = 0) -> Path:
    "A square 4-band aerial zone written block by block (the parent never holds it whole)"
    import numpy as np, rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window
    prof = dict(driver='GTiff', width=side_px, height=side_px, count=4, dtype='uint8', crs='EPSG:2154', tiled=True,
                blockxsize=512, blockysize=512, compress='LZW', photometric='MINISBLACK',
                transform=from_origin(650000.0, 6860000.0, gsd, gsd))
    rng = np.random.default_rng(seed)
    with rasterio.open(path, 'w', **prof) as ds:
        for y in range(0, side_px, 1024):
            h = min(1024, side_px - y)
            yy, xx = np.mgrid[y:y + h, 0:side_px]
            base = ((xx // 37 + yy // 53) % 7) * 30 + rng.integers(0, 20, (h, side_px))
            ds.write(np.stack([base, base[::-1] // 2 + 40, (base + xx % 50), 255 - base]).astype(np.uint8),
                     window=Window(0, y, side_px, h))
    return path


def worker(cfg_path: str) -> None:
    import torch
    from flairhub_nb.zonal.cli import predict_zone
    from flairhub_nb.zonal.plan import plan_zone
    import flairhub_nb.models.fusion  # noqa: F401 -- imports (torch/timm/smp) are not part of the timed run
    cfg = json.loads(Path(cfg_path).read_text())
    ru0, t0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)], time.perf_counter()
    predict_zone(cfg, progress=False)
    wall, ru1 = time.perf_counter() - t0, [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum((b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime) for a, b in zip(ru0, ru1))  # reader processes too
    plan = plan_zone({'AERIAL_RGBI': cfg['modalities']['AERIAL_RGBI']['input_img_path']}, cfg['img_pixels_detection'],
                     cfg['margin'], cfg['output_px_meters'])
    print(json.dumps(dict(wall_s=wall, cpu_s=cpu, out_px=plan.out_width * plan.out_height, tiles=plan.n_tiles,
                          tile_px=plan.tile_px, threads=torch.get_num_threads(),
                          peak_rss_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss +  # + the reader processes' peak:
                                       resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024,  # an upper bound of both at once
                          children_peak_rss_mb=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)))


def seam_quality(a, base: dict, zones: dict, tmp: Path, results: list) -> list:
    "Argmax disagreement of each way's output with a seamless prediction of the whole (smallest) zone"
    import rasterio
    area = min(zones)
    with rasterio.open(zones[area]) as ds: side = ds.width
    cfg = json.loads(json.dumps(base))
    cfg['modalities']['AERIAL_RGBI']['input_img_path'] = str(zones[area])
    cfg.update(stitching='crop', img_pixels_detection=side + 128, margin=64, batch_size=1, max_strip_px=None,
               cpu_bf16=False, output_name='seamless')
    cp = tmp / 'seamless.json'; cp.write_text(json.dumps(cfg))
    r = subprocess.run([sys.executable, __file__, '--worker', str(cp)], capture_output=True, text=True, check=False)
    if r.returncode: raise RuntimeError(f"seamless run failed:\n{r.stderr[-3000:]}")
    out = tmp / 'out'
    with rasterio.open(out / 'seamless_AERIAL_LABEL-COSIA_argmax.tif') as ds: ref = ds.read(1)
    extra = []
    for res in results:
        if res['area_km2'] != area: continue
        with rasterio.open(out / f"{res['way']}_{area:g}_AERIAL_LABEL-COSIA_argmax.tif") as ds: pred = ds.read(1)
        res['disagreement_with_seamless'] = float((pred != ref).mean())
        print(f"{res['way']:10s} {area:g} km²: {res['disagreement_with_seamless']:.2%} of pixels differ from the seamless prediction")
    return extra


def print_e2e(by: dict, areas: list, ours: list) -> None:
    "The 5b table: per zone and way CPU-s, wall-s, km²/h, peak RSS, and each of ours / the reference's"
    print(f"\n{uptime()}")
    print(f"{'zone':>9s} {'way':12s} {'tiles':>6s} {'CPU-s':>8s} {'wall-s':>8s} {'km²/h':>7s} {'peak RSS MB':>11s}   "
          f"ours/reference: {'CPU-s':>6s} {'wall-s':>6s} {'km²/h':>6s} {'RSS':>5s}")
    for area in areas:
        ref = by.get(('reference', area))
        for way in ours + ['reference']:
            r = by.get((way, area))
            if r is None: continue
            ratio = ''
            if ref is not None and way != 'reference':
                ratio = ''.join(f" {r[k] / ref[k]:6.2f}" for k in ('cpu_s', 'wall_s', 'km2_per_h')) + f" {r['peak_rss_mb'] / ref['peak_rss_mb']:5.2f}"
            print(f"{area:6.2f}km² {way:12s} {r['tiles']:6d} {r['cpu_s']:8.1f} {r['wall_s']:8.1f} {r['km2_per_h']:7.2f} "
                  f"{r['peak_rss_mb']:11.0f}   {'':15s}{ratio}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--gsd', type=float, default=None, help='aerial pixel size of both zones (m, default 1.0); 0.2 is the real one')
    ap.add_argument('--areas', type=float, nargs='+', default=None, help='zone areas in km² (default 1 25)')
    ap.add_argument('--ref-areas', type=float, nargs='*', default=None, help="zones the reference's way runs on (all)")
    ap.add_argument('--ways', nargs='+', default=None, choices=list(WAYS) + ['ours_default'])
    ap.add_argument('--arch', default=None, help='monotemp_arch of the random-weight model (default test_convnext-upernet)')
    ap.add_argument('--e2e-swin', action='store_true', help='issue 12 5b: 0.2 m, swin-tiny UPerNet, 2560² and 5120² px '
                    'zones, ours_default and reference (sets --gsd, --areas, --arch, --ways unless given)')
    ap.add_argument('--out', default=None, help='also write the results as JSON here')
    ap.add_argument('--seams', action='store_true', help='seam quality: disagreement of each way with one seamless '
                    'whole-zone prediction (one tile covering the zone plus 64 px context) on the smallest zone')
    ap.add_argument('--worker', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker: return worker(a.worker)
    e2e = a.e2e_swin
    a.gsd = a.gsd or (0.2 if e2e else 1.0)
    a.areas = a.areas or (E2E_AREAS if e2e else [1.0, 25.0])
    a.arch = a.arch or (SWIN_TINY if e2e else 'test_convnext-upernet')
    a.ways = a.ways or (['ours_default', 'reference'] if e2e else list(WAYS))
    import torch
    from flairhub_nb.models.fusion import FlairHubModel
    from flairhub_nb.models.checkpoint import save_checkpoint
    from flairhub_nb.config import load_zonal_config, zonal_training_config
    from flairhub_nb.toy.zone import zonal_config
    tmp = Path(tempfile.mkdtemp(prefix='bench_zonal_'))
    bf16 = cpu_has_bf16()
    ref_areas = a.areas if a.ref_areas is None else a.ref_areas
    zones = {}
    for area in a.areas:
        side = round(math.sqrt(area) * 1000 / a.gsd)
        zones[area] = make_zone(tmp / f'zone_{area:g}km2.tif', side, a.gsd)
    base = zonal_config({'AERIAL_RGBI': zones[a.areas[0]]}, ('AERIAL_RGBI',), monotemp_arch=a.arch,
                        output_px_meters=a.gsd, use_gpu=False, num_worker=0, output_path=str(tmp / 'out'))
    torch.manual_seed(0)
    mc = zonal_training_config(load_zonal_config(base, need_weights=False))
    model = FlairHubModel(mc, {'AERIAL_RGBI': 512}, encoder_weights=None)
    base['model_weights'] = str(save_checkpoint(model, tmp / 'weights.safetensors'))
    del model
    results = []
    print(uptime(), flush=True)
    print(f"CPU threads {torch.get_num_threads()}, bf16 autocast {'on' if bf16 else 'off (no AVX512-BF16/AMX)'} in 'ours'; "
          f"GSD {a.gsd} m; model {a.arch}; load average {os.getloadavg()[0]:.1f}", flush=True)
    for area, path in zones.items():
        for way in a.ways:
            if way == 'reference' and area not in ref_areas: continue
            cfg = json.loads(json.dumps(base))
            cfg['modalities']['AERIAL_RGBI']['input_img_path'] = str(path)
            cfg.update(default_way() if way == 'ours_default' else WAYS[way], output_name=f'{way}_{area:g}')
            if way == 'ours' and not bf16: cfg['cpu_bf16'] = False
            cp = tmp / f'{way}_{area:g}.json'; cp.write_text(json.dumps(cfg))
            r = subprocess.run([sys.executable, __file__, '--worker', str(cp)], capture_output=True, text=True, check=False)
            if r.returncode: raise RuntimeError(f"{way} on {area:g} km² failed:\n{r.stderr[-3000:]}")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            res.update(way=way, area_km2=area, gsd_m=a.gsd, px_per_s=res['out_px'] / res['wall_s'],
                       px_per_cpu_s=res['out_px'] / res['cpu_s'],
                       km2_per_h=area / (res['wall_s'] / 3600), bf16=bool(cfg['cpu_bf16']), load=os.getloadavg()[0])
            results.append(res)
            print(f"{way:10s} {area:5g} km² {res['out_px']/1e6:7.2f} Mpx {res['tiles']:5d} tiles of {res['tile_px']:4d} px  "
                  f"{res['wall_s']:8.1f} s  {res['px_per_s']/1e6:6.3f} Mpx/s  {res['km2_per_h']:8.2f} km²/h  "
                  f"CPU {res['cpu_s']:7.1f} s  {res['px_per_cpu_s']/1e6:6.3f} Mpx/CPU-s  "
                  f"peak RSS {res['peak_rss_mb']:7.0f} MB  (load {res['load']:.1f})", flush=True)
    if a.seams: results += seam_quality(a, base, zones, tmp, results)
    by = {(r['way'], r['area_km2']): r for r in results}
    if a.e2e_swin: print_e2e(by, a.areas, [w for w in a.ways if w != 'reference'])
    for area in a.areas:
        for way in ('ours', 'ours_fp32', 'ours_default'):
            if (way, area) in by and ('reference', area) in by:
                print(f"{area:g} km²: {way} / reference throughput = {by[way, area]['px_per_s'] / by['reference', area]['px_per_s']:.2f}x "
                      f"(wall), {by[way, area]['px_per_cpu_s'] / by['reference', area]['px_per_cpu_s']:.2f}x (per CPU-second)")
    for way in a.ways:
        rss = [by[way, ar]['peak_rss_mb'] for ar in a.areas if (way, ar) in by]
        if len(rss) > 1: print(f"{way}: peak RSS {min(rss):.0f}..{max(rss):.0f} MB, max/min - 1 = {max(rss)/min(rss)-1:+.1%}")
    if a.out: Path(a.out).write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
