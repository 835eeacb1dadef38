"""Two CPU processes (DDP over gloo): validation metrics equal a single-process run over the same data, every
sample counted once (no DistributedSampler padding duplicates), and a full train + predict run."""
import json, subprocess, sys
from pathlib import Path
import numpy as np, pytest, yaml
from train_common import make_toy, toy_train_config

HERE = Path(__file__).parent
TASK = 'AERIAL_LABEL-COSIA'

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    # 5 validation patches: an odd count, so the two ranks get 3 and 2 and padding would duplicate one
    return make_toy(tmp_path_factory.mktemp('toy')/'toy', n_train=8, n_val=5, n_test=5)

def _validate(cfg_path, n, out):
    r = subprocess.run([sys.executable, str(HERE/'ddp_validate_script.py'), str(cfg_path), str(n), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(Path(out).read_text())

@pytest.mark.parametrize('mods,bs', [(('AERIAL_RGBI',), 2), (('AERIAL_RGBI', 'SENTINEL2_TS'), 1)])
def test_two_process_validation_equals_single_process(toy, tmp_path, mods, bs):
    cfg = toy_train_config(toy, tmp_path/'out', modalities=mods, batch_size=bs)
    (tmp_path/'cfg.yaml').write_text(yaml.safe_dump(cfg))
    one = _validate(tmp_path/'cfg.yaml', 1, tmp_path/'one.json')
    two = _validate(tmp_path/'cfg.yaml', 2, tmp_path/'two.json')
    assert one['world_size'] == 1 and two['world_size'] == 2
    assert np.array(two['confmat'][TASK]).sum() == 5 * 64 * 64     # each of the 5 patches exactly once
    assert two['confmat'] == one['confmat']
    for k in ('val_miou', 'val_miou_COSIA', 'val_oa_COSIA'): assert two['metrics'][k] == one['metrics'][k]
    # val_loss averages batch losses weighted by batch size, so different batch groupings differ slightly
    assert abs(two['metrics']['val_loss'] - one['metrics']['val_loss']) < 1e-3 * one['metrics']['val_loss']

@pytest.mark.slow
def test_two_process_train_and_predict(toy, tmp_path):
    cfg = toy_train_config(toy, tmp_path/'out', epochs=1, batch_size=2)
    cfg['hardware'].update(gpus_per_node=2, strategy='ddp')
    (tmp_path/'cfg.yaml').write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, str(HERE/'ddp_run_script.py'), str(tmp_path/'cfg.yaml')],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path/'out'/'toy'
    assert len(list((out/'results_toy'/'predictions_toy'/TASK).glob('PRED_*.tif'))) == 5
    assert np.load(out/'results_toy'/'metrics_toy'/TASK/'confmat_predict.npy').sum() == 5 * 64 * 64
    assert (out/'checkpoints'/'last.ckpt').exists()
    assert len(list(out.glob('flair-compute*.log'))) == 1   # rank 0 only

@pytest.mark.parametrize('mods,aux', [(('AERIAL_RGBI',), False), (('AERIAL_RGBI', 'SENTINEL2_TS'), False),
                                      (('AERIAL_RGBI', 'SENTINEL2_TS'), True), (('SENTINEL2_TS',), False)])
def test_every_trainable_parameter_gets_a_gradient(toy, tmp_path, mods, aux):
    "DDP runs without the unused-parameter search: the frozen set is exactly what a backward pass leaves without gradient"
    from flairhub_nb.data.dataset import pad_collate
    from flairhub_nb.train.module import FlairHubDataModule, FlairHubModule
    cfg = toy_train_config(toy, tmp_path, modalities=mods, aux=aux)
    dm = FlairHubDataModule(cfg)
    m = FlairHubModule(cfg, dm.img_input_sizes())
    b = pad_collate([dm.dataset('train')[i] for i in range(2)])
    loss, _ = m.criterion(*m(b), b)
    loss.backward()
    frozen = {n for n, p in m.model.named_parameters() if not p.requires_grad}
    assert frozen == set(m.model.unused_parameters()) and any('.fpn_stages.4.' in n for n in frozen) == bool(m.model.mono)
    assert [n for n, p in m.model.named_parameters() if p.requires_grad and p.grad is None] == []
    sd = m.state_dict()
    assert all(f'model.{n}' in sd for n in frozen)   # still in the checkpoint keys
