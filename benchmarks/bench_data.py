#!/usr/bin/env python
"""Training data loading rate: flairhub_nb's FlairHubDataset + pad_collate vs a loader written the reference's way.

Both read the same toy FLAIR-HUB set (generated once with flairhub_nb.toy.dataset, then reused) and build the full
multimodal sample: all 7 modalities (aerial [4,1,2], PAN, DEM [DSM, DSM-DTM], SPOT [4,1,2], S2 filtered for clouds,
S1 ASC/DESC) and both labels (COSIA, LPIS level 1), with their dates.

The reference-style loader (`ReferenceStyleDataset`, below) follows BEHAVIOUR.md §2 and §9.3: every __getitem__
reopens every GeoTIFF with default GDAL settings, normalises per channel in float64, ships labels as float32 one-hot
(K,H,W), looks dates up through the label file name in dicts of datetimes/diff_days built at start-up from the date
GeoPackages (geopandas + iterrows), filters S2 dates one by one, and collates with zero-padding of *_TS/*_DATES.

  python benchmarks/bench_data.py                         # 250 x 512 px toy set in /tmp/flairhub_toy_bench
  python benchmarks/bench_data.py --root DIR --n 64 --workers 0 2 --batch 4
A third loader, `flairhub_nb packed`, reads the same train split from a pack written once by
flairhub_nb.data.pack.pack_dataset (uncompressed memmaps; --pack DIR, default <root>_pack; its packing time is printed
separately, and a current pack is reused).
Prints samples/s per loader and worker count, and the speed-up.

--raw (the training input since issue 13): the packed loader in raw mode (`FlairHubDataset(cfg, 'train', packed=dir,
raw=True)`, whole batches from `__getitems__`, augmentation left to `BatchTransform` on the device), its host CPU per
sample beside the CPU time to memcpy the same sample's raw bytes (into one sample-sized buffer), measured in the same
run in interleaved rounds (CPU time of this process, `time.process_time`; medians of --repeats rounds after a warm-up
round; the ratio is the median of each round's own ratio, so load drifting on a shared machine cancels out), with the
minor page faults per sample, `uptime` before and after, samples per core-second, the device-side transform's cost
(on CPU here; CUDA when present), the same loader with 2 workers (wall rate, the main process's CPU and the workers'
CPU from /proc), and the same columns read from a Zarr v3 store (`--zarr-path DIR` adds a folder holding the `zarr`
package to the path) and from LitData's chunks through its `StreamingDataLoader` (`--litdata-path DIR`, a folder with
`litdata` and its dependencies; neither is a dependency of the project). Its last line is the target (<= 2x):
`packed loader: X CPU-ms/sample = Rx memcpy (Y ms)`.

  python benchmarks/bench_data.py --raw --n-train 32 --n 32 --zarr-path /tmp/zarr_pkgs --litdata-path /tmp/litdata_pkgs
(`pip install --target /tmp/zarr_pkgs --no-deps zarr numcodecs donfig google-crc32c`; `pip install --target
/tmp/litdata_pkgs --no-deps litdata boto3 botocore s3transfer jmespath obstore tifffile`)

Measured on a later, slower 2-core AMD EPYC VM (memcpy 0.39-0.52 ms/sample; 2026-12-02, load 0.7-1.0), --raw:
  32 samples, batch 4: before whole-patch/whole-date rows (30cfca6) loader 1.32 CPU-ms/sample = 2.67-2.70x memcpy,
  after (559b529) 1.04-1.06 = 2.51-2.52x; 2 workers 809-857 -> 973 samples/s. 64 samples: batch 4 2.51x, batch 8
  2.25x, batch 16 2.04x. Into batch buffers (one copy per batch) the memcpy itself is 1.45-1.69x here. With
  GLIBC_TUNABLES=glibc.cpu.x86_non_temporal_threshold=0x40000 (streaming stores: no read-for-ownership of the
  batch memory) the loader takes 0.89 CPU-ms/sample instead of 1.05.
Measured (--raw, 32 samples, batch 4; 2-core AMD EPYC VM; three runs 06:58-06:59, load 1.0-1.2):
  loader 0.330-0.358 CPU-ms/sample = 2.20-2.28x memcpy (0.143-0.159 ms); into batch buffers one copy per batch
  1.40-1.47x, in 512 KiB rows 1.02-1.17x; 2 workers 3,112-3,735 samples/s wall, main process 0.051-0.072 CPU-ms/sample,
  workers 0.42-0.48 (together 3.3-3.7x memcpy: two workers and the main process share the memory bus).
  Before the batch arena (05:46, load 0.2): loader 0.506 = 2.65x; 2 workers 96 samples/s, main process 1.691 ms/sample.
  LitData 0.2.76 (same 6 mono-temporal columns + labels, uncompressed 64 MB chunks, StreamingDataLoader, 0 workers):
  0.758 CPU-ms/sample against the pack's 0.166 (4.6x); Zarr v3 3.69 ms (uncompressed), 13.06 ms (zstd) against 0.84.
"""
import argparse
import datetime
import json
import os
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np
import rasterio
import torch
from torch.utils.data import DataLoader, Dataset

