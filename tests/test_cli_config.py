"""`flairhub --check` / `flairhub_zonal --check` end to end: the reference's own config files (unchanged) with their
data files present, many invalid configs (each must fail naming the offending key path), unknown keys (warned),
overrides (validated), and two real calls of the console scripts."""
import copy, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest, yaml
from flairhub_nb.testing import reference_dir
from flairhub_nb.cli import flairhub_main, zonal_main

os.environ.setdefault('HF_HUB_OFFLINE', '1')
REF = reference_dir()
TOY_NAMES = {'TRAIN': 'TRAIN_FLAIR-INC_TOY.csv', 'VALID': 'VALID_FLAIR-INC_TOY.csv', 'TEST': 'TEST_FLAIR-INC_TOY.csv'}


@pytest.fixture
def layout(tmp_path):
    "The reference's config folder copied unchanged to `<tmp>/cfg`, with the files its relative paths name present"
    cfg = tmp_path/'cfg'; shutil.copytree(REF/'configs'/'train', cfg)
    (tmp_path/'toy').mkdir()
    for split, name in TOY_NAMES.items():  # config_task.yaml names ../toy/<SPLIT>_FLAIR-INC_TOY.csv
        shutil.copy(REF/'toy_csv'/f'FLAIR-HUB_TOY-DATASET_{split}.csv', tmp_path/'toy'/name)
    z = tmp_path/'zcfg'; z.mkdir(); shutil.copy(REF/'configs'/'config_zonal_detection.yaml', z)
    (tmp_path/'FLAIR-HUB_LC-A_swinbase-upernet.safetensors').write_bytes(b'')  # ../<weights> in the zonal file
    (tmp_path/'ROI_D032-2019_UN-S1-U9_AERIAL_RGBI.tif').write_bytes(b'')  # ../<aerial raster>
    return tmp_path


def merged_train(layout) -> dict:
    "The reference folder's files merged by top-level key (independently of the library)"
    out = {}
    for f in sorted((layout/'cfg').glob('*.yaml')): out.update(yaml.safe_load(f.read_text()))
    return out


def put(d: dict, path: str, value):
    *head, last = path.split('.')
    for k in head: d = d.setdefault(k, {})
    d[last] = value


def check(main, argv, capsys):
    rc = main(argv); c = capsys.readouterr()
    return rc, c.out, c.err


def test_reference_train_folder_is_valid(layout, capsys):
    rc, out, err = check(flairhub_main, ['--config', str(layout/'cfg'), '--check'], capsys)
    assert (rc, err) == (0, ''), err
    assert f"train_csv: {(layout/'toy'/TOY_NAMES['TRAIN']).resolve()}" in out  # resolved against the config's folder
    assert 'num_epochs: 150' in out


def test_reference_zonal_file_is_valid(layout, capsys):
    rc, out, err = check(zonal_main, ['--conf', str(layout/'zcfg'/'config_zonal_detection.yaml'), '--check'], capsys)
    assert (rc, err) == (0, ''), err
    assert f"model_weights: {(layout/'FLAIR-HUB_LC-A_swinbase-upernet.safetensors').resolve()}" in out


