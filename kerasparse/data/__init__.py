"""kerasparse data: datasets in memory as NumPy arrays, fed to ``fit`` on every backend.

``load("cifar10")`` returns a :class:`DatasetBundle` with ``train``/``val``/``test`` batches
(``keras.utils.PyDataset``s made by the NumPy pipeline, :mod:`kerasparse.data.pipeline`);
``load("embedded")`` needs no download (see :mod:`kerasparse.data.embedded`). Nothing here
imports TensorFlow, except tensorflow-datasets when that source is used.
"""

from kerasparse.data._load import (
    DATASETS,
    SOURCES,
    SPLITS,
    DatasetInfo,
    MissingDependencyError,
    load,
    load_arrays,
    pooled_split,
)
from kerasparse.data.dataset_bundle import DatasetBundle

__all__ = ["DATASETS", "SOURCES", "SPLITS", "DatasetBundle", "DatasetInfo",
           "MissingDependencyError", "load", "load_arrays", "pooled_split"]
