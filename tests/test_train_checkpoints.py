"""Checkpoints that never lie and failures that are loud (issue 13): `last.ckpt` is the last completed epoch, writes are
atomic on a full disk, every load is `weights_only`, truncated files are named, a NaN loss stops training naming the
batch, Ctrl-C exits 130 with a resumable checkpoint, a resumed run equals an uninterrupted one, duplicated patch ids
are refused."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch, yaml
import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from train_common import make_toy, toy_train_config
from flairhub_nb.models.checkpoint import CheckpointFormatError
from flairhub_nb.train.callbacks import AtomicCheckpointIO, NonFiniteLossError
from flairhub_nb.train.cli import run
from flairhub_nb.train.module import FlairHubDataModule, FlairHubModule, build_trainer, fit

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy(tmp_path_factory.mktemp('toy')/'toy', n_train=8, n_val=4, n_test=4, px=32, modalities=('AERIAL_RGBI',))

def aerial_cfg(toy, out, **kw):
    cfg = toy_train_config(toy, out, modalities=('AERIAL_RGBI',), aux=False, **kw)
    cfg['tasks']['predict'] = False
    return cfg

def load(p): return torch.load(p, map_location='cpu', weights_only=True)

def test_last_ckpt_is_the_last_epoch_when_the_best_came_first(toy, tmp_path):
    cfg = aerial_cfg(toy, tmp_path, epochs=3)
    cfg['hyperparams']['learning_rate'] = 0   # frozen weights: val mIoU never improves after epoch 0
    run(cfg)
    ck = tmp_path/'toy'/'checkpoints'
    best = [p for p in ck.iterdir() if p.name.startswith('ckpt-')]
    assert len(best) == 1 and best[0].name.startswith('ckpt-epoch=00')
    assert load(ck/'last.ckpt')['epoch'] == 2 and load(ck/'last.ckpt')['global_step'] == 6
    s = json.loads((tmp_path/'toy'/'run_summary.json').read_text())
    assert s['best_checkpoint'] == f'checkpoints/{best[0].name}' and s['last_checkpoint'] == 'checkpoints/last.ckpt'
    assert s['epochs_completed'] == 3
    assert not [p for p in ck.iterdir() if '.tmp' in p.name]

def _full_disk_run(disk: Path, wrap: list[str] | None = None, fsize: int | None = None) -> subprocess.CompletedProcess:
    "tests/full_disk_script.py on `disk`, inside `wrap` (e.g. a user+mount namespace) or under RLIMIT_FSIZE"
    import resource
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    cmd = [sys.executable, str(Path(__file__).with_name('full_disk_script.py')), str(disk)]
    return subprocess.run((wrap or []) + cmd, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit if fsize else None)

def _full_disk_result(r: subprocess.CompletedProcess) -> dict:
    line = [l for l in r.stdout.splitlines() if l.startswith('RESULT ')]
    assert r.returncode == 0 and line, (r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    return json.loads(line[-1][7:])

def test_full_disk_names_the_file_and_leaves_no_partial_file(tmp_path):
    """A write that the filesystem refuses: the error names the file, nothing partial is left, the previous file is whole.
    The disk is a real 2 MiB tmpfs (mounted directly as root, else in a user + mount namespace); where neither is
    allowed (a container without CAP_SYS_ADMIN), the kernel's per-process file-size limit refuses the write (EFBIG)."""
    disk = tmp_path/'disk'
    disk.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(disk)], capture_output=True).returncode == 0
    try:
        if mounted: r, errno_, why = _full_disk_run(disk), 28, 'No space left on device'
        else:
            wrap = ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c',
                    f'mount -t tmpfs -o size=2m tmpfs "{disk}" && exec "$0" "$@"']
            r, errno_, why = _full_disk_run(disk, wrap), 28, 'No space left on device'
            if r.returncode and 'RESULT' not in r.stdout:  # no namespaces either: the file-size limit
                r, errno_, why = _full_disk_run(disk, fsize=1 << 20), 27, 'File too large'
        res = _full_disk_result(r)
    finally:
        if mounted: subprocess.run(['umount', str(disk)], check=False)
    for name in ('last.ckpt', 'new.ckpt'):
        assert res[name] and res[name][0] == errno_, res
        assert f'{name} not written ({why})' in res[name][1] and 'no partial file' in res[name][1], res
    assert res['files'] == ['last.ckpt'], res   # no temporary left behind, no new.ckpt
    assert res['last_epoch'] == 1, res          # the previous file is whole