from flairhub_nb.toy.dataset import make_toy_dataset
from flairhub_nb.toy.scene import TOY_LABELS, TOY_MODALITIES

TS_BANDS = {'SENTINEL2_TS': 10, 'SENTINEL1-ASC_TS': 2, 'SENTINEL1-DESC_TS': 2}
DATES_GPKG = {'SENTINEL2_TS': 'GLOBAL_SENTINEL2_MTD_DATES.gpkg', 'SENTINEL1-ASC_TS': 'GLOBAL_SENTINEL1-ASC_MTD_DATES.gpkg',
              'SENTINEL1-DESC_TS': 'GLOBAL_SENTINEL1-DESC_MTD_DATES.gpkg'}
DATES_KEY = {'SENTINEL2_TS': 'SENTINEL2_DATES', 'SENTINEL1-ASC_TS': 'SENTINEL1-ASC_DATES',
             'SENTINEL1-DESC_TS': 'SENTINEL1-DESC_DATES'}


# ----------------------------------------------------------------------------------------------------------------
# A loader written the reference's way (see the module docstring); our own code, from the behaviour report.
def ref_prepare_dates(gpkg, patch_ids, ref_date='05-15'):
    "patch_id -> {'dates': [datetime], 'diff_dates': np.array}, like the reference's start-up date preparation"
    import geopandas as gpd
    gdf = gpd.read_file(gpkg, engine='pyogrio', use_arrow=True)
    gdf = gdf[gdf['patch_id'].isin(patch_ids)]
    month, day = (int(v) for v in ref_date.split('-'))
    out = {}
    for _, row in gdf.iterrows():
        dates, diffs = [], []
        for v in json.loads(row['acquisition_dates']).values():
            try: d = datetime.datetime.strptime(v, '%Y%m%d')
            except ValueError: print('unparsable date', v); continue
            dates.append(d); diffs.append((d - datetime.datetime(d.year, month, day)).days)
        out[row['patch_id']] = {'dates': dates, 'diff_dates': np.array(diffs)}
    return out


def ref_norm(img, means, stds):
    img = img.astype(np.float64)
    for i in range(len(img)): img[i] = (img[i] - means[i]) / stds[i]
    return img


def ref_filter(ts, mask, max_cloud=1, max_snow=1, frac=0.05):
    T, _, H, W = mask.shape
    keep = []
    for t in range(T):
        clear = (mask[t, 1] <= max_cloud) & (mask[t, 0] <= max_snow)
        if clear.sum() >= (1 - frac) * H * W: keep.append(t)
    if not keep:
        keep = [t for t in range(T) if (mask[t, 0] <= max_snow).sum() >= (1 - frac) * H * W]
    return keep


