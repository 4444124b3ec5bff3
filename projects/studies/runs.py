"""One study run: a config trained with one seed exactly as a user would, its tests, and the
record that lets a long study resume.

A run lives in its own directory: `study_config.py` (the whole config it trains, seed and
overrides merged in), mmengine's logs and checkpoints, `robustness/` (the tests of
`tools/robustness_eval.py`, when the study has scenarios) and `study_run.json`, its record:

    {"signature": {"config_sha1", "seed", "gpus", "train_args"},   what makes it this run
     "arm", "seed",
     "train": {"evals": [[epoch, metrics]], "iter_s", "memory_mb", "wall_s"},   once trained
     "tests": {scenario: row of tools/robustness_eval.py}}

A finished training or test is never repeated; a directory that holds a run of another
signature (another config, seed, process count or train.py argument) is refused, so a
changed study never reads stale results.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RECORD = 'study_run.json'
PREFIX = 'NuScenes metric/pred_instances_3d_NuScenes/'

# what a run trains and tests with; other top-level variables (such as the unused ones a
# synthetic config inherits from its nuScenes parent) do not make it another run
RUN_KEYS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'optim_wrapper',
            'param_scheduler', 'randomness')


@dataclass(frozen=True)
class Launch:
    """How each run trains: `tools/train.py` in one process, or `tools/dist_train.sh` with
    `gpus` processes (torch.distributed: NCCL on GPUs, gloo on CPU); `train_args` go on to
    tools/train.py (e.g. --amp)."""
    gpus: int = 1
    launcher: Optional[str] = None
    port: int = 29500
    train_args: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.gpus < 1:
            raise ValueError(f'--gpus must be >= 1, got {self.gpus}')
        if self.launcher == 'none' and self.gpus > 1:
            raise ValueError(f'--gpus {self.gpus} needs --launcher pytorch (several processes are launched by '
                             'tools/dist_train.sh)')

    def command(self, config: str, work_dir: str):
        """(command, environment) that trains `config` into `work_dir`."""
        if (self.launcher or ('pytorch' if self.gpus > 1 else 'none')) == 'none':
            return [sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir,
                    *self.train_args], dict(os.environ)
        env = dict(os.environ, PORT=str(self.port), PYTHON=sys.executable)
        return ['bash', osp.join(ROOT, 'tools/dist_train.sh'), config, str(self.gpus), '--work-dir', work_dir,
                *self.train_args], env


def signature(cfg, seed: int, launch: Launch) -> dict:
    """A digest of what `cfg` trains and tests (`RUN_KEYS`), the seed and the launch."""
    settings = cfg.to_dict()
    text = json.dumps({k: settings.get(k) for k in RUN_KEYS}, sort_keys=True, default=repr)
    return dict(config_sha1=hashlib.sha1(text.encode()).hexdigest(), seed=seed, gpus=launch.gpus,
                train_args=list(launch.train_args))


def read_record(work_dir: str) -> Optional[dict]:
    path = osp.join(work_dir, RECORD)
    if not osp.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_record(work_dir: str, record: dict):
    """Writes the record atomically (a crash never leaves half a record)."""
    path = osp.join(work_dir, RECORD)
    with open(path + '.tmp', 'w') as f:
        json.dump(record, f, indent=1)
    os.replace(path + '.tmp', path)


def claim(work_dir: str, cfg, seed: int, launch: Launch, arm: str) -> dict:
    """The record of the run `work_dir` holds (a new one for a new directory); a SystemExit
    when the directory holds another run, or results without a record."""
    os.makedirs(work_dir, exist_ok=True)
    sig = signature(cfg, seed, launch)
    record = read_record(work_dir)
    if record is None:
        if glob.glob(osp.join(work_dir, '*', 'vis_data')) or osp.exists(osp.join(work_dir, 'robustness')):
            raise SystemExit(f'{work_dir} holds results but no {RECORD} saying which config made them: delete it, '
                             'or give another --work-root')
        record = dict(signature=sig, arm=arm, seed=seed, tests={})
    elif record.get('signature') != sig:
        raise SystemExit(f'{work_dir} holds a run of another config, seed or launch ({record.get("signature")}, '
                         f'now {sig}): give another --work-root or delete that directory')
    return record


def final_checkpoint(cfg, work_dir: str) -> str:
    return osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')


def run(cfg, work_dir: str, seed: int, scenarios: Sequence[str], launch: Launch, arm: str) -> dict:
    """Trains the mmengine Config `cfg` (seed and overrides already merged) into `work_dir`
    unless that run is recorded or its final checkpoint is there (one copied in, e.g. the
    demo's), tests the checkpoint under the `scenarios` an earlier test did not cover, and
    returns the run's record."""
    record = claim(work_dir, cfg, seed, launch, arm)
    config = osp.join(work_dir, 'study_config.py')
    checkpoint = final_checkpoint(cfg, work_dir)
    missing = [s for s in scenarios if s not in record['tests']]
    if 'train' not in record or missing:   # the tools read the run's config from its file
        cfg.dump(config)
    if 'train' not in record:
        if osp.exists(checkpoint):
            print(f'   {arm} seed {seed}: using the checkpoint {checkpoint}', flush=True)
            record['train'] = dict(evals=[], checkpoint_given=True)
        else:
            print(f'   training {arm} seed {seed} -> {work_dir}', flush=True)
            record['train'] = train(launch, config, work_dir)
        write_record(work_dir, record)
    if missing:
        if not osp.exists(checkpoint):
            raise SystemExit(f'{work_dir}: {missing} are to be tested but {checkpoint} is gone')
        print(f'   testing {arm} seed {seed}: {" ".join(missing)}', flush=True)
        out = osp.join(work_dir, 'robustness')
        call([sys.executable, osp.join(ROOT, 'tools/robustness_eval.py'), config, checkpoint, '--work-dir', out,
              '--label', arm, '--scenarios', *missing], osp.join(work_dir, 'robustness.log'))
        with open(osp.join(out, 'robustness.json')) as f:
            rows = json.load(f)['rows']
        record['tests'].update({row['scenario']: row for row in rows})
        write_record(work_dir, record)
    return record


# Linux counts the memory a process had before it exec'd into its peak RSS, so the command
# is started by a small Python process that reports the peak of its children only
_PEAK_RSS = ('import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); '
             'open(sys.argv[1], "w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); '
             'sys.exit(rc)')


def call(cmd, log_path: str, env=None) -> dict:
    """Runs `cmd` from the repository root with its output in `log_path`; raises on failure.
    Returns its peak resident memory (MB; the largest of its processes) and wall time."""
    start = time.time()
    peak = log_path + '.peak_rss'
    with open(log_path, 'w') as log:
        proc = subprocess.run([sys.executable, '-c', _PEAK_RSS, peak, *cmd], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'failed ({proc.returncode}): {" ".join(cmd)}; see {log_path}')
    with open(peak) as f:
        peak_kb = int(f.read())
    os.remove(peak)
    return dict(peak_rss_mb=peak_kb / 1024, wall_s=time.time() - start)


def train(launch: Launch, config: str, work_dir: str) -> dict:
    """Trains `config` into `work_dir`; returns the `train` part of the run's record."""
    cmd, env = launch.command(config, work_dir)
    used = call(cmd, osp.join(work_dir, 'train.log'), env)
    evals, iter_s, cuda_mb = read_scalars(work_dir)
    print(f'   done in {used["wall_s"] / 60:.1f} min', flush=True)
    return dict(evals=evals, iter_s=iter_s, memory_mb=cuda_mb if cuda_mb is not None else used['peak_rss_mb'],
                wall_s=used['wall_s'])


def read_scalars(work_dir: str):
    """(evaluations [(epoch, metrics)], median iteration time, logged CUDA memory or None)
    from mmengine's vis_data/scalars.json of the run's last training."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}')
    evals, times, memory, epoch = [], [], [], 0
    with open(files[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if PREFIX + 'mAP' in rec:
                evals.append([rec.get('step', epoch), rec])
            elif 'time' in rec:
                times.append(rec['time'])
                epoch = rec.get('epoch', epoch)
                if 'memory' in rec:
                    memory.append(rec['memory'])
    # the first logged iterations include start-up (data workers, allocator warm-up)
    steady = times[len(times) // 5:] or times
    return evals, statistics.median(steady) if steady else float('nan'), (max(memory) if memory else None)
