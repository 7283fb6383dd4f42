"""torch.compile through Keras (``jit_compile=True`` on torch, issue 12 item 3): with the top-k
free of Python ints, a small convolutional net with sparse sites in the global, channel and
spatial modes trains for 3 epochs while a controller moves the keep ratio every epoch, with
no new compiled graph after the first epoch (counted by dynamo), and the same history and
weights as the eager run.

Compilation goes through dynamo and AOT autograd (``backend="aot_eager"``): the graphs,
their guards (what would recompile for a new r) and the autograd of the captured graphs
are exactly those of the default inductor backend, whose C++ code generation takes minutes
on this CPU. Dynamo's tracing of Keras' step costs a minute or more even for this net
(WRN-16-1: about 4 minutes), so the WRN-16-1 run with inductor is a benchmark
(docs/benchmarks.md), not a test.
"""

import keras
import numpy as np
import pytest

from conftest import BACKEND
from kerasparse import callbacks, layers

pytestmark = pytest.mark.skipif(
    BACKEND != "torch",
    reason="torch only: jax and tensorflow compile their steps in every test already "
    "(test_topk.py checks that a new keep ratio does not retrace them)",
)

RATIOS = [1.0, 0.5, 0.2]


def _fit(jit_compile, graphs):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Permute((3, 1, 2))(inputs)  # channels_first inside, as on torch by default
    h = keras.layers.Conv2D(6, 3, padding="same", data_format="channels_first")(h)
    h = layers.SparseActivation("relu", keep_ratio=1.0, axis=1)(h)
    h = keras.layers.Conv2D(6, 3, padding="same", data_format="channels_first")(h)
    h = layers.RMSNorm2D(axis=1)(h)
    h = layers.SparseActivation("relu", keep_ratio=1.0, mode="channel", axis=1)(h)
    h = layers.GlobalTopK(1.0, mode="spatial", axis=1)(h)
    h = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    model.compile(
        # AdamW: Keras' torch SGD reads its learning rate on the host (a graph break under
        # dynamo, and more graphs to trace here); test_topk_sync_free.py says more.
        optimizer=keras.optimizers.AdamW(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=(32,)).astype("int32")

    class CountGraphs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            from torch._dynamo.utils import counters

            graphs.append(counters["stats"]["unique_graphs"])
            logs["keep_ratio_used"] = float(
                keras.ops.convert_to_numpy(callbacks.find_topk_layers(self.model)[0].keep_ratio))

    controller = callbacks.ScheduledKeepRatio(lambda epoch: RATIOS[epoch])
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0,
                        callbacks=[controller, CountGraphs()])
    return history.history, model.get_weights(), model


def test_compiled_training_matches_eager_without_recompiling_per_keep_ratio(monkeypatch):
    import torch
    import torch._dynamo
    from torch._dynamo.utils import counters

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **k: compile_(fn, backend="aot_eager"))
    torch._dynamo.reset()
    counters.clear()
    eager, w_eager, _ = _fit(False, [])
    assert counters["stats"]["unique_graphs"] == 0  # nothing compiled
    graphs = []
    compiled, w_compiled, model = _fit(True, graphs)
    assert model.jit_compile is True
    # The controller moved r every epoch, in both runs.
    np.testing.assert_allclose(compiled["keep_ratio_used"], RATIOS, rtol=1e-6)
    assert compiled["keep_ratio_used"] == eager["keep_ratio_used"]
    # Graphs were compiled in the first epoch, none after: a new r is a new tensor value,
    # not a new graph (a Python-int k would recompile for every r).
    assert graphs[0] > 0 and graphs == [graphs[0]] * 3, graphs
    np.testing.assert_allclose(compiled["loss"], eager["loss"], rtol=1e-5)
    np.testing.assert_allclose(compiled["accuracy"], eager["accuracy"], rtol=1e-5)
    for a, b in zip(w_compiled, w_eager):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert len(set(np.round(eager["loss"], 6))) == 3  # it trained