class ReferenceStyleDataset(Dataset):
    def __init__(self, cfg, split_csv):
        import pandas as pd
        self.cfg = cfg
        df = pd.read_csv(split_csv)
        base = os.path.dirname(os.path.abspath(split_csv))
        self.paths = {c: [os.path.normpath(os.path.join(base, p)) for p in df[c]] for c in df.columns if c != 'patch_id'}
        mods = cfg['modalities']
        self.inputs = [m for m in TOY_MODALITIES if mods['inputs'][m]]
        self.norm = mods['normalization']
        self.channels = mods['inputs_channels']
        ids = [p for p in df['patch_id']]
        mtd = cfg['paths']['global_mtd_folder']
        self.dates = {m: ref_prepare_dates(mtd + DATES_GPKG[m], ids) for m in TS_BANDS if m in self.inputs}

    def __len__(self): return len(self.paths['AERIAL_RGBI'])

    def _date_key(self, label_path):
        parts = os.path.basename(label_path).split('_')
        return '_'.join([parts[0], parts[-2], parts[-1].split('.')[0]])

    def __getitem__(self, i):
        out = {}
        key = self._date_key(self.paths['AERIAL_LABEL-COSIA'][i])
        for m in self.inputs:
            path = self.paths[m][i]
            if m in TS_BANDS:
                with rasterio.open(path) as src: arr = src.read()
                ts = arr.reshape(-1, TS_BANDS[m], *arr.shape[1:])
                ts = ts[:, [c - 1 for c in self.channels[m]]]
                diff = self.dates[m][key]['diff_dates']
                if m == 'SENTINEL2_TS':
                    with rasterio.open(self.paths['SENTINEL2_MSK-SC'][i]) as src: msk = src.read()
                    keep = ref_filter(ts, msk.reshape(-1, 2, *msk.shape[1:]))
                    ts, diff = ts[keep], diff[keep]
                out[m] = torch.as_tensor(ts, dtype=torch.float32)
                out[DATES_KEY[m]] = torch.as_tensor(diff, dtype=torch.float32)
                continue
            with rasterio.open(path) as src:
                img = src.read(self.channels[m]) if m in ('AERIAL_RGBI', 'SPOT_RGBI') else src.read()
            if m == 'DEM_ELEV': img = np.stack([img[0], img[0] - img[1]])
            img = ref_norm(img, self.norm[f'{m}_means'], self.norm[f'{m}_stds'])
            out[m] = torch.as_tensor(img, dtype=torch.float32)
        for t in TOY_LABELS:
            with rasterio.open(self.paths[t][i]) as src: lab = src.read(1)
            k = len(self.cfg['labels_configs'][t]['value_name'])
            ohe = np.stack([lab == c for c in range(k)]).astype(np.float32)
            out[t] = torch.as_tensor(ohe, dtype=torch.float32)
            out[f'ID_{t}'] = self.paths[t][i]
        return out


def ref_pad_collate(batch):
    out = {}
    for key in batch[0]:
        vals = [b[key] for b in batch]
        if key.endswith(('_TS', '_DATES')):
            T = max(v.shape[0] for v in vals)
            out[key] = torch.stack([torch.nn.functional.pad(v, [0, 0] * (v.ndim - 1) + [0, T - v.shape[0]]) for v in vals])
        elif isinstance(vals[0], torch.Tensor): out[key] = torch.stack(vals)
        else: out[key] = vals
    return out


# ----------------------------------------------------------------------------------------------------------------
def make_loader(ds, collate, workers, batch, n):
    idx = torch.utils.data.Subset(ds, range(min(n, len(ds))))
    return DataLoader(idx, batch_size=batch, num_workers=workers, collate_fn=collate, shuffle=False,
                      persistent_workers=workers > 0)


def one_pass(dl):
    "(samples/s wall, CPU ms/sample of this process) for one pass over the loader"
    t0, c0, k = time.perf_counter(), time.process_time(), 0
    for b in dl: k += len(b['AERIAL_LABEL-COSIA'])
    return k / (time.perf_counter() - t0), 1000 * (time.process_time() - c0) / k


