"""The reference zonal config on the project's toy zone (`flairhub_nb.toy.zone.make_toy_zone`): aerial, DEM, SPOT,
Sentinel-2 (with its cloud mask) and Sentinel-1 through a tiny random fusion model, via `flairhub_zonal` (run as
`python -m flairhub_nb.zonal.cli`, the same command)."""
import os, subprocess, sys
import geopandas as gpd
import pytest
import rasterio
import torch
import yaml
from rio_cogeo.cogeo import cog_validate

os.environ.setdefault('HF_HUB_OFFLINE', '1')
from flairhub_nb.toy.zone import make_toy_zone
from flairhub_nb.models.checkpoint import save_checkpoint
from flairhub_nb.models.fusion import FlairHubModel
from flairhub_nb.config import load_zonal_config, zonal_training_config
from flairhub_nb.zonal.plan import plan_zone

MODS = ('AERIAL_RGBI', 'DEM_ELEV', 'SPOT_RGBI', 'SENTINEL2_TS', 'SENTINEL1-ASC_TS')


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp('toyzone')
    return d, make_toy_zone(d / 'zone', size_m=204.8, aerial_gsd=0.8, modalities=MODS, workers=0, progress=False)


def _run(cfg, folder):
    p = folder / 'cfg.yaml'
    p.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, '-m', 'flairhub_nb.zonal.cli', '--config', str(p)], capture_output=True,
                          text=True, timeout=900, check=False, env={**os.environ, 'HF_HUB_OFFLINE': '1'})


def test_toy_zone_all_modalities(toy):
    d, zone = toy
    cfg = zone.zonal_config(d / 'dummy', d / 'out', modalities=MODS, monotemp_arch='test_convnext-upernet',
                            img_pixels_detection=128, margin=16, batch_size=2, write_dataframe=True)
    (d / 'dummy').write_bytes(b'x')
    chk = load_zonal_config(cfg)
    plan = plan_zone({m: chk['modalities'][m]['input_img_path'] for m in MODS}, 128, 16, chk['output_px_meters'])
    torch.manual_seed(0)
    cfg['model_weights'] = str(save_checkpoint(FlairHubModel(zonal_training_config(chk), plan.patch_sizes()), d / 'w.safetensors'))
    r = _run(cfg, d)
    assert r.returncode == 0, r.stderr
    f = d / 'out' / f'{zone.name}_AERIAL_LABEL-COSIA_argmax.tif'
    assert cog_validate(str(f), quiet=True)[0]
    with rasterio.open(f) as ds, rasterio.open(zone.files['AERIAL_RGBI']) as src:
        assert (ds.crs, ds.transform, ds.shape) == (src.crs, src.transform, src.shape)
        a = ds.read(1)
        assert a.max() < 19
    tiles = gpd.read_file(d / 'out' / f'{zone.name}_slicing_job.gpkg')
    assert len(tiles) == plan.n_tiles and tiles.crs.to_epsg() == 2154
