"""Run `flairhub_nb.train.cli.run` on a YAML config (used by tests/test_train_ddp.py for multi-process CPU runs;
Lightning's DDP launcher re-executes this script for each extra rank)."""
import os, sys
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch, yaml
from flairhub_nb.train.cli import run

if __name__ == '__main__':
    torch.set_num_threads(1)
    sys.exit(run(yaml.safe_load(open(sys.argv[1]))))
