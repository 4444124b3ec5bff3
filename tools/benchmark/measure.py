"""Measurement helpers shared by the benchmark scripts."""
import resource


def rss_mb(peak: bool = False) -> float:
    """Resident set size (VmRSS) or its peak (VmHWM) of this process image, in MB. Not
    ru_maxrss: Linux carries it over fork and exec, so a child process would report its
    parent's peak. Falls back to ru_maxrss where /proc is missing."""
    key = 'VmHWM:' if peak else 'VmRSS:'
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def measure_step(step, repeats: int, device: str):
    """(best time in s, peak memory in MB above what was held before) of `step()` run
    `repeats` times: peak allocation on CUDA, peak resident set (VmHWM) on CPU, so run
    each case in a fresh process (`run_in_child`)."""
    import time

    import torch
    cuda = device.startswith('cuda')
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_mb()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else rss_mb(peak=True) - base
    return min(times), peak


def run_in_child(script: str, args) -> dict:
    """Runs `python script *args` and returns the JSON dict on its last stdout line."""
    import json
    import subprocess
    import sys
    res = subprocess.run([sys.executable, script, *map(str, args)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f'{script} {" ".join(map(str, args))} failed:\n{res.stderr[-2000:]}')
    return json.loads(res.stdout.strip().splitlines()[-1])
