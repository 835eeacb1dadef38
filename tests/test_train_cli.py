"""End-to-end runs of `flairhub_nb.train.cli.run`: the reference's config folder pointed at a toy set (train, predict,
score again from the written files), resume, initialisation from a checkpoint, predict-only."""
import json, shutil
from pathlib import Path
import numpy as np, pytest, rasterio, torch, yaml
from train_common import make_toy, toy_train_config
from flairhub_nb.config import load_config
from flairhub_nb.testing import reference_dir
from flairhub_nb.train.cli import run

TASK = 'AERIAL_LABEL-COSIA'

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp('toy')/'toy')

def load_folder(folder: Path) -> dict:
    "Merge a folder of YAMLs by top-level key, as the reference reads `--config <dir>`"
    return load_config(folder)

def copy_reference_configs(dest: Path, toy: Path, out: Path) -> Path:
    "The reference's configs/train folder, with paths pointed at the toy set and a small CPU model"
    dest.mkdir(parents=True)
    for f in (reference_dir()/'configs'/'train').glob('*.yaml'): shutil.copy(f, dest/f.name)
    def edit(name, fn):
        d = yaml.safe_load((dest/name).read_text()); fn(d); (dest/name).write_text(yaml.safe_dump(d, sort_keys=False))
    csv = toy/'csv'
    def task(d):
        d['paths'].update(out_folder=str(out), out_model_name='ref-cfg', train_csv=str(csv/'FLAIR-HUB_TOY-DATASET_TRAIN.csv'),
                          val_csv=str(csv/'FLAIR-HUB_TOY-DATASET_VALID.csv'), test_csv=str(csv/'FLAIR-HUB_TOY-DATASET_TEST.csv'),
                          global_mtd_folder=str(toy/'GLOBAL_ALL_MTD') + '/')
        d['hyperparams'].update(num_epochs=1, batch_size=4, learning_rate=1e-3)
        d['hardware'].update(accelerator='cpu')
        d['saving'].update(enable_progress_bar=False)
    def mods(d):
        d['modalities']['inputs'] = {m: m in ('AERIAL_RGBI', 'SENTINEL2_TS') for m in d['modalities']['inputs']}
    def models(d): d['models']['monotemp_model']['arch'] = 'resnet18-upernet'
    edit('config_task.yaml', task); edit('config_modalities.yaml', mods); edit('config_models.yaml', models)
    return dest

def test_reference_config_folder_train_predict_score(toy, tmp_path):
    cfg = load_folder(copy_reference_configs(tmp_path/'configs', toy, tmp_path/'out'))
    assert run(cfg) == 0
    out = tmp_path/'out'/'ref-cfg'
    assert sorted(p.name for p in out.glob('flair-compute*.log')) == ['flair-computeref-cfg.log']
    assert (out/'used_csv_and_config'/'config.yaml').exists() and len(list((out/'used_csv_and_config').glob('*.csv'))) == 3
    ck = sorted(p.name for p in (out/'checkpoints').iterdir())
    assert 'last.ckpt' in ck and any(c.startswith('ckpt-epoch=00') and c.endswith('_ref-cfg.ckpt') for c in ck)
    preds = sorted((out/'results_ref-cfg'/'predictions_ref-cfg'/TASK).glob('PRED_*.tif'))
    assert len(preds) == 4 and (out/'results_ref-cfg'/'predictions_ref-cfg'/TASK/f'{TASK}.qml').exists()
    with rasterio.open(preds[0]) as p:
        assert p.dtypes[0] == 'uint8' and p.crs.to_epsg() == 2154 and p.colormap(1)[0][:3] == (0xdb, 0x0e, 0x9a)
        lab = next(toy.rglob(preds[0].name[len('PRED_'):]))
        with rasterio.open(lab) as l: assert p.transform == l.transform and p.shape == l.shape
        assert p.read(1).max() < 19
    mdir = out/'results_ref-cfg'/'metrics_ref-cfg'/TASK
    rep = json.loads((mdir/'metrics.json').read_text())
    assert rep['Avg_metrics_name'] == ['mIoU', 'Overall Accuracy', 'F-score', 'Precision', 'Recall']
    assert len(rep['classes']) == 15 and 0 <= rep['Avg_metrics'][0] <= 100
    cm = np.load(mdir/'confmat_predict.npy'); assert cm.sum() == 4 * 64 * 64
    assert (mdir/'confmat_predict.png').stat().st_size > 0 and (mdir/'confmat_predict.csv').exists()
    # score again from the written files only
    cfg['tasks'].update(train=False, predict=False, metrics_only=True)
    assert run(cfg) == 0
    assert np.array_equal(np.load(mdir/'confmat_metrics_only.npy'), cm)
    assert json.loads((mdir/'metrics.json').read_text()) == rep
    assert len(list(out.glob('flair-compute*.log'))) == 2  # second run logs to flair-computeref-cfg_v1.log

