#!/usr/bin/env python
"""Training throughput and peak memory of flairhub_nb models (synthetic batches, no data on disk).

Configs (modalities as the released LC-A / LC-F families, arch selectable):
  LC-A  aerial RGBI (3 channels) -> COSIA
  LC-F  aerial + Sentinel-2 + Sentinel-1 ASC + DESC -> COSIA, aux losses on every modality

Two train steps at equal math (same model, class-weighted cross-entropy with the aux losses applied, argmax
predictions, AdamW), measured side by side in one run:
  ours       what FlairHubModule.training_step does: integer label maps, FlairHubCriterion, device-side confusion
             counts (`ConfusionMatrix.update`, no host sync), the loss kept on the device
  reference  the reference's way: one-hot label tensors argmax-ed in the step, nn.CrossEntropyLoss per head,
             softmax + argmax, a torchmetrics MulticlassJaccardIndex (weighted, K classes) updated every step, and
             the loss read back to the host for per-step synced logging
Both without the Trainer overhead; fp32 by default (bf16 autocast with --bf16, the CUDA default).

  python benchmarks/bench_train.py                       # both configs, CPU, swin-tiny UPerNet, 256 px
  python benchmarks/bench_train.py --size 512 --batch 4 --device cuda --bf16 --channels-last
Prints `uptime`, then per config and variant: samples/s, wall and CPU (process) seconds per step, peak memory
(CPU: max RSS; CUDA: max allocated), and the reference / ours ratios.
"""
import argparse, copy, os, resource, subprocess, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch, yaml
from flairhub_nb.config import model_spec
from flairhub_nb.testing import reference_dir
from flairhub_nb.train.module import FlairHubModule, build_optimizer
import torch.nn as nn, torch.nn.functional as F

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
    for t, ts in spec.tasks.items():
        b[t] = torch.randint(0, 15, (B, size, size), generator=g)
        b[f'{t}_ONEHOT'] = F.one_hot(b[t], ts.num_classes).permute(0, 3, 1, 2).float()   # the reference's label format
    return {k: v.to(device) for k, v in b.items()}

def peak_mem_mb(device):
    if device.type == 'cuda': return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

def ours_step(module):
    "FlairHubModule.training_step's work after the forward: criterion, device-side confusion counts and loss sums"
    def step(batch, logits, aux):
        loss, parts = module.criterion(logits, aux, batch)
        for t in module.tasks: module.confmats['train'][t].update(logits[t].argmax(1), batch[t])
        module._accumulate('train', loss, parts, args_batch(batch))
        return loss
    return step

def reference_step(module):
    "The reference's step at equal math: one-hot targets, nn.CrossEntropyLoss per head, torchmetrics per step, loss read back"
    from torchmetrics.classification import MulticlassJaccardIndex
    spec, dev = module.spec, next(module.parameters()).device
    ce = {t: nn.CrossEntropyLoss(weight=torch.tensor(s.class_weights, dtype=torch.float32, device=dev)) for t, s in spec.tasks.items()}
    aux_ce = {(m, t): nn.CrossEntropyLoss(weight=torch.tensor(s.modality_weights[m], dtype=torch.float32, device=dev)) for t, s in spec.tasks.items() for m in spec.aux_modalities}
    iou = {t: MulticlassJaccardIndex(s.num_classes, average='weighted').to(dev) for t, s in spec.tasks.items()}
    def step(batch, logits, aux):
        total = 0.
        for t, s in spec.tasks.items():
            target = batch[f'{t}_ONEHOT'].argmax(1)
            a = [spec.aux_weight[m] * aux_ce[(m, t)](aux[f'aux_{m}_{t}'].float(), target) for m in spec.aux_modalities]
            total = total + s.task_weight * (ce[t](logits[t].float(), target) + (torch.stack(a).mean() if a else 0.))
            iou[t].update(torch.softmax(logits[t], 1).argmax(1), target)
        float(total.detach())   # per-step synced logging reads the loss back
        return total
    return step