TRAIN_CASES = {  # id: (changes {dotted path: value}, key path the error must name)
    'optimizer': ({'hyperparams.optimizer': 'rmsprop'}, 'hyperparams.optimizer'),
    'scheduler': ({'hyperparams.scheduler': 'cosine'}, 'hyperparams.scheduler'),
    'norm_type': ({'modalities.normalization.norm_type': 'zscore'}, 'modalities.normalization.norm_type'),
    'temporal_average': ({'modalities.pre_processings.temporal_average_sentinel2': 'weekly'},
                         'modalities.pre_processings.temporal_average_sentinel2'),
    'monitor_mode': ({'saving.ckpt_monitor_mode': 'maximum'}, 'saving.ckpt_monitor_mode'),
    'aerial_channel': ({'modalities.inputs_channels.AERIAL_RGBI': [4, 1, 5]}, 'modalities.inputs_channels.AERIAL_RGBI[2]'),
    's2_channel_zero': ({'modalities.inputs_channels.SENTINEL2_TS': [0, 3]}, 'modalities.inputs_channels.SENTINEL2_TS[0]'),
    'means_length': ({'modalities.normalization.AERIAL_RGBI_means': [100.0, 100.0]}, 'modalities.normalization.AERIAL_RGBI_means'),
    'dem_too_few_stats': ({'modalities.inputs.DEM_ELEV': True, 'modalities.normalization.DEM_ELEV_means': [311.06]},
                          'modalities.normalization.DEM_ELEV_means'),
    'accelerator': ({'hardware.accelerator': 'tpu9'}, 'hardware.accelerator'),
    'strategy': ({'hardware.strategy': 'ddp_fastest'}, 'hardware.strategy'),
    'lr_inf': ({'hyperparams.learning_rate': float('inf')}, 'hyperparams.learning_rate'),
    'lr_nan': ({'hyperparams.learning_rate': float('nan')}, 'hyperparams.learning_rate'),
    'batch_size_huge_float': ({'hyperparams.batch_size': 1e30}, 'hyperparams.batch_size'),
    'data_root_missing': ({'paths.data_root': '../nowhere'}, 'paths.data_root'),
    'class_index': ({'labels_configs.AERIAL_LABEL-COSIA.value_weights.default_exceptions': {19: 0}},
                    'labels_configs.AERIAL_LABEL-COSIA.value_weights.default_exceptions.19'),
    'per_modality_class_index': ({'labels_configs.AERIAL_LABEL-COSIA.value_weights.per_modality_exceptions': {'AERIAL_RGBI': {25: 0}}},
                                 'labels_configs.AERIAL_LABEL-COSIA.value_weights.per_modality_exceptions.AERIAL_RGBI.25'),
    'lpis_level': ({'labels_configs.ALL_LABEL-LPIS.label_channel_nomenclature': 4}, 'labels_configs.ALL_LABEL-LPIS.label_channel_nomenclature'),
    'unknown_task': ({'labels': ['AERIAL_LABEL-COSIA', 'LPIS']}, 'labels[1]'),
    'no_task': ({'labels': []}, 'labels'),
    'no_modality': ({'modalities.inputs.AERIAL_RGBI': False}, 'modalities.inputs'),
    'aux_loss_modality': ({'modalities.aux_loss.AERIAL_RGB': True}, 'modalities.aux_loss.AERIAL_RGB'),
    'dropout_probability': ({'modalities.modality_dropout.AERIAL_RGBI': 1.5}, 'modalities.modality_dropout.AERIAL_RGBI'),
    'cover_fraction': ({'modalities.pre_processings.filter_sentinel2_max_frac_cover': -0.1},
                       'modalities.pre_processings.filter_sentinel2_max_frac_cover'),
    'warmup_fraction': ({'hyperparams.warmup_fraction': 2}, 'hyperparams.warmup_fraction'),
    'epochs': ({'hyperparams.num_epochs': 0}, 'hyperparams.num_epochs'),
    'batch_size_type': ({'hyperparams.batch_size': 'four'}, 'hyperparams.batch_size'),
    'workers': ({'hardware.num_workers': -1}, 'hardware.num_workers'),
    'val_csv_missing': ({'paths.val_csv': '../toy/missing.csv'}, 'paths.val_csv'),
    'mtd_folder_for_s2': ({'modalities.inputs.SENTINEL2_TS': True}, 'paths.global_mtd_folder'),
    'ckpt_for_init': ({'tasks.train_tasks.init_weights_only_from_ckpt': True}, 'paths.ckpt_model_path'),
    'ckpt_for_predict_only': ({'tasks.train': False}, 'paths.ckpt_model_path'),
    'test_csv_for_metrics_only': ({'tasks.train': False, 'tasks.predict': False, 'tasks.metrics_only': True, 'paths.test_csv': 'nope.csv'},
                                  'paths.test_csv'),
}


@pytest.mark.parametrize('case', list(TRAIN_CASES))
def test_invalid_train_config(layout, capsys, case):
    changes, key = TRAIN_CASES[case]
    cfg = merged_train(layout)
    for p, v in changes.items(): put(cfg, p, copy.deepcopy(v))
    f = layout/'cfg1'/'config.yaml'; f.parent.mkdir(); f.write_text(yaml.safe_dump(cfg, sort_keys=False))
    rc, out, err = check(flairhub_main, ['--config', str(f), '--check'], capsys)
    assert rc == 1, (out, err)
    assert err.startswith(f'flairhub: error: invalid config {f}'), err
    assert any(l.strip().startswith(f'{key}:') for l in err.splitlines()[1:]), err  # one problem per line, key first
    assert out == ''


ZONAL_CASES = {
    'output_type': ({'output_type': 'probs'}, 'output_type'),
    'margin': ({'margin': 1024}, 'margin'),
    'tile_size': ({'img_pixels_detection': 0}, 'img_pixels_detection'),
    'weights_missing': ({'model_weights': '../none.safetensors'}, 'model_weights'),
    'channel': ({'modalities.AERIAL_RGBI.channels': [4, 1, 9]}, 'modalities.AERIAL_RGBI.channels[2]'),
    'input_missing': ({'modalities.AERIAL_RGBI.input_img_path': 'nope.tif'}, 'modalities.AERIAL_RGBI.input_img_path'),
    'no_active_task': ({'tasks': []}, 'tasks'),
}


