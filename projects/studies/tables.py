"""The tables of every study, from its run records: mean +- sample standard deviation over
seeds, the figures of each seed, and a chart of NDS against a noise level.

Two kinds of figures, as the study evaluates: the last evaluation during training
(mAP / NDS, per-class AP, iteration time, peak memory), and the tests of each final
checkpoint under sensor-failure scenarios (NDS and mAP per scenario; optionally NDS under a
scenario over NDS clean, per run, then averaged).
"""
import json
import math
import os.path as osp
import statistics

from runs import PREFIX

CLASSES = ['car', 'truck', 'construction_vehicle', 'bus', 'trailer', 'barrier', 'motorcycle',
           'bicycle', 'pedestrian', 'traffic_cone']


def mean_std(values):
    """(mean, sample standard deviation; nan for one value)."""
    values = list(values)
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else float('nan'))


def pm(mean_and_std, digits: int = 3) -> str:
    """'mean +- std', or 'mean' when there is one value."""
    mean, std = mean_and_std
    return f'{mean:.{digits}f}' if math.isnan(std) else f'{mean:.{digits}f} +- {std:.{digits}f}'


def by_arm(records):
    """{arm: [records in seed order]} in the order the arms first appear."""
    arms = {}
    for rec in records:
        arms.setdefault(rec['arm'], []).append(rec)
    return {arm: sorted(group, key=lambda r: r['seed']) for arm, group in arms.items()}


def class_ap(metrics: dict, name: str) -> float:
    """A class's AP, the mean over nuScenes' 0.5 / 1 / 2 / 4 m matching thresholds."""
    vals = [metrics.get(f'{PREFIX}{name}_AP_dist_{d}') for d in ('0.5', '1.0', '2.0', '4.0')]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else float('nan')


def training_summary(records) -> dict:
    """{arm: figures of the last evaluation during training} over the runs that have one."""
    out = {}
    for arm, group in by_arm(records).items():
        group = [r for r in group if r.get('train', {}).get('evals')]
        if not group:
            continue
        finals = [r['train']['evals'][-1][1] for r in group]
        out[arm] = dict(seeds=[r['seed'] for r in group],
                        mAP=mean_std(f[PREFIX + 'mAP'] for f in finals),
                        NDS=mean_std(f[PREFIX + 'NDS'] for f in finals),
                        per_seed=[(f[PREFIX + 'mAP'], f[PREFIX + 'NDS']) for f in finals],
                        iter_s=statistics.mean(r['train']['iter_s'] for r in group),
                        memory_mb=max(r['train']['memory_mb'] for r in group),
                        class_ap={c: statistics.mean(class_ap(f, c) for f in finals) for c in CLASSES})
    return out


