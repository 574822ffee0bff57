"""What a request needs of this machine, estimated before anything is allocated: a thread count
or a model size that cannot fit is refused with one line instead of a thread storm, an
allocation failure or a traceback minutes later. The host and the device self-test use the same
rules."""
import math
import os

THREADS_PER_CPU = 4  # runtime threads beyond 4 per hardware thread only add switching: a typo, not a setting
MAX_SECONDS = 24 * 3600.0  # one timed phase of the latency protocol: a day is already absurd


def cpus():
    return os.cpu_count() or 1


def thread_problem(n, what="--threads"):
    """Why `n` runtime threads are not sane here (None if they are)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return "%s %r must be a whole number >= 1" % (what, n)
    most = THREADS_PER_CPU * cpus()
    if n > most:
        return ("%s %d is more than %d x the %d CPUs here (at most %d); use the number of cores"
                % (what, n, THREADS_PER_CPU, cpus(), most))
    return None


def seconds_problem(v, what):
    """Why `v` is not a sane duration in seconds (None if it is)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        return "%s %r must be a finite number of seconds > 0" % (what, v)
    if v > MAX_SECONDS:
        return "%s %r is more than a day (at most %d)" % (what, v, MAX_SECONDS)
    return None


def available_bytes(meminfo="/proc/meminfo"):
    """Memory this machine can still give (MemAvailable), or None if unknown."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gib(n):
    return "%.3g GiB" % (n / float(1 << 30))


def memory_problem(need, what, available=None):
    """Why `need` bytes cannot fit (None if they can, or if this machine does not say)."""
    have = available_bytes() if available is None else available
    if have is None or need <= have:
        return None
    return "%s needs about %s but this machine has %s available" % (what, gib(need), gib(have))