@pytest.mark.parametrize('case', list(ZONAL_CASES))
def test_invalid_zonal_config(layout, capsys, case):
    changes, key = ZONAL_CASES[case]
    cfg = yaml.safe_load((layout/'zcfg'/'config_zonal_detection.yaml').read_text())
    for p, v in changes.items(): put(cfg, p, v)
    f = layout/'zcfg'/'bad.yaml'; f.write_text(yaml.safe_dump(cfg, sort_keys=False))
    rc, out, err = check(zonal_main, ['--config', str(f), '--check'], capsys)
    assert rc == 1, (out, err)
    assert any(l.strip().startswith(f'{key}:') for l in err.splitlines()[1:]), err


def test_duplicate_top_level_key_names_both_files(layout, capsys):
    (layout/'cfg'/'config_zextra.yaml').write_text('hyperparams:\n    batch_size: 2\n')
    rc, _, err = check(flairhub_main, ['--config', str(layout/'cfg'), '--check'], capsys)
    assert rc == 1 and 'hyperparams: defined in both config_task.yaml and config_zextra.yaml' in err, err


def test_unknown_key_warns_and_passes(layout, capsys):
    cfg = merged_train(layout); cfg['hyperparams']['optimiser'] = 'sgd'
    f = layout/'cfg1'/'config.yaml'; f.parent.mkdir(); f.write_text(yaml.safe_dump(cfg))
    rc, out, err = check(flairhub_main, ['--config', str(f), '--check'], capsys)
    assert rc == 0, err
    assert 'flairhub: warning: unknown config key hyperparams.optimiser' in err
    assert 'optimizer: adamw' in out


def test_overrides_are_applied_and_validated(layout, capsys):
    rc, out, err = check(flairhub_main, ['--config', str(layout/'cfg'), '--check', '--override', 'hyperparams.batch_size=0'], capsys)
    assert rc == 1 and '  hyperparams.batch_size: 0 must be >= 1' in err.splitlines(), err
    rc, out, err = check(flairhub_main, ['--c', str(layout/'cfg'), '--check', '-o', 'epochs=2', 'modalities=[AERIAL_RGBI, DEM_ELEV]'], capsys)
    assert rc == 0, err
    assert 'num_epochs: 2' in out and 'inputs.DEM_ELEV: True' in out
    rc, out, err = check(flairhub_main, ['--config', str(layout/'cfg'), '--check', '-o', 'epochs'], capsys)
    assert rc == 1 and err.startswith('flairhub: error: ValueError: --override') and err.count('\n') == 1, err


@pytest.mark.parametrize('text,needle', [
    ('hyperparams:\n  batch_size: 2\nsaving: {}\nhyperparams:\n  seed: 1\n', "key 'hyperparams' given twice (lines 1 and 4)"),
    ('hyperparams:\n  batch_size: 1e30\n', 'hyperparams.batch_size: expected int, got float 1e+30'),
    ('hyperparams:\n  learning_rate: .inf\n', 'hyperparams.learning_rate: inf is not a finite number'),
    ('hyperparams:\n  learning_rate: .nan\n', 'hyperparams.learning_rate: nan is not a finite number'),
    ('a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n'
     'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\nhyperparams: {seed: *f}\n', 'alias bomb'),
])
def test_bad_yaml_is_one_short_message_naming_the_file(tmp_path, capsys, text, needle):
    f = tmp_path/'config.yaml'
    f.write_text(text)
    rc, out, err = check(flairhub_main, ['--config', str(f), '--check', '--no-file-check'], capsys)
    assert rc == 1 and needle in err, err
    assert len(err) < 2000 and (str(f) in err or 'hyperparams' in err), err


def test_non_utf8_config_names_the_file(tmp_path, capsys):
    f = tmp_path/'config.yaml'
    f.write_bytes('paths:\n  out_folder: r\xe9sultats\n'.encode('latin-1'))
    rc, _, err = check(flairhub_main, ['--config', str(f), '--check'], capsys)
    assert rc == 1 and f'{f}: not UTF-8 text' in err, err


def test_empty_csv_and_missing_date_gpkg_fail_the_check(layout, capsys):
    (layout/'toy'/TOY_NAMES['VALID']).write_bytes(b'')
    (layout/'mtd').mkdir()
    rc, _, err = check(flairhub_main, ['--config', str(layout/'cfg'), '--check', '-o', 'modalities.inputs.SENTINEL2_TS=true',
                                       f'global_mtd_folder={layout/"mtd"}'], capsys)
    assert rc == 1, err
    assert any(l.strip().startswith('paths.val_csv:') and 'empty file' in l for l in err.splitlines()), err
    assert any(l.strip().startswith('paths.global_mtd_folder:') and 'GLOBAL_SENTINEL2_MTD_DATES.gpkg' in l for l in err.splitlines()), err


