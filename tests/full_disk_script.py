"""Run by tests/test_train_checkpoints.py: save checkpoints with AtomicCheckpointIO into a folder whose filesystem
refuses the second, larger write (a 2 MiB tmpfs, or RLIMIT_FSIZE); print what happened as one JSON line."""
import json, os, sys
from pathlib import Path
import torch
from flairhub_nb.train.callbacks import AtomicCheckpointIO

disk = Path(sys.argv[1])
cio = AtomicCheckpointIO()
cio.save_checkpoint({'epoch': 1, 'w': torch.zeros(1000)}, disk/'last.ckpt')
res = {}
for name in ('last.ckpt', 'new.ckpt'):
    try:
        cio.save_checkpoint({'epoch': 2, 'w': torch.zeros(1_000_000)}, disk/name)
        res[name] = None
    except OSError as e: res[name] = [e.errno, str(e)]
res['files'] = sorted(p.name for p in disk.iterdir())
res['last_epoch'] = cio.load_checkpoint(disk/'last.ckpt')['epoch']
print('RESULT ' + json.dumps(res), flush=True)
