"""Timing of kerasparse.eoc: one solve, and the 27-cell grid of Dent & Tanner Table 1.

    python benchmarks/bench_eoc.py

Goals (issue 3): one solve well under 10 ms; a 27-cell grid under 0.5 s. Reports the median
of several repeats (the machines are shared; the minimum is also printed). ``eoc.solve`` is
cached, so every timed call empties the cache first; the last line times a cached call (what
each further layer of a model with one setting costs).
"""

import itertools
import statistics
import time

from kerasparse import eoc


def timed(fn, repeats, cached=False):
    times = []
    for _ in range(repeats):
        if not cached:
            eoc.solve.cache_clear()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main():
    eoc.setup("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7)  # warm caches / imports
    print("one solve (median / min, ms):")
    cases = [
        ("crelu", dict(sparsity=0.85, v_prime=0.7), "closed"),
        ("crelu", dict(sparsity=0.85, v_prime=0.7), "numeric"),
        ("cst", dict(sparsity=0.7, v_prime=0.7), "closed"),
        ("cst", dict(sparsity=0.7, v_prime=0.7), "numeric"),
        ("shifted_relu", dict(sparsity=0.85), "closed"),
        ("hard_shrink", dict(sparsity=0.85), "numeric"),
        ("chard_shrink", dict(sparsity=0.85, v_prime=0.3), "numeric"),
        ("sawtooth", dict(sparsity=0.85, v_prime=0.7), "numeric"),
    ]
    for name, kw, method in cases:
        med, best = timed(lambda: eoc.setup(name, q_star=3.0, method=method, **kw), 30)
        print(f"  {name:<14} {method:<8} {1e3 * med:7.2f} / {1e3 * best:6.2f}")
    grid = list(itertools.product((0.8, 0.85, 0.9), (1.0, 2.0, 3.0), (0.5, 0.7, 0.9)))
    print("27-cell grid, crelu, s x q* x V' (median / min, s):")
    for method in ("closed", "numeric"):
        med, best = timed(
            lambda: [eoc.setup("crelu", sparsity=s, q_star=q, v_prime=v, method=method)
                     for s, q, v in grid],
            5,
        )
        print(f"  {method:<8} {med:6.3f} / {best:6.3f}")
    med, best = timed(lambda: eoc.setup("crelu", sparsity=0.85, q_star=3.0, v_prime=0.7), 200,
                      cached=True)
    print(f"cached setup, crelu (median / min, ms): {1e3 * med:.3f} / {1e3 * best:.3f}")


if __name__ == "__main__":
    main()