def args_batch(batch): return next(v.shape[0] for v in batch.values() if torch.is_tensor(v))

def bench(name, args):
    device = torch.device(args.device)
    cfg = make_cfg(name, args.arch)
    module = FlairHubModule(cfg, {m: (10 if m in TS else args.size) for m in model_spec(cfg).modalities})
    module = module.to(device).train()
    if args.channels_last: module = module.to(memory_format=torch.channels_last)
    batch = make_batch(module.spec, args.batch, args.size, args.T, device)
    if args.channels_last: batch = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 and v.is_floating_point() else v for k, v in batch.items()}
    dtype = torch.bfloat16 if args.bf16 else None
    nparams = sum(p.numel() for p in module.model.parameters()) / 1e6
    steps = {}
    order = (('reference', reference_step), ('ours', ours_step)) if args.reference_first else (('ours', ours_step), ('reference', reference_step))
    for variant, make in order:
        opt = build_optimizer([p for p in module.parameters() if p.requires_grad], {'optimizer': 'adamw', 'learning_rate': 1e-4})
        steps[variant] = (make(module), opt)
    def step(variant):
        head, opt = steps[variant]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None): loss = head(batch, *module(batch))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None): fixed = module(batch)
    def head_only(variant):
        "The part where the variants differ: loss (forward + backward to the logits) and metrics, on fixed logits"
        logits, aux = ({k: v.detach().float().requires_grad_() for k, v in d.items()} for d in fixed)
        steps[variant][0](batch, logits, aux).backward()
    for _ in range(args.warmup):
        for v in steps: step(v)
    times = {v: [] for v in steps}
    for _ in range(args.steps):   # interleaved, so that a change of machine load hits both variants alike
        for v in steps:
            if device.type == 'cuda': torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            step(v)
            if device.type == 'cuda': torch.cuda.synchronize()
            times[v].append((time.perf_counter() - t, time.process_time() - c))
    heads = {v: [] for v in steps}
    for _ in range(5 * args.steps):
        for v in steps:
            if device.type == 'cuda': torch.cuda.synchronize()
            t = time.perf_counter()
            head_only(v)
            if device.type == 'cuda': torch.cuda.synchronize()
            heads[v].append(time.perf_counter() - t)
    med = {v: tuple(sorted(x[i] for x in ts)[len(ts) // 2] for i in (0, 1)) for v, ts in times.items()}
    hmed = {v: sorted(ts)[len(ts) // 2] * 1e3 for v, ts in heads.items()}
    for v, (dt, dc) in med.items():
        print(f"{name:5s} {v:9s} {args.arch} {args.size}px B={args.batch} T={args.T} {device.type}{' bf16' if args.bf16 else ' fp32'}: "
              f"{args.batch / dt:.2f} samples/s, {dt:.3f} s/step wall, {dc:.3f} s/step CPU (medians of {args.steps}), "
              f"{nparams:.1f} M params", flush=True)
    (w0, c0), (w1, c1) = med['ours'], med['reference']
    print(f"{name:5s} reference / ours: wall x{w1 / w0:.2f}, CPU x{c1 / c0:.2f}; peak mem {peak_mem_mb(device):.0f} MB", flush=True)
    print(f"{name:5s} loss + metrics on fixed logits: ours {hmed['ours']:.1f} ms, reference {hmed['reference']:.1f} ms "
          f"(x{hmed['reference'] / hmed['ours']:.2f})", flush=True)

def uptime() -> str:
    try: return subprocess.run(['uptime'], capture_output=True, text=True, check=False).stdout.strip()
    except OSError: return f"load average {os.getloadavg()}"

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
    p.add_argument('--reference-first', action='store_true', help='run the reference variant first in each round (order check)')
    a = p.parse_args()
    if a.device.startswith('cuda') and not a.bf16: a.bf16 = True
    if a.threads: torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {a.device}")
    print(f"uptime: {uptime()}", flush=True)
    for c in a.configs: bench(c, a)
    print(f"uptime: {uptime()}", flush=True)
