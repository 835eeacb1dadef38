"""Validate a freshly seeded model on the val split with N CPU processes (gloo) and dump the reduced results.

Used by tests/test_train_ddp.py: `python tests/ddp_validate_script.py CONFIG.yaml N OUT.json`. With N > 1 Lightning's
DDP launcher re-runs this script once per extra rank.
"""
import json, os, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch, yaml, lightning.pytorch as pl
from flairhub_nb.train.module import FlairHubModule, FlairHubDataModule

def main(cfg_path, n, out):
    cfg = yaml.safe_load(open(cfg_path))
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    dm = FlairHubDataModule(cfg)
    module = FlairHubModule(cfg, dm.img_input_sizes('val'))
    trainer = pl.Trainer(accelerator='cpu', devices=n, strategy='ddp' if n > 1 else 'auto', logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, use_distributed_sampler=False,
                         enable_model_summary=False)
    trainer.validate(module, dm, verbose=False)
    if trainer.is_global_zero:
        res = {'confmat': {t: cm.tolist() for t, cm in module.val_confmats.items()},
               'metrics': {k: float(v) for k, v in trainer.callback_metrics.items()},
               'world_size': trainer.world_size}
        with open(out, 'w') as f: json.dump(res, f)

if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
