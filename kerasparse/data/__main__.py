"""``python -m kerasparse.data write-cifar10 DIR [N_TRAIN]``: a generated CIFAR-shaped set of
N_TRAIN (default 50,000) training and min(10,000, N_TRAIN) test images, written as CIFAR-10
python batches in DIR/cifar-10-batches-py (:func:`kerasparse.data.embedded.write_cifar10_batches`;
read back with ``--dataset cifar10 --data-dir DIR``)."""

import sys

from kerasparse.data.embedded import write_cifar10_batches

if len(sys.argv) in (3, 4) and sys.argv[1] == "write-cifar10":
    n = int(sys.argv[3]) if len(sys.argv) == 4 else 50000
    print(write_cifar10_batches(sys.argv[2], num_train=n, num_test=min(10000, n)))
else:
    sys.exit("usage: python -m kerasparse.data write-cifar10 DIR [N_TRAIN]")