def test_file_size_limit_is_refused_like_a_full_disk(tmp_path):
    "The unprivileged route of the test above, run everywhere: RLIMIT_FSIZE makes the kernel refuse the write (EFBIG)"
    res = _full_disk_result(_full_disk_run(tmp_path, fsize=1 << 20))
    assert res['last.ckpt'][0] == 27 and 'last.ckpt not written (File too large)' in res['last.ckpt'][1], res
    assert res['files'] == ['last.ckpt'] and res['last_epoch'] == 1, res

class Evil:
    def __reduce__(self): return (Path.touch, (Path(os.environ['EVIL_MARK']),))

def test_resume_never_unpickles(toy, tmp_path, monkeypatch):
    mark = tmp_path/'code_ran'
    monkeypatch.setenv('EVIL_MARK', str(mark))
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')   # torch's switch back to full unpickling when not explicit
    torch.save({'state_dict': {}, 'epoch': 0, 'x': Evil()}, tmp_path/'evil.ckpt')
    cfg = aerial_cfg(toy, tmp_path/'out')
    cfg['tasks']['train_tasks']['resume_training_from_ckpt'] = True
    cfg['paths']['ckpt_model_path'] = str(tmp_path/'evil.ckpt')
    with pytest.raises(CheckpointFormatError, match=r'evil\.ckpt: refused by torch.load\(weights_only=True\)'): run(cfg)
    assert not mark.exists()

