"""What handing the rows to NumPy costs jax (issue 12): the CPU selection of WRN-28-4's
three site shapes (batch 32, ReLU outputs, k = 20 %) called directly, through
``jax.pure_callback`` and through kerasparse's callback primitive
(``kerasparse.ops._host_select_primitive``), each inside ``jax.jit``, interleaved.

    python benchmarks/jax_select_handoff.py

Prints one JSON line: the machine's state and the median milliseconds per call; the
difference to "numpy" is the hand-off (the copies and the call).
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--keep-ratio", type=float, default=0.2)
    args = p.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from kerasparse import bench
    from kerasparse import ops as ko

    primitive = ko._host_select_primitive()
    results = {}
    for group, shape in bench.WRN28_4_SITE_SHAPES.items():
        n = int(np.prod(shape))
        rows_np = np.maximum(np.random.default_rng(0).standard_normal((32, n)), 0).astype("float32")
        rows = jnp.asarray(rows_np)
        k = jnp.int32(int(np.ceil(args.keep_ratio * n)))
        flag = jnp.int32(1)
        out = jax.ShapeDtypeStruct((32, 1), rows.dtype)
        calls = {
            "numpy": lambda: ko._host_select(rows_np, k, 1),
            "pure_callback": jax.jit(lambda r, k, f: jax.pure_callback(
                ko._host_select, out, r, k, f, vmap_method="sequential")),
            "primitive": jax.jit(primitive.bind),
        }
        want = np.sort(rows_np, axis=-1)[:, n - int(k) : n - int(k) + 1]
        for name, fn in calls.items():
            got = fn() if name == "numpy" else fn(rows, k, flag)
            np.testing.assert_array_equal(np.asarray(got), want, err_msg=name)
        times = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, fn in calls.items():
                start = time.perf_counter()
                jax.block_until_ready(fn() if name == "numpy" else fn(rows, k, flag))
                times[name].append(time.perf_counter() - start)
        results[group] = {name: round(1e3 * statistics.median(v), 2) for name, v in times.items()}
    print(json.dumps({**bench.machine_state(), "keep_ratio": args.keep_ratio,
                      "ms_per_call": results}))


if __name__ == "__main__":
    main()