def compare(loaders, repeats):
    "Interleaved passes (one warm-up each, then `repeats` rounds alternating loaders); best rate per loader"
    for dl in loaders.values(): one_pass(dl)
    best = {k: (0.0, float('inf')) for k in loaders}
    for _ in range(repeats):
        for k, dl in loaders.items():
            r, c = one_pass(dl)
            best[k] = (max(best[k][0], r), min(best[k][1], c))
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--root', default='/tmp/flairhub_toy_bench', help='toy set folder (generated if absent)')
    p.add_argument('--patch-px', type=int, default=512)
    p.add_argument('--n', type=int, default=80, help='samples per pass (from the train split)')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    p.add_argument('--repeats', type=int, default=None, help='interleaved rounds (default 3; 9 with --raw)')
    p.add_argument('--pack', default=None, help='pack folder for the packed loader (default: <root>_pack)')
    p.add_argument('--no-packed', action='store_true', help='leave out the packed loader')
    p.add_argument('--n-train', type=int, default=150, help='toy train patches to generate')
    p.add_argument('--raw', action='store_true', help='only the raw packed loader against memcpy (and Zarr)')
    p.add_argument('--zarr-path', default=None, help='folder with the zarr package (appended to sys.path)')
    p.add_argument('--litdata-path', default=None, help='folder with the litdata package and its dependencies (appended to sys.path)')
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    toy = make_toy_dataset(a.root, n_train=a.n_train, patch_px=a.patch_px, progress=True)
    if a.repeats is None: a.repeats = 9 if a.raw else 3
    if a.raw: return raw_main(a, toy)
    print(f"toy set: {len(toy)} patches of {a.patch_px} px in {a.root} (ready in {time.perf_counter() - t0:.1f} s)")
    from flairhub_nb.data.dataset import FlairHubDataset, pad_collate
    cfg = toy.config(modalities=TOY_MODALITIES, tasks=TOY_LABELS)
    t0 = time.perf_counter(); ours = FlairHubDataset(cfg, 'train'); t_ours = time.perf_counter() - t0
    t0 = time.perf_counter(); ref = ReferenceStyleDataset(cfg, cfg['paths']['train_csv']); t_ref = time.perf_counter() - t0
    packed = None
    if not a.no_packed:
        from flairhub_nb.data.pack import pack_dataset
        pdir = a.pack or a.root.rstrip('/') + '_pack'
        existed = os.path.exists(pdir)
        t0 = time.perf_counter(); pack_dataset(cfg, pdir, splits=('train',), progress=False); t_pack = time.perf_counter() - t0
        sz = sum(f.stat().st_size for f in __import__('pathlib').Path(pdir).rglob('*') if f.is_file()) / 2**30
        print(f"pack: {pdir} ({sz:.2f} GiB, train split, {len(ours)} patches) "
              + (f"reused (checked in {t_pack:.1f} s)" if existed else f"written in {t_pack:.1f} s ({len(ours) / t_pack:.1f} patches/s)"))
        packed = FlairHubDataset(cfg, 'train', packed=pdir)
        s_p, s_g = packed[0], ours[0]
        for k, v in s_g.items():  # identical samples
            assert (torch.equal(v, s_p[k]) if isinstance(v, torch.Tensor) else v == s_p[k]), k
    s_o, s_r = ours[0], ref[0]
    for k in ('AERIAL_RGBI', 'DEM_ELEV', 'SPOT_RGBI', 'SENTINEL2_TS', 'SENTINEL2_DATES'):  # same data
        assert torch.allclose(s_o[k], s_r[k], atol=1e-4), k
    assert torch.equal(s_o['AERIAL_LABEL-COSIA'], s_r['AERIAL_LABEL-COSIA'].argmax(0))
    mb = lambda s: sum(v.numel() * v.element_size() for v in s.values() if isinstance(v, torch.Tensor)) / 2**20
    print(f"sample size: ours {mb(s_o):.1f} MiB, reference-style {mb(s_r):.1f} MiB; "
          f"init: ours {t_ours:.2f} s, reference-style {t_ref:.2f} s")
    print("\n| loader | workers | samples/s | speed-up | main-process CPU ms/sample |\n|---|---|---|---|---|")
    for w in a.workers:
        loaders = {'reference-style': make_loader(ref, ref_pad_collate, w, a.batch, a.n),
                   'flairhub_nb': make_loader(ours, pad_collate, w, a.batch, a.n)}
        if packed is not None: loaders['flairhub_nb packed'] = make_loader(packed, pad_collate, w, a.batch, a.n)
        res = compare(loaders, a.repeats)
        base = res['reference-style'][0]
        for k, (r, c) in res.items(): print(f"| {k} | {w} | {r:.1f} | {r / base:.1f}x | {c:.0f} |")
    print(f"\n{os.cpu_count()} CPU cores, batch {a.batch}, {min(a.n, len(ours))} samples per pass, best of {a.repeats} interleaved passes after a warm-up pass; "
          f"load average {os.getloadavg()[0]:.1f} (1 min) / {os.getloadavg()[1]:.1f} (5 min)")


# ----------------------------------------------------------------------------------------------------------------
def _cpu_per(fn, n):
    "CPU seconds of this process per item for fn() doing n items"
    c0 = time.process_time(); fn(); return (time.process_time() - c0) / n