def test_truncated_resume_checkpoint_is_named(toy, tmp_path):
    cfg = aerial_cfg(toy, tmp_path)
    run(cfg)
    raw = (tmp_path/'toy'/'checkpoints'/'last.ckpt').read_bytes()
    (tmp_path/'cut.ckpt').write_bytes(raw[:len(raw) // 2])
    cfg['tasks']['train_tasks']['resume_training_from_ckpt'] = True
    cfg['paths']['ckpt_model_path'] = str(tmp_path/'cut.ckpt')
    with pytest.raises(CheckpointFormatError, match=r'cut\.ckpt: not a complete, loadable checkpoint'): run(cfg)

class NaNPixels(torch.utils.data.Dataset):
    "The toy train split with one NaN pixel in one patch"
    def __init__(self, ds, bad): self.ds, self.bad, self.patch_ids, self.source = ds, bad, ds.patch_ids, ds.source
    def __len__(self): return len(self.ds)
    def __getitem__(self, i):
        s = self.ds[i]
        if s['patch_id'] == self.bad: s['AERIAL_RGBI'][0, 0, 0] = float('nan')
        return s

def test_nan_loss_stops_training_naming_epoch_step_and_patch(toy, tmp_path):
    cfg = aerial_cfg(toy, tmp_path, epochs=3)
    dm = FlairHubDataModule(cfg)
    bad, sizes = dm.dataset('train').patch_ids[5], dm.img_input_sizes()
    dm.datasets['train'] = NaNPixels(dm.dataset('train'), bad)
    pl.seed_everything(0, verbose=False)
    module = FlairHubModule(cfg, sizes)
    trainer = build_trainer(cfg, tmp_path/'run', enable_model_summary=False)
    with pytest.raises(NonFiniteLossError, match=rf'training loss is nan at epoch 0, step \d; batch patch ids: .*{bad}'):
        fit(trainer, module, dm)

def test_duplicated_patch_ids_are_an_error(toy, tmp_path):
    cfg = aerial_cfg(toy, tmp_path)
    csv = Path(cfg['paths']['train_csv'])
    lines, dup = csv.read_text().splitlines(), csv.with_name(f'dup_{tmp_path.name}.csv')   # next to it: same relative paths
    dup.write_text('\n'.join(lines + [lines[1]]) + '\n')
    cfg['paths']['train_csv'] = str(dup)
    try:
        with pytest.raises(ValueError, match=r'dup_.*\.csv: 1 patch id\(s\) listed more than once in the train split'):
            FlairHubDataModule(cfg).dataset('train')
    finally: dup.unlink()

class StopAfter(Callback):
    "End `fit` after `n` epochs, as a killed job would, keeping the run's planned length"
    def __init__(self, n): self.n = n
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.n: trainer.should_stop = True

def _fit(cfg, out, resume=None, stop=None):
    pl.seed_everything(0, verbose=False)
    dm = FlairHubDataModule(cfg)
    module = FlairHubModule(cfg, dm.img_input_sizes())
    trainer = build_trainer(cfg, out, extra_callbacks=[StopAfter(stop)] if stop else [], enable_model_summary=False)
    fit(trainer, module, dm, ckpt_path=resume)
    return module.state_dict(), trainer

def test_resume_from_epoch_end_equals_uninterrupted_run(toy, tmp_path):
    cfg = aerial_cfg(toy, tmp_path, epochs=4)
    cfg['modalities']['pre_processings']['use_augmentation'] = True   # random draws in every step
    cfg['saving']['ckpt_earlystopping_patience'] = 100
    whole, _ = _fit(cfg, tmp_path/'whole')
    _, t = _fit(cfg, tmp_path/'part', stop=2)
    assert t.current_epoch == 2 and load(tmp_path/'part'/'checkpoints'/'last.ckpt')['epoch'] == 1
    resumed, t = _fit(cfg, tmp_path/'resumed', resume=tmp_path/'part'/'checkpoints'/'last.ckpt')
    assert t.global_step == 8
    assert all(torch.equal(whole[k], resumed[k]) for k in whole), [k for k in whole if not torch.equal(whole[k], resumed[k])][:5]

CTRL_C_SCRIPT = """
import faulthandler, signal, sys
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's report if Ctrl-C is not acted on
print('SIGINT handler at start:', signal.getsignal(signal.SIGINT), file=sys.stderr, flush=True)
from flairhub_nb.cli import flairhub_main
sys.exit(flairhub_main(['--config', sys.argv[1]]))
"""

def _sigint_default():
    "In the child before exec: SIGINT's default disposition, as a terminal's process starts with (an ignored signal is inherited)"
    signal.signal(signal.SIGINT, signal.SIG_DFL)

def test_ctrl_c_exits_130_with_a_resumable_checkpoint(toy, tmp_path):
    cfg = aerial_cfg(toy, tmp_path/'out', epochs=1000)
    cfg['saving']['ckpt_earlystopping_patience'] = 10_000
    (tmp_path/'cfg.yaml').write_text(yaml.safe_dump(cfg))
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    p = subprocess.Popen([sys.executable, '-c', CTRL_C_SCRIPT, str(tmp_path/'cfg.yaml')], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, preexec_fn=_sigint_default)
    t0 = time.time()
    for line in p.stdout:   # wait for the first epoch line
        if line.startswith('epoch 1/1000'): break
        assert time.time() - t0 < 600
    p.send_signal(signal.SIGINT)
    try: out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:  # say where it is: every thread's stack, then stop it
        p.send_signal(signal.SIGUSR1)
        time.sleep(3)
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"SIGINT not acted on in 300 s (this test process's SIGINT handler: {signal.getsignal(signal.SIGINT)}); "
                    f"the run's stderr:\n{err[-6000:]}")
    assert p.returncode == 130, err[-3000:]
    assert 'flairhub: error: interrupted' in err
    ck = tmp_path/'out'/'toy'/'checkpoints'/'interrupted.ckpt'
    assert f'resumable checkpoint {ck}' in out
    state = load(ck)
    assert state['global_step'] >= 2 and state['optimizer_states'] and 'loops' in state
    # resume from it: the run continues from that step
    cfg['hyperparams']['num_epochs'] = state['epoch'] + 2
    cfg['tasks']['train_tasks']['resume_training_from_ckpt'] = True
    cfg['paths'].update(ckpt_model_path=str(ck), out_folder=str(tmp_path/'again'))
    assert run(cfg) == 0
    assert load(tmp_path/'again'/'toy'/'checkpoints'/'last.ckpt')['epoch'] == state['epoch'] + 1

class _GetsTheCtrlC:
    "An object whose finalizer receives the SIGINT: Python reports the KeyboardInterrupt raised there as 'ignored' and drops it"
    def __del__(self):
        signal.raise_signal(signal.SIGINT)
        sum(range(100))  # bytecode after the signal: its handler runs here, inside the finalizer

class CtrlCInAFinalizer(Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == 2: _GetsTheCtrlC()  # made and collected at once

def test_a_ctrl_c_dropped_in_a_finalizer_still_interrupts(toy, tmp_path):
    cfg = aerial_cfg(toy, tmp_path, epochs=3)
    dm = FlairHubDataModule(cfg)
    trainer = build_trainer(cfg, tmp_path/'run', extra_callbacks=[CtrlCInAFinalizer()], enable_model_summary=False)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a plain `python` process
    try:
        with pytest.raises(KeyboardInterrupt, match='resumable checkpoint'):
            fit(trainer, FlairHubModule(cfg, dm.img_input_sizes()), dm)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not the SIG_IGN Lightning leaves
    finally: signal.signal(signal.SIGINT, before)
    state = load(tmp_path/'run'/'checkpoints'/'interrupted.ckpt')
    assert state['global_step'] == 2 and state['epoch'] == 0  # stopped at the next boundary, not after 3 epochs
