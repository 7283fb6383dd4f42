"""Lead's check (issue 17 item 7): the kerasparse WRN-16-1's initial weights copied into the plain-PyTorch
WRN-16-1, then both trained on the same MNIST batches; prints both losses and logit spreads per step.

    python benchmarks/wrn_same_weights.py 0.1   # learning rate
"""

import os
import sys

os.environ["KERAS_BACKEND"] = "torch"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from plain_torch_wrn import WRN  # noqa: E402

from kerasparse import data as ks_data  # noqa: E402
from kerasparse.models import WideResNet  # noqa: E402

torch.set_num_threads(1)
bundle = ks_data.load("mnist", batch_size=128, data_dir=os.environ.get("MNIST_DIR", "../shared/data/mnist"), seed=3407, max_train_examples=128*30)
x, y = bundle.train_arrays()
x = x[:128*30]; y = y[:128*30].astype("int64")
print("x", x.shape, x.dtype, float(x.mean()), float(x.std()))
keras.utils.set_random_seed(3407)
km = WideResNet(depth=16, width=1, num_classes=10, input_shape=x.shape[1:], topk=False, data_format="channels_last")
pm = WRN(depth=16, width=1, topk=False, in_channels=1)
# copy keras -> plain
kl = {l.name: l for l in km.layers}
def conv(name, mod):
    mod.weight.data = torch.tensor(np.transpose(keras.ops.convert_to_numpy(kl[name].kernel), (3, 2, 0, 1))).contiguous()
def norm(name, mod):
    mod.scale.data = torch.tensor(keras.ops.convert_to_numpy(kl[name].scale)).reshape(1, -1, 1, 1)
    mod.bias.data = torch.tensor(keras.ops.convert_to_numpy(kl[name].bias)).reshape(1, -1, 1, 1)
conv("stem_conv", pm.body[0])
i = 1
for g in (1, 2, 3):
    for b in (1, 2):
        blk = pm.body[i]; i += 1
        p = f"group{g}_block{b}"
        norm(p + "_norm1", blk.norm1); conv(p + "_conv1", blk.conv1)
        norm(p + "_norm2", blk.norm2); conv(p + "_conv2", blk.conv2)
        if blk.shortcut is not None: conv(p + "_shortcut", blk.shortcut)
norm("final_norm", pm.norm)
pm.fc.weight.data = torch.tensor(keras.ops.convert_to_numpy(kl["logits"].kernel).T.copy())
pm.fc.bias.data = torch.tensor(keras.ops.convert_to_numpy(kl["logits"].bias))
xb = x[:128]
lk = keras.ops.convert_to_numpy(km(xb))
lp = pm(torch.tensor(xb).permute(0, 3, 1, 2).contiguous()).detach().numpy()
print("logits max diff", np.abs(lk - lp).max(), "logit std", lk.std(0).mean())
lr = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
km.compile(optimizer=keras.optimizers.SGD(lr, momentum=0.9, nesterov=True), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
opt = torch.optim.SGD(pm.parameters(), lr=lr, momentum=0.9, nesterov=True)
for s in range(30):
    xb, yb = x[s*128:(s+1)*128], y[s*128:(s+1)*128]
    a = float(km.train_on_batch(xb, yb))
    opt.zero_grad(); out = pm(torch.tensor(xb).permute(0, 3, 1, 2).contiguous())
    loss = F.cross_entropy(out, torch.tensor(yb)); loss.backward(); opt.step()
    lk = keras.ops.convert_to_numpy(km(x[:128]))
    print(s, "keras %.5f plain %.5f" % (a, loss.item()), "logit spread k %.4f p %.4f" % (lk.std(0).mean(), pm(torch.tensor(x[:128]).permute(0,3,1,2).contiguous()).detach().numpy().std(0).mean()))
