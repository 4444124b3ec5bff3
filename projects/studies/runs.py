"""What every study shares: its runs, their records and their statistics over seeds.

A study run is one config trained with one seed through `tools/train.py` (or
`tools/dist_train.sh`) exactly as a user would. The window ablation keeps one JSON record
per finished run (`save_record` / `load_record`, keyed by the run's command); the
robustness studies then test each final checkpoint with `tools/robustness_eval.py` under a
list of sensor-failure scenarios (`train_and_test`). Either way a finished run is reused,
so a long study resumes where it stopped, and a run of another config, seed or command is
never taken for it. `mean_std` is the one statistic of every table.
"""
import hashlib
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(cmd, log_path: str):
    """Runs `cmd` from the repository root with its output in `log_path`; raises on failure."""
    with open(log_path, 'w') as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f'failed ({proc.returncode}): {" ".join(cmd)}; see {log_path}')


def load_record(path: str, cmd) -> Optional[dict]:
    """The saved result of a finished run, or None when there is none or it was trained
    with another command (other options, data or arguments)."""
    if not osp.isfile(path):
        return None
    with open(path) as f:
        rec = json.load(f)
    if rec.get('cmd') != cmd:
        print(f'   {path} was trained with another command: training again', flush=True)
        return None
    return rec


def save_record(path: str, run: dict):
    """Writes the run's record atomically (a crash never leaves half a record)."""
    with open(path + '.tmp', 'w') as f:
        json.dump(run, f)
    os.replace(path + '.tmp', path)


def mean_std(values):
    """(mean, sample standard deviation; nan for one value)."""
    values = list(values)
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else float('nan'))


# what a run trains and tests with; other top-level variables (such as the unused ones a
# synthetic config inherits from its nuScenes parent) do not make it another run
RUN_KEYS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'optim_wrapper',
            'param_scheduler', 'randomness')


def run_signature(cfg, seed: int) -> dict:
    """A digest of what `cfg` trains and tests (`RUN_KEYS`), and the seed."""
    settings = cfg.to_dict()
    text = json.dumps({k: settings.get(k) for k in RUN_KEYS}, sort_keys=True, default=repr)
    return dict(config_sha1=hashlib.sha1(text.encode()).hexdigest(), seed=seed)


def claim_run_dir(work_dir: str, cfg, seed: int):
    """Records in `work_dir/study_run.json` which config and seed the directory holds; a
    SystemExit when it already holds another, so a changed study never reuses stale runs.
    A directory from before these records is judged by the `study_config.py` it holds (its
    seed is the one the study names it after); one with results but no config is refused."""
    from mmengine.config import Config
    os.makedirs(work_dir, exist_ok=True)
    signature = run_signature(cfg, seed)
    path = osp.join(work_dir, 'study_run.json')
    earlier = osp.join(work_dir, 'study_config.py')
    if osp.exists(path):
        with open(path) as f:
            held = json.load(f)
    elif osp.exists(earlier):
        held = run_signature(Config.fromfile(earlier), seed)
    elif any(osp.exists(osp.join(work_dir, name)) for name in ('robustness', 'train.log')):
        raise SystemExit(f'{work_dir} holds results but no record of the config they came from: delete it, '
                         'or give another --work-root')
    else:
        held = signature   # a new directory, or one holding only a checkpoint copied in
    if held != signature:
        raise SystemExit(f'{work_dir} holds a run of another config or seed ({held}, now {signature}): '
                         'give another --work-root or delete that directory')
    with open(path, 'w') as f:
        json.dump(signature, f)


def tested_rows(work_dir: str) -> dict:
    """{scenario: row} of the run's robustness.json ({} before its first test)."""
    path = osp.join(work_dir, 'robustness', 'robustness.json')
    if not osp.exists(path):
        return {}
    with open(path) as f:
        rows = json.load(f)
    return {row['scenario']: row for row in (rows['rows'] if isinstance(rows, dict) else rows)}


def train_and_test(cfg, work_dir: str, seed: int, scenarios, label: str) -> dict:
    """Writes the mmengine Config `cfg` to `<work_dir>/study_config.py`, trains it with
    `seed` unless its final checkpoint exists, tests that checkpoint under `scenarios` (and
    those of an earlier test) unless an earlier test covered them all, and returns
    {scenario: row of tools/robustness_eval.py (mAP, NDS, every metric)}."""
    claim_run_dir(work_dir, cfg, seed)
    rows = tested_rows(work_dir)
    if all(s in rows for s in scenarios):
        return rows
    scenarios = list(scenarios) + [s for s in rows if s not in scenarios]   # robustness.json is rewritten whole
    config = osp.join(work_dir, 'study_config.py')
    cfg.dump(config)
    final = osp.join(work_dir, f'epoch_{cfg.train_cfg.max_epochs}.pth')
    if not osp.exists(final):
        print(f'training {label} seed {seed} -> {work_dir}', flush=True)
        run([sys.executable, 'tools/train.py', config, '--work-dir', work_dir, '--cfg-options',
             f'randomness.seed={seed}', 'train_cfg.val_interval=1000'], osp.join(work_dir, 'train.log'))
    print(f'testing {label} seed {seed}: {" ".join(scenarios)}', flush=True)
    run([sys.executable, 'tools/robustness_eval.py', config, final, '--work-dir', osp.join(work_dir, 'robustness'),
         '--label', label, '--scenarios', *scenarios], osp.join(work_dir, 'robustness.log'))
    return tested_rows(work_dir)


def collect_runs(models, seeds, work_root: str, run, report_only: bool = False, required=('clean',),
                 on_each=None) -> dict:
    """{(model, seed): {scenario: row}} over every seed and model: `run(model, seed, work_dir)`
    trains and tests one run in `<work_root>/<model>_seed<S>`; with `report_only` nothing
    runs and the finished tests that cover `required` are read instead. `on_each(results)`
    is called after every run (a table that grows as a long study goes on)."""
    results = {}
    for seed in seeds:
        for name in models:
            work_dir = osp.join(work_root, f'{name}_seed{seed}')
            if report_only:
                rows = tested_rows(work_dir)
                if not all(s in rows for s in required):
                    continue
            else:
                rows = run(name, seed, work_dir)
            results[(name, seed)] = rows
            if on_each is not None:
                on_each(results)
    if not results:
        raise SystemExit(f'no finished run under {work_root}')
    return results
