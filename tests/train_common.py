"""Shared helpers of the tests/test_train_*.py files: a tiny toy set and a complete training config for it."""
import copy, os
from pathlib import Path
import yaml
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from flairhub_nb.testing import reference_dir
from flairhub_nb.toy.dataset import make_toy_dataset, toy_config

TRAIN_SECTIONS = ('paths', 'tasks', 'hyperparams', 'hardware', 'saving')

def reference_train_config() -> dict:
    "The reference's four training YAMLs merged by top-level key (their keys do not overlap)"
    cfg = {}
    for f in sorted((reference_dir()/'configs'/'train').glob('*.yaml')): cfg.update(yaml.safe_load(f.read_text()))
    return cfg

def make_toy(root: Path, n_train=8, n_val=5, n_test=4, px=64, modalities=('AERIAL_RGBI', 'SENTINEL2_TS')) -> Path:
    make_toy_dataset(root, n_train=n_train, n_val=n_val, n_test=n_test, patch_px=px, workers=0, progress=False,
                     modalities=modalities)
    return root

def toy_train_config(toy: Path, out: Path, modalities=('AERIAL_RGBI', 'SENTINEL2_TS'), tasks=('AERIAL_LABEL-COSIA',),
                     epochs=1, batch_size=4, aux=True, name='toy') -> dict:
    "toy_config + the reference's training sections, a ResNet-18 UPerNet, CPU, quiet"
    cfg = toy_config(toy, modalities=modalities, tasks=tasks)
    ref = reference_train_config()
    for k in TRAIN_SECTIONS:
        cfg[k] = {**copy.deepcopy(ref[k]), **copy.deepcopy(cfg.get(k) or {})} if k in ('paths', 'tasks') else copy.deepcopy(ref[k])
    cfg['modalities']['aux_loss'].update({m: aux for m in modalities})
    cfg['models'] = {**copy.deepcopy(ref['models']), 'monotemp_model': {'arch': 'resnet18-upernet', 'new_channels_init_mode': 'random'}}
    cfg['models']['multitemp_model'].update(cfg.get('models', {}).get('multitemp_model', {}))
    cfg['paths'].update(out_folder=str(out), out_model_name=name, ckpt_model_path=None)
    cfg['hyperparams'].update(num_epochs=epochs, batch_size=batch_size, learning_rate=1e-3, seed=0)
    cfg['hardware'].update(accelerator='cpu', gpus_per_node=1, strategy='auto', num_workers=0)
    cfg['saving'].update(enable_progress_bar=False, ckpt_verbose=False)
    return cfg