def training_table(summary: dict) -> list:
    lines = ['| arm | seeds | mAP | NDS | mAP / NDS per seed | iteration (s) | peak memory (MB) |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    for arm, r in summary.items():
        per_seed = ', '.join(f'{m:.3f} / {n:.3f}' for m, n in r['per_seed'])
        lines.append(f"| {arm} | {' '.join(map(str, r['seeds']))} | {pm(r['mAP'], 4)} | {pm(r['NDS'], 4)} | "
                     f"{per_seed} | {r['iter_s']:.2f} | {r['memory_mb']:.0f} |")
    lines += ['', 'Per-class AP at the last evaluation (mean over the 0.5 / 1 / 2 / 4 m thresholds and the seeds):',
              '', '| arm | ' + ' | '.join(CLASSES) + ' |', '| --- ' * (1 + len(CLASSES)) + '|']
    for arm, r in summary.items():
        lines.append(f'| {arm} | ' + ' | '.join(f"{r['class_ap'][c]:.3f}" for c in CLASSES) + ' |')
    return lines


def scenario_summary(records, scenarios, ratios=()) -> dict:
    """{arm: {scenario: {'NDS', 'mAP': (mean, std)}, 'n': runs, '<s> / clean': (mean, std)}}
    over the runs tested under every scenario; a ratio is NDS(s) / NDS(clean) per run."""
    out = {}
    for arm, group in by_arm(records).items():
        group = [r['tests'] for r in group if all(s in r['tests'] for s in scenarios)]
        if not group:
            continue
        stats = {s: {k: mean_std(t[s][k] for t in group) for k in ('mAP', 'NDS')} for s in scenarios}
        stats['n'] = len(group)
        for s in ratios:
            stats[f'{s} / clean'] = mean_std(t[s]['NDS'] / max(t['clean']['NDS'], 1e-9) for t in group)
        out[arm] = stats
    return out


def scenario_tables(summary: dict, scenarios, ratios=()) -> list:
    lines = ['| arm (n) | ' + ' | '.join(f'NDS {s}' for s in scenarios) +
             ''.join(f' | NDS {s} / clean' for s in ratios) + ' |',
             '| --- |' + ' --- |' * (len(scenarios) + len(ratios))]
    for arm, stats in summary.items():
        cols = [pm(stats[s]['NDS']) for s in scenarios] + [pm(stats[f'{s} / clean']) for s in ratios]
        lines.append(f'| {arm} ({stats["n"]}) | ' + ' | '.join(cols) + ' |')
    lines += ['', '| arm (n) | ' + ' | '.join(f'mAP {s}' for s in scenarios) + ' |',
              '| --- |' + ' --- |' * len(scenarios)]
    for arm, stats in summary.items():
        lines.append(f'| {arm} ({stats["n"]}) | ' + ' | '.join(pm(stats[s]['mAP']) for s in scenarios) + ' |')
    return lines


def tested_everywhere(records, scenarios):
    """The scenarios every record holds a test of, in the given order."""
    return [s for s in scenarios if all(s in r['tests'] for r in records)]


def report(name: str, study, records, work_root: str, header: str, scenarios=None) -> str:
    """Writes `<work_root>/<name>.md` (the tables), `.json` (their figures and every run's
    record) and, for a study with noise axes, `.png`; returns the markdown."""
    scenarios = list(study.scenarios if scenarios is None else scenarios)
    lines = [header, '']
    figures = dict(study=name, seeds=sorted({r['seed'] for r in records}))
    train = training_summary(records)
    if train:
        lines += training_table(train) + ['']
        figures['training'] = train
    tested = tested_everywhere(records, scenarios) if scenarios else []
    if tested:
        left_out = [s for s in scenarios if s not in tested]
        ratios = [s for s in study.ratios if s in tested and 'clean' in tested]
        tests = scenario_summary(records, tested, ratios)
        lines += [f'Mean +- std over seeds {figures["seeds"]} (n runs per arm in brackets).', '']
        lines += scenario_tables(tests, tested, ratios) + ['']
        if left_out:
            lines += [f'Not every run was tested under {", ".join(left_out)}: left out.', '']
        figures['scenarios'] = tests
        if study.noise_axes and 'clean' in tested:
            noise_chart(tests, study.noise_axes, osp.join(work_root, f'{name}.png'))
    text = '\n'.join(lines)
    with open(osp.join(work_root, f'{name}.md'), 'w') as f:
        f.write(text)
    with open(osp.join(work_root, f'{name}.json'), 'w') as f:
        json.dump(dict(figures, runs=records), f, indent=1)
    print(text, flush=True)
    return text


def noise_chart(summary: dict, axes: dict, path: str):
    """NDS (mean +- std over seeds) against each axis's noise levels, clean at level 0."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, panels = plt.subplots(1, len(axes), figsize=(5 * len(axes), 3.8), sharey=True, squeeze=False)
    for (label, levels), ax in zip(axes.items(), panels[0]):
        for arm, stats in summary.items():
            shown = {x: s for x, s in levels.items() if s in stats}
            xs = [0.0, *shown]
            means = [stats['clean']['NDS'][0]] + [stats[s]['NDS'][0] for s in shown.values()]
            stds = [stats['clean']['NDS'][1]] + [stats[s]['NDS'][1] for s in shown.values()]
            ax.errorbar(xs, means, yerr=[0.0 if math.isnan(e) else e for e in stds], marker='o', capsize=3,
                        label=f'{arm} (n={stats["n"]})')
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    panels[0][0].set_ylabel('NDS (mean +- std over seeds)')
    panels[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
