"""kerasparse data: tf.data pipelines for every backend, from tfds, files, or generated.

``load("cifar10")`` returns a :class:`DatasetBundle` with batched ``train``/``val``/``test``
datasets; ``load("embedded")`` needs no download (see :mod:`kerasparse.data.embedded`).
TensorFlow is imported only when a dataset is loaded.
"""

from kerasparse.data._load import DATASETS, DatasetInfo, load, load_arrays
from kerasparse.data.dataset_bundle import DatasetBundle

__all__ = ["DATASETS", "DatasetBundle", "DatasetInfo", "load", "load_arrays"]