def test_resume_continues_epochs_and_optimizer(toy, tmp_path):
    cfg = toy_train_config(toy, tmp_path/'out', epochs=1)
    cfg['tasks']['predict'] = False
    run(cfg)
    ck = tmp_path/'out'/'toy'/'checkpoints'/'last.ckpt'
    first = torch.load(ck, map_location='cpu', weights_only=False)
    assert first['global_step'] == 2
    shutil.copy(ck, tmp_path/'resume.ckpt')
    cfg['hyperparams']['num_epochs'] = 2
    cfg['tasks']['train_tasks']['resume_training_from_ckpt'] = True
    cfg['paths']['ckpt_model_path'] = str(tmp_path/'resume.ckpt')
    run(cfg)
    second = torch.load(ck, map_location='cpu', weights_only=False)
    assert second['global_step'] == 4   # continued, not restarted
    sch = second['lr_schedulers'][0]
    assert sch['last_epoch'] == 4 and sch['total_steps'] == 4    # OneCycle re-planned over both epochs
    assert second['optimizer_states'][0]['state'][0]['step'] == 4

def test_init_weights_and_predict_only(toy, tmp_path):
    cfg = toy_train_config(toy, tmp_path/'a', epochs=1)
    run(cfg)
    a = tmp_path/'a'/'toy'
    best = next(p for p in (a/'checkpoints').iterdir() if p.name.startswith('ckpt-'))
    # predict only, from the trained checkpoint: same metrics as the training run's own prediction
    p = toy_train_config(toy, tmp_path/'b', epochs=1)
    p['tasks'].update(train=False, predict=True); p['paths']['ckpt_model_path'] = str(best)
    run(p)
    m = lambda root: json.loads((root/'toy'/'results_toy'/'metrics_toy'/TASK/'metrics.json').read_text())
    assert m(tmp_path/'b') == m(tmp_path/'a')
    # init weights only: a fresh run whose weights start from the checkpoint (a 1e-12 SGD rate keeps them)
    i = toy_train_config(toy, tmp_path/'c', epochs=1)
    i['tasks']['predict'] = False
    i['tasks']['train_tasks']['init_weights_only_from_ckpt'] = True; i['paths']['ckpt_model_path'] = str(best)
    i['hyperparams'].update(optimizer='sgd', learning_rate=1e-12, scheduler=None)
    run(i)
    from flairhub_nb.train.module import FlairHubModule
    dst0 = FlairHubModule(i, {'AERIAL_RGBI': 64, 'SENTINEL2_TS': 10}).state_dict()
    src = torch.load(best, map_location='cpu', weights_only=False)['state_dict']
    dst = torch.load(tmp_path/'c'/'toy'/'checkpoints'/'last.ckpt', map_location='cpu', weights_only=False)
    assert dst['global_step'] == 2  # a fresh run: its own first epoch
    conv = [k for k in src if k.endswith('.weight') and src[k].ndim == 4]
    assert conv and all(torch.allclose(src[k], dst['state_dict'][k], rtol=0, atol=1e-8) for k in conv)
    assert not all(torch.allclose(src[k], dst0[k], atol=1e-3) for k in conv if k in dst0)  # far from a fresh init

def test_config_errors_name_the_problem(toy, tmp_path):
    cfg = toy_train_config(toy, tmp_path/'out')
    cfg['tasks']['train_tasks']['resume_training_from_ckpt'] = True
    cfg['paths']['ckpt_model_path'] = str(tmp_path/'nope.ckpt')
    with pytest.raises((FileNotFoundError, ValueError), match='nope.ckpt'): run(cfg)
    cfg['tasks']['train_tasks']['init_weights_only_from_ckpt'] = True
    with pytest.raises(ValueError, match='choose one|init_weights_only_from_ckpt'): run(cfg)
    cfg = toy_train_config(toy, tmp_path/'out2')
    cfg['tasks'].update(train=False, predict=True)
    with pytest.raises((KeyError, ValueError), match='ckpt_model_path'): run(cfg)
    cfg = toy_train_config(toy, tmp_path/'out3'); cfg['hyperparams']['optimizer'] = 'lion'
    with pytest.raises(ValueError, match="'lion'"): run(cfg)
