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


def test_packed_batches_go_to_page_locked_memory_only_on_cuda_without_workers(tmp_path):
    "The data module reads packed batches into pinned memory (`BatchBuffers.pin`) only where the loader would pin them itself"
    from types import SimpleNamespace
    from flairhub_nb.data.pack import pack_dataset
    from flairhub_nb.train.module import FlairHubDataModule
    toy = make_toy(tmp_path/'toy', n_train=4, n_val=2, n_test=2, px=32)
    cfg = toy_train_config(toy, tmp_path/'out', epochs=1)
    cfg['paths']['packed_dir'] = str(pack_dataset(cfg, tmp_path/'pack', progress=False))
    for workers, device, pinned in ((0, 'cuda', True), (2, 'cuda', False), (0, 'cpu', False)):
        dm = FlairHubDataModule(cfg, num_workers=workers)
        dm.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=SimpleNamespace(type=device)))
        dl = dm._loader(dm.dataset('train'), 2)
        assert (dl.pin_memory, dm.dataset('train').packed.buffers.pin) == (device == 'cuda', pinned), (workers, device)