def test_short_override_and_unknown_override(layout, capsys):
    rc, out, err = check(flairhub_main, ['--config', str(layout/'cfg'), '--check', '-o', 'num_epochs=2'], capsys)
    assert rc == 0 and 'num_epochs: 2' in out and '[num_epochs]' not in out, (out, err)
    rc, out, err = check(flairhub_main, ['--config', str(layout/'cfg'), '--check', '-o', 'num_epoch=2'], capsys)
    assert rc == 1 and '  num_epoch: unknown override key' in err, err


def test_released_configs_check_unchanged(layout, capsys):
    """Every released model's config passes --check as shipped (with the data files it names present); surplus SPOT
    statistics give one warning, once"""
    mtd = layout/'cfg'/'FLAIR-HUB'/'GLOBAL_ALL_MTD'
    mtd.mkdir(parents=True)
    for name in ('GLOBAL_SENTINEL2_MTD_DATES.gpkg', 'GLOBAL_SENTINEL1-ASC_MTD_DATES.gpkg', 'GLOBAL_SENTINEL1-DESC_MTD_DATES.gpkg'):
        (mtd/name).write_bytes(b'placeholder')  # --check looks for the files; reading them is the dataset's job
    for src in sorted((REF/'checkpoint_manifests').glob('*.config.yaml')):
        f = layout/'cfg'/src.name
        shutil.copy(src, f)  # unchanged, beside the reference's own config folder (its ../toy CSVs exist)
        rc, out, err = check(flairhub_main, ['--config', str(f), '--check'], capsys)
        assert rc == 0, (src.name, err)
        spot = 'SPOT_RGBI: True' in out or 'inputs.SPOT_RGBI: True' in out
        lines = [l for l in err.splitlines() if 'SPOT_RGBI_means/_stds' in l]
        assert len(lines) == (1 if spot else 0), (src.name, err)
        if spot: assert 'using the first 3, [433.26, 508.75, 467.77]' in lines[0], lines


def test_missing_config_is_one_clear_line(tmp_path, capsys):
    rc, _, err = check(flairhub_main, ['--config', str(tmp_path/'none.yaml')], capsys)
    assert rc == 1 and err.count('\n') == 1 and f'config {tmp_path/"none.yaml"}: no such file' in err, err
    rc, _, err = check(zonal_main, ['--config', str(tmp_path/'none.yaml')], capsys)
    assert rc == 1 and err.startswith('flairhub_zonal: error: FileNotFoundError'), err


def _script(name: str) -> str:
    p = Path(sys.executable).parent/name
    return str(p) if p.exists() else (shutil.which(name) or pytest.fail(f'console script {name} not installed (pip install -e .)'))


def test_console_scripts(layout):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([_script('flairhub'), '--config', str(layout/'cfg'), '--check'], capture_output=True, text=True, env=env,
                       cwd=layout, timeout=120, check=False)
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert 'val_csv: ' in r.stdout
    r = subprocess.run([_script('flairhub_zonal'), '--config', str(layout/'zcfg'/'config_zonal_detection.yaml'), '--check',
                        '--override', 'output_type=probs'], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert r.returncode == 1, r.stdout
    assert "  output_type: 'probs' is not one of ['argmax', 'class_prob']" in r.stderr.splitlines(), r.stderr


@pytest.mark.slow  # a real (tiny) training run: ~15 s CPU, minutes of wall time on a busy 2-core machine
def test_flairhub_runs_training(tmp_path, capsys):
    "Without --check, `flairhub` hands the loaded config (overrides applied) to `flairhub_nb.train.cli.run`"
    from train_common import make_toy, toy_train_config
    toy = make_toy(tmp_path/'toy', n_train=4, n_val=2, n_test=2, px=32, modalities=('AERIAL_RGBI',))
    cfg = toy_train_config(toy, tmp_path/'out', modalities=('AERIAL_RGBI',), epochs=3, name='cli')
    f = tmp_path/'cfg'/'config.yaml'; f.parent.mkdir(); f.write_text(yaml.safe_dump(cfg, sort_keys=False))
    rc = flairhub_main(['--config', str(f), '-o', 'epochs=1', 'out_model_name=cli-run'])
    err = capsys.readouterr().err
    assert rc == 0, err
    out = tmp_path/'out'/'cli-run'
    used = yaml.safe_load((out/'used_csv_and_config'/'config.yaml').read_text())
    assert used['hyperparams']['num_epochs'] == 1 and used['paths']['out_model_name'] == 'cli-run'
    assert (out/'checkpoints'/'last.ckpt').exists()
    rep = json.loads(next(out.rglob('metrics.json')).read_text())
    assert len(rep['classes']) == 15
