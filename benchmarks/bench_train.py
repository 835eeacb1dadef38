#!/usr/bin/env python
"""Training throughput and peak memory of flairhub_nb models (synthetic batches, no data on disk).

Configs (modalities as the released LC-A / LC-F families, arch selectable):
  LC-A  aerial RGBI (3 channels) -> COSIA
  LC-F  aerial + Sentinel-2 + Sentinel-1 ASC + DESC -> COSIA, aux losses on every modality

Each step = forward + loss (FlairHubCriterion, aux applied) + backward + AdamW step, i.e. what
FlairHubModule.training_step does inside Lightning, without the Trainer overhead.

  python benchmarks/bench_train.py                       # both configs, CPU, swin-tiny UPerNet, 256 px
  python benchmarks/bench_train.py --size 512 --batch 4 --device cuda --bf16 --channels-last
Prints one line per config: samples/s, s/step, peak memory (CPU: max RSS; CUDA: max allocated).
"""
import argparse, copy, os, resource, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch, yaml
from flairhub_nb.config import model_spec
from flairhub_nb.testing import reference_dir
from flairhub_nb.train.module import FlairHubModule, build_optimizer

TS = {'SENTINEL2_TS': 10, 'SENTINEL1-ASC_TS': 2, 'SENTINEL1-DESC_TS': 2}
DATES = {'SENTINEL2_TS': 'SENTINEL2_DATES', 'SENTINEL1-ASC_TS': 'SENTINEL1-ASC_DATES', 'SENTINEL1-DESC_TS': 'SENTINEL1-DESC_DATES'}
MODS = {'LC-A': ['AERIAL_RGBI'], 'LC-F': ['AERIAL_RGBI', 'SENTINEL2_TS', 'SENTINEL1-ASC_TS', 'SENTINEL1-DESC_TS']}

def make_cfg(name, arch):
    cfg = yaml.safe_load(open(reference_dir()/'checkpoint_manifests'/f'{name}.config.yaml'))
    cfg = copy.deepcopy(cfg)
    cfg['models']['monotemp_model']['arch'] = arch
    return cfg

def make_batch(spec, B, size, T, device):
    g = torch.Generator().manual_seed(0); b = {}
    for m in spec.modalities:
        if m in TS:
            b[m] = torch.randn(B, T, spec.in_channels[m], 10, 10, generator=g)
            b[DATES[m]] = torch.sort(torch.randint(-130, 200, (B, T), generator=g).float(), 1).values
            b[f'{m}_PAD_MASK'] = torch.zeros(B, T, dtype=torch.bool)
        else: b[m] = torch.randn(B, spec.in_channels[m], size, size, generator=g)
    for t in spec.tasks: b[t] = torch.randint(0, 15, (B, size, size), generator=g)
    return {k: v.to(device) for k, v in b.items()}

def peak_mem_mb(device):
    if device.type == 'cuda': return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

def bench(name, args):
    device = torch.device(args.device)
    cfg = make_cfg(name, args.arch)
    module = FlairHubModule(cfg, {m: (10 if m in TS else args.size) for m in model_spec(cfg).modalities})
    module = module.to(device).train()
    if args.channels_last: module = module.to(memory_format=torch.channels_last)
    opt = build_optimizer(module.parameters(), {'optimizer': 'adamw', 'learning_rate': 1e-4})
    batch = make_batch(module.spec, args.batch, args.size, args.T, device)
    if args.channels_last: batch = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 and v.is_floating_point() else v for k, v in batch.items()}
    dtype = torch.bfloat16 if args.bf16 else None
    if device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits, aux = module(batch)
            loss, _ = module.criterion(logits, aux, batch)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return loss
    for _ in range(args.warmup): step()
    if device.type == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.steps): step()
    if device.type == 'cuda': torch.cuda.synchronize()
    dt = (time.perf_counter() - t) / args.steps
    nparams = sum(p.numel() for p in module.model.parameters()) / 1e6
    print(f"{name:5s} {args.arch} {args.size}px B={args.batch} T={args.T} {device.type}{' bf16' if args.bf16 else ''}: "
          f"{args.batch / dt:.2f} samples/s, {dt:.3f} s/step, peak mem {peak_mem_mb(device):.0f} MB, {nparams:.1f} M params", flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--configs', nargs='+', default=['LC-A', 'LC-F'], choices=list(MODS))
    p.add_argument('--arch', default='swin_tiny_patch4_window7_224-upernet')
    p.add_argument('--size', type=int, default=256, help='aerial patch size (512 in FLAIR-HUB)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--T', type=int, default=12, help='time-series length')
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--bf16', action='store_true', help='bf16 autocast (default on CUDA)')
    p.add_argument('--channels-last', action='store_true')
    a = p.parse_args()
    if a.device.startswith('cuda') and not a.bf16: a.bf16 = True
    if a.threads: torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {a.device}")
    for c in a.configs: bench(c, a)
