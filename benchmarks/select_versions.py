"""The CPU selection alone (``kth_largest_numpy``), this checkout's against another
version's, interleaved in one process, on WRN-28-4's three site shapes (batch 32).

    git show 7bcbbf3:kerasparse/ops.py > /tmp/ops_old.py
    python benchmarks/select_versions.py --old /tmp/ops_old.py

Rows are ReLU outputs of standard normal pre-activations (what the unfused sites select
on, ``nonnegative=True``); ``relu=True`` rows are the pre-activations themselves (what
TensorFlow's fused site selects on; only this checkout has it). k = 50, 20 and 5 % of a
row. Each call is timed alone, both versions alternating; prints one JSON line with the
machine's state and the median milliseconds per call.
"""

import argparse
import importlib.util
import json
import statistics
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--old", required=True, help="path of the other version's ops.py")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--threads", type=int, default=0, help="0: select_threads()")
    args = p.parse_args()

    from kerasparse import bench
    from kerasparse import ops as new

    spec = importlib.util.spec_from_file_location("ops_old", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    threads = args.threads or new.select_threads()
    rng = np.random.default_rng(0)
    results = {}
    for group, shape in bench.WRN28_4_SITE_SHAPES.items():
        signed = rng.standard_normal((32, int(np.prod(shape)))).astype(np.float32)
        relu = np.maximum(signed, 0)
        n = signed.shape[1]
        for r in (0.5, 0.2, 0.05):
            k = int(np.ceil(r * n))
            calls = {
                "old": lambda: old.kth_largest_numpy(relu, k, True, threads),
                "new": lambda: new.kth_largest_numpy(relu, k, True, threads),
                "new relu=True": lambda: new.kth_largest_numpy(signed, k, threads=threads,
                                                               relu=True),
            }
            want = np.sort(relu, axis=-1)[:, n - k : n - k + 1]
            for name, fn in calls.items():
                np.testing.assert_array_equal(fn(), want, err_msg=name)  # exact, and warm
            times = {name: [] for name in calls}
            for _ in range(args.repeats):
                for name, fn in calls.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
            results[f"{group} r={r}"] = {
                name: round(statistics.median(v) * 1e3, 2) for name, v in times.items()}
    print(json.dumps({**bench.machine_state(), "threads": threads, "ms": results}))


if __name__ == "__main__":
    main()