def _faults_per(fn, n):
    "(CPU seconds, minor page faults) of this process per item for fn() doing n items"
    import resource
    f0, c0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    fn()
    return (time.process_time() - c0) / n, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n


def _uptime():
    import subprocess
    return subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()


def _raw_setup(a, toy):
    "The raw packed dataset (augmentation on: on the device), its loader, one batch, and the memcpy workloads"
    from torch.utils.data import Subset
    from flairhub_nb.data.dataset import FlairHubDataset, pad_collate
    from flairhub_nb.data.pack import pack_dataset
    cfg = toy.config(modalities=TOY_MODALITIES, tasks=TOY_LABELS)
    cfg['modalities']['pre_processings']['use_augmentation'] = True
    pdir = a.pack or a.root.rstrip('/') + '_pack'
    t0 = time.perf_counter(); pack_dataset(cfg, pdir, splits=('train',), progress=False, overwrite=True); t_pack = time.perf_counter() - t0
    ds = FlairHubDataset(cfg, 'train', packed=pdir, raw=True)
    n = min(a.n, len(ds)) // a.batch * a.batch
    dl = DataLoader(Subset(ds, range(n)), batch_size=a.batch, num_workers=0, collate_fn=pad_collate)
    b = next(iter(dl))
    per = {k: v.numel() * v.element_size() // a.batch for k, v in b.items() if isinstance(v, torch.Tensor)}
    return ds, pdir, n, dl, b, per, t_pack


def raw_main(a, toy):
    import statistics
    import sys
    from flairhub_nb.data.transforms import BatchTransform
    load0 = _uptime()
    ds, pdir, n, dl, b, per, t_pack = _raw_setup(a, toy)
    nbytes = sum(per.values())
    src = np.random.default_rng(0).integers(0, 255, nbytes, np.uint8)  # one sample's bytes: stays in the CPU cache
    dst = np.empty_like(src)
    parts = [(src[o:o + k], dst[o:o + k]) for o, k in zip(np.cumsum([0] + list(per.values()))[:-1], per.values())]
    ram = np.random.default_rng(1).integers(0, 255, (n, nbytes), np.uint8)  # n samples' bytes: read from RAM, as from the page cache
    dstb = [np.empty((a.batch, nbytes), np.uint8) for _ in range(2)]  # two batch buffers: the consumer holds the last batch
    from flairhub_nb.data.pack import _PIECE
    per_p = -(-nbytes // _PIECE)  # the same copy in per_p rows of <= _PIECE bytes per sample (what run_copy does with large rows)
    piece = nbytes // per_p  # (the last nbytes - per_p * piece < per_p bytes of a sample are left out)
    ramp = ram.reshape(-1)[:n * per_p * piece].reshape(n * per_p, piece)
    dstp = [b.reshape(-1)[:a.batch * per_p * piece].reshape(a.batch * per_p, piece) for b in dstb]
    work = {'loader': lambda: [None for _ in dl],
            'memcpy': lambda: [np.copyto(dst, ram[i]) for i in range(n)],
            'memcpy into batch buffers': lambda: [np.copyto(dstb[k % 2], ram[s:s + a.batch]) for k, s in enumerate(range(0, n, a.batch))],
            f'memcpy into batch buffers, {_PIECE >> 10} KiB pieces': lambda: [np.take(ramp, np.arange(s * per_p, (s + a.batch) * per_p), 0, dstp[k % 2], 'clip')
                                                      for k, s in enumerate(range(0, n, a.batch))],
            'memcpy (cache-hot)': lambda: [np.copyto(dst, src) for _ in range(n)],
            'memcpy per key (cache-hot)': lambda: [np.copyto(d, s_) for _ in range(n) for s_, d in parts]}
    res = {k: [] for k in work}
    for r in range(a.repeats + 1):  # interleaved rounds; the first one warms up and is dropped
        for k, fn in work.items():
            if r: res[k].append(_faults_per(fn, n))
            else: fn()
    med = {k: statistics.median(c for c, _ in v) for k, v in res.items()}
    flt = {k: statistics.median(f for _, f in v) for k, v in res.items()}
    ratio = statistics.median(l[0] / m[0] for l, m in zip(res['loader'], res['memcpy']))  # each round's own ratio
    tf = BatchTransform.for_dataset(ds)
    t_tf = statistics.median(_cpu_per(lambda: [tf(bb) for bb in [b] * (n // a.batch)], n) for _ in range(2))
    print(f"raw packed loader, {n} samples of {a.patch_px} px, 7 modalities + 2 labels, batch {a.batch}, 0 workers, "
          f"torch threads 1; pack written in {t_pack:.1f} s; raw bytes per sample {nbytes / 2**20:.2f} MiB "
          f"({', '.join(f'{k} {v / 2**10:.0f} KiB' for k, v in per.items() if v > 2**12)})")
    print(f"uptime before: {load0}")
    print(f"\n| measure | CPU ms / sample (median of {a.repeats}) | vs memcpy | minor page faults / sample |\n|---|---|---|---|")
    for k, v in med.items(): print(f"| {k} | {1000 * v:.3f} | {v / med['memcpy']:.2f}x | {flt[k]:.0f} |")
    print(f"| transform (CPU, not part of the loader) | {1000 * t_tf:.3f} | {t_tf / med['memcpy']:.2f}x | |")
    print(f"\n{1 / med['loader']:.0f} samples per core-second ({1 / med['memcpy']:.0f} for the bare memcpy); memcpy = the sample's "
          f"bytes copied from RAM (n distinct samples, as the pack's pages) into one sample-sized buffer; into batch buffers = "
          f"the same bytes into two alternating batch-sized buffers (what any loader handing out batches writes; one copy per batch, "
          f"and in rows of <= {_PIECE >> 10} KiB with np.take as run_copy does); "
          f"cache-hot = one buffer copied again and again")
    raw_workers(ds, n, a, med['memcpy'])
    if torch.cuda.is_available():
        bd = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in b.items()}
        tf(bd); torch.cuda.synchronize(); t0 = time.perf_counter()
        for _ in range(20): tf(bd)
        torch.cuda.synchronize(); print(f"BatchTransform on {torch.cuda.get_device_name()}: {1000 * (time.perf_counter() - t0) / (20 * a.batch):.3f} ms/sample")
    if a.zarr_path:
        sys.path.append(a.zarr_path)
        zarr_compare(ds, pdir, n, a)
    if a.litdata_path:
        sys.path.append(a.litdata_path)
        litdata_compare(ds, pdir, n, a)
    print(f"\n{os.cpu_count()} CPU cores; uptime after: {_uptime()}")
    print(f"packed loader: {1000 * med['loader']:.3f} CPU-ms/sample = {ratio:.2f}x memcpy ({1000 * med['memcpy']:.3f} ms) "
          f"(target <= 2x; median of {a.repeats} interleaved rounds, CPU time of this process)")


def _proc_cpu(pid: int) -> float:
    "CPU seconds (user + system) of process `pid` so far, from /proc (clock-tick resolution)"
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf('SC_CLK_TCK')


def raw_workers(ds, n, a, memcpy_s, w=2, passes=20):
    "Wall rate, the main process's CPU and the workers' CPU with `w` workers (batches cross in one shared-memory arena each)"
    from torch.utils.data import Subset
    from flairhub_nb.data.dataset import pad_collate
    dlw = DataLoader(Subset(ds, range(n)), batch_size=a.batch, num_workers=w, collate_fn=pad_collate, persistent_workers=True)
    [None for _ in dlw]
    pids = [p.pid for p in dlw._iterator._workers]
    t0, c0, w0 = time.perf_counter(), time.process_time(), sum(map(_proc_cpu, pids))
    for _ in range(passes): [None for _ in dlw]
    k = passes * n
    wall, cpu, wcpu = (time.perf_counter() - t0) / k, (time.process_time() - c0) / k, (sum(map(_proc_cpu, pids)) - w0) / k
    print(f"{w} workers: {1 / wall:.0f} samples/s wall; CPU ms/sample: main process {1000 * cpu:.3f} (receiving batches), "
          f"workers {1000 * wcpu:.3f}, together {1000 * (cpu + wcpu):.3f} = {(cpu + wcpu) / memcpy_s:.2f}x memcpy "
          f"({passes} passes of {n} samples; workers' CPU from /proc, 10 ms ticks)")


def zarr_compare(ds, pdir, n, a):
    "The mono-temporal modalities and labels of the same patches from Zarr v3 (one chunk per sample), against our gather"
    import shutil
    import zarr
    from flairhub_nb.config import MONO_MODALITIES
    cols = [m for m in ds.st.modalities if m in MONO_MODALITIES] + list(ds.st.tasks)
    rows = list(range(n))
    out = {}
    for comp in ('none', 'zstd'):
        zdir = pdir + f'_zarr_{comp}'
        shutil.rmtree(zdir, ignore_errors=True)
        g = zarr.open_group(zdir, mode='w')
        t0 = time.perf_counter()
        for c in cols:
            x = ds.packed.gather(c, rows).numpy()
            kw = {'compressors': None} if comp == 'none' else {}
            g.create_array(c, shape=x.shape, dtype=x.dtype, chunks=(1,) + x.shape[1:], **kw)[:] = x
        t_w = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in __import__('pathlib').Path(zdir).rglob('*') if f.is_file())
        arrs = {c: zarr.open_array(f'{zdir}/{c}', mode='r') for c in cols}
        def read_zarr(arrs=arrs):
            for s in range(0, n, a.batch):
                for c in cols: arrs[c][s:s + a.batch]
        read_zarr()
        out[f'zarr v3 ({comp})'] = (min(_cpu_per(read_zarr, n) for _ in range(a.repeats)), size, t_w)
    def read_pack():
        for s in range(0, n, a.batch):
            for c in cols: ds.packed.gather(c, rows[s:s + a.batch])
    read_pack()
    size = sum(np.load(f'{pdir}/train/{c}.npy', mmap_mode='r').nbytes for c in cols) * n // len(ds)
    out['flairhub_nb pack (memmap)'] = (min(_cpu_per(read_pack, n) for _ in range(a.repeats)), size, float('nan'))
    print(f"\nsame {len(cols)} columns ({', '.join(cols)}) of {n} patches, batch {a.batch}, read batch-wise, zarr {zarr.__version__}:")
    print("| store | CPU ms / sample | size MiB | write s |\n|---|---|---|---|")
    for k, (c, sz, tw) in out.items(): print(f"| {k} | {1000 * c:.3f} | {sz / 2**20:.1f} | {tw:.1f} |")


def litdata_compare(ds, pdir, n, a):
    "The mono-temporal modalities and labels of the same patches as LitData chunks (optimize, uncompressed), read through its StreamingDataLoader, against our gather"
    import shutil
    import litdata
    from flairhub_nb.config import MONO_MODALITIES
    cols = [m for m in ds.st.modalities if m in MONO_MODALITIES] + list(ds.st.tasks)
    ldir = pdir + '_litdata'
    shutil.rmtree(ldir, ignore_errors=True)
    t0 = time.perf_counter()
    litdata.optimize(fn=_litdata_sample, inputs=[(pdir, ds.packed.split, cols, i) for i in range(n)], output_dir=ldir,
                     chunk_bytes='64MB', num_workers=1, mode='overwrite')
    t_w = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in __import__('pathlib').Path(ldir).rglob('*') if f.is_file())
    sd = litdata.StreamingDataset(ldir)
    dl = litdata.StreamingDataLoader(sd, batch_size=a.batch, num_workers=0)
    def read_lit(): [None for _ in dl]
    read_lit()
    t_l = min(_cpu_per(read_lit, n) for _ in range(a.repeats))
    rows = list(range(n))
    def read_pack():
        for s_ in range(0, n, a.batch):
            for c in cols: ds.packed.gather(c, rows[s_:s_ + a.batch])
    read_pack()
    t_p = min(_cpu_per(read_pack, n) for _ in range(a.repeats))
    print(f"\nsame {len(cols)} columns of {n} patches, batches of {a.batch}, litdata {litdata.__version__} (written in {t_w:.1f} s, "
          f"{size / 2**20:.1f} MiB): StreamingDataLoader {1000 * t_l:.3f} CPU-ms/sample, flairhub_nb pack {1000 * t_p:.3f} ({t_l / t_p:.1f}x)")


def _litdata_sample(job):
    "One patch's stored bands of `cols` as numpy arrays (LitData's optimize calls this in its writer process)"
    from flairhub_nb.data.pack import PackedSplit
    pdir, split, cols, i = job
    ps = PackedSplit(pdir, split)
    return {c: ps.gather(c, [i], shared=False).numpy()[0].copy() for c in cols}


if __name__ == '__main__':
    main()
