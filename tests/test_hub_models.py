"""Released models by name, offline: a Hugging Face cache built from the checkpoint manifests (random weights with
the released names and shapes), `FlairHubModel.from_pretrained` strict loading, the shipped training configs of all
10 released families, and `--model` on both console scripts."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch, yaml
from flairhub_nb.testing import reference_dir
from flairhub_nb.toy.hub import make_hub_cache
from flairhub_nb.models.hub import pretrained_files, pretrained_config
from flairhub_nb.models.fusion import FlairHubModel
from flairhub_nb.config import model_spec

os.environ['HF_HUB_OFFLINE'] = '1'
MAN = reference_dir()/'checkpoint_manifests'
IDS = sorted(p.name[:-len('.config.yaml')] for p in MAN.glob('*.config.yaml'))


def test_ten_released_families():
    assert len(IDS) == 10


@pytest.mark.parametrize('mid', IDS)
def test_shipped_config_gives_the_released_model(tmp_path, mid):
    "The configs a repository ships (three files) give the modalities, channels and classes the manifest lists"
    cache = make_hub_cache(tmp_path, {f'IGNF/FLAIR-HUB_{mid}_test': mid}, MAN, weights=False)
    spec = model_spec(pretrained_config(pretrained_files(f'IGNF/FLAIR-HUB_{mid}_test', cache_dir=cache)), resolved=True)
    s = json.loads((MAN/f'{mid}.json').read_text())['summary']
    assert list(spec.modalities) == s['modalities']
    assert spec.in_channels == s['model_in_channels']
    assert spec.num_classes == s['num_classes']


def test_from_pretrained_swin_tiny_strict(tmp_path):
    "Every key of a swin-tiny UPerNet release loads into the model built from its shipped config, values included"
    from safetensors.torch import load_file
    cache = make_hub_cache(tmp_path, {'IGNF/FLAIR-HUB_LC-A_RGB_swintiny-upernet': 'LC-A_RGB_swintiny'}, MAN)
    m = FlairHubModel.from_pretrained('IGNF/FLAIR-HUB_LC-A_RGB_swintiny-upernet', cache_dir=cache)
    sd, own = load_file(str(m.pretrained.weights)), m.state_dict()
    model_keys = {k[len('model.'):]: v for k, v in sd.items() if k.startswith('model.')}
    assert set(model_keys) == set(own)
    assert all(torch.equal(own[k], v) for k, v in model_keys.items())
    with torch.inference_mode(): logits, _ = m({'AERIAL_RGBI': torch.rand(1, 3, 512, 512)}, output_size=64)
    assert tuple(logits['AERIAL_LABEL-COSIA'].shape) == (1, 19, 64, 64)


def test_from_pretrained_refuses_a_mismatched_file(tmp_path):
    "A weights file of another family fails strictly, naming the file"
    cache = make_hub_cache(tmp_path, {'IGNF/FLAIR-HUB_LC-G_utae': 'LC-G'}, MAN)
    snap = next((cache/'models--IGNF--FLAIR-HUB_LC-G_utae'/'snapshots').iterdir())
    cfg = yaml.safe_load((snap/'configs_train'/'config_modalities.yaml').read_text())
    cfg['modalities']['inputs_channels']['SENTINEL2_TS'] = [1, 2, 3]
    (snap/'configs_train'/'config_modalities.yaml').write_text(yaml.safe_dump(cfg))
    with pytest.raises(Exception, match='FLAIR-HUB_LC-G_utae.safetensors'):
        FlairHubModel.from_pretrained('IGNF/FLAIR-HUB_LC-G_utae', cache_dir=cache)


def _run(args, cache, cwd):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_HUB_CACHE': str(cache)}
    exe = Path(sys.executable).parent
    return subprocess.run([str(exe/args[0]), *args[1:]], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)


def test_model_option_on_both_commands(tmp_path):
    "`--model` fills what the weights need; the zonal statistics are the ones the released SPOT model was trained with"
    cache = make_hub_cache(tmp_path/'hub', {'IGNF/FLAIR-HUB_LC-I_swinbase-upernet': 'LC-I'}, MAN, weights=False)
    (tmp_path/'spot.tif').write_bytes(b'')
    z = {'output_path': 'out', 'output_name': 'lc-i', 'img_pixels_detection': 512, 'margin': 128,
         'modalities': {'inputs': {'SPOT_RGBI': True}, 'SPOT_RGBI': {'input_img_path': 'spot.tif'}}}
    (tmp_path/'zonal.yaml').write_text(yaml.safe_dump(z))
    r = _run(['flairhub_zonal', '--config', str(tmp_path/'zonal.yaml'), '--model', 'IGNF/FLAIR-HUB_LC-I_swinbase-upernet', '--check'], cache, tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'means: [433.26, 508.75, 467.77]' in r.stdout and 'FLAIR-HUB_LC-I_swinbase-upernet.safetensors' in r.stdout
    assert r.stderr.count('SPOT_RGBI_means/_stds') == 1, r.stderr
    t = {'paths': {'out_folder': 'runs'}, 'tasks': {'train': False, 'predict': False}}
    (tmp_path/'train.yaml').write_text(yaml.safe_dump(t))
    r = _run(['flairhub', '--config', str(tmp_path/'train.yaml'), '--model', 'IGNF/FLAIR-HUB_LC-I_swinbase-upernet', '--check'], cache, tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'inputs.SPOT_RGBI: True' in r.stdout and 'ckpt_model_path: ' in r.stdout and 'inputs.AERIAL_RGBI: False' in r.stdout
    r = _run(['flairhub', '--config', str(tmp_path/'train.yaml'), '--model', 'IGNF/FLAIR-HUB_NOPE', '--check'], cache, tmp_path)
    assert r.returncode == 1 and 'not in the Hugging Face cache' in r.stderr and r.stderr.count('\n') == 1, r.stderr


def test_surplus_spot_statistics_as_the_reference_used_them():
    "LC-I's shipped config: four per-band SPOT means for channels [4,1,2]; the reference normalised with the first three"
    import warnings
    from flairhub_nb.config import data_settings, load_config
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        cfg = load_config(MAN/'LC-I.config.yaml', check_files=False)
    st = data_settings(cfg, resolved=True)
    raw = yaml.safe_load((MAN/'LC-I.config.yaml').read_text())['modalities']['normalization']
    n = len(raw['SPOT_RGBI_means']) - 1  # 3 selected channels
    assert st.channels['SPOT_RGBI'] == [4, 1, 2]
    assert st.norm_stats['SPOT_RGBI'] == (raw['SPOT_RGBI_means'][:n], raw['SPOT_RGBI_stds'][:n])
    assert sum('SPOT_RGBI_means/_stds' in str(x.message) for x in w) == 1
