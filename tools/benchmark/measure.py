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
