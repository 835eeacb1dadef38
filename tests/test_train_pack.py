"""`flairhub --config` with `paths.packed_dir` trains from the pack written by `flairhub_pack` (raw batches, normalised
and cast on the device), with the same weights as training from the GeoTIFFs; the rasters are not read."""
import copy, shutil
import torch, yaml
from train_common import make_toy, toy_train_config
from flairhub_nb.cli import flairhub_main, pack_main
from flairhub_nb.train.cli import run

KEEP = ('csv', 'GLOBAL_ALL_MTD', 'toy_stats.json')   # what a node with only the pack still has

def test_flairhub_config_trains_from_the_pack(tmp_path):
    toy = make_toy(tmp_path/'toy', n_train=8, n_val=4, n_test=4, px=32)
    cfg = toy_train_config(toy, tmp_path/'tif', epochs=2, aux=True)
    cfg['tasks']['predict'] = False
    assert run(copy.deepcopy(cfg)) == 0
    cfg['paths'].update(packed_dir=str(tmp_path/'pack'), out_folder=str(tmp_path/'packed'))
    (tmp_path/'cfg.yaml').write_text(yaml.safe_dump(cfg))
    assert pack_main(['--config', str(tmp_path/'cfg.yaml')]) == 0
    (tmp_path/'elsewhere').mkdir()
    for p in toy.iterdir():   # the GeoTIFFs go away: training must read the pack
        if p.name not in KEEP: shutil.move(str(p), str(tmp_path/'elsewhere'/p.name))
    assert not list(toy.rglob('*.tif'))
    assert flairhub_main(['--config', str(tmp_path/'cfg.yaml')]) == 0
    a = torch.load(tmp_path/'tif'/'toy'/'checkpoints'/'last.ckpt', map_location='cpu', weights_only=True)
    b = torch.load(tmp_path/'packed'/'toy'/'checkpoints'/'last.ckpt', map_location='cpu', weights_only=True)
    assert a['global_step'] == b['global_step'] == 4
    diff = [k for k in a['state_dict'] if not torch.allclose(a['state_dict'][k], b['state_dict'][k], rtol=1e-5, atol=1e-6)]
    assert diff == [], diff[:5]
