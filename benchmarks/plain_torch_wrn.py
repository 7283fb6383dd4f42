"""Plain PyTorch WRN-28-4 (RMSNorm2d, ReLU + per-sample torch.topk threshold, SGD Nesterov):
the comparator for kerasparse's torch backend (issue 6, "Keras overhead").

    python benchmarks/plain_torch_wrn.py --batch-size 32 --steps 5 [--keep-ratio 0.5]
    python benchmarks/plain_torch_wrn.py --with-kerasparse   # both, interleaved, one process

With ``--with-kerasparse`` the kerasparse model (torch backend, same architecture, default
data format) is timed in the same process, alternating steps with the plain script, and the
ratio kerasparse / plain is printed (docs/benchmarks.md).
"""

import argparse
import json
import math
import os
import statistics
import time

import torch
from torch import nn
import torch.nn.functional as F


class RMSNorm2d(nn.Module):
    """x / sqrt(mean over channels of x^2 + eps) * scale + bias (per location, no mean)."""

    def __init__(self, channels, eps=1e-10):
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        return x * torch.rsqrt(x.square().mean(1, keepdim=True) + self.eps) * self.scale + self.bias


class TopKReLU(nn.Module):
    """ReLU, then keep entries >= the k-th largest of each sample (k = ceil(r * C*H*W))."""

    def __init__(self, keep_ratio):
        super().__init__()
        self.keep_ratio = keep_ratio

    def forward(self, x):
        x = F.relu(x)
        if self.keep_ratio >= 1.0:
            return x
        rows = x.flatten(1)
        k = max(1, math.ceil(self.keep_ratio * rows.shape[1]))
        with torch.no_grad():
            threshold = torch.topk(rows, k, dim=1, sorted=False).values.amin(1, keepdim=True)
        return torch.where(rows >= threshold, rows, torch.zeros_like(rows)).view_as(x)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, act):
        super().__init__()
        self.norm1, self.act1 = RMSNorm2d(cin), act()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm2, self.act2 = RMSNorm2d(cout), act()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None
        if cin != cout or stride != 1:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        out = self.act1(self.norm1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.act2(self.norm2(out)))
        return out + shortcut


class WRN(nn.Module):
    def __init__(self, depth=28, width=4, num_classes=10, keep_ratio=0.5, topk=True,
                 in_channels=3):
        super().__init__()
        n = (depth - 4) // 6

        def act():
            return TopKReLU(keep_ratio) if topk else nn.ReLU()

        layers, cin = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)], 16
        for cout, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
            for b in range(n):
                layers.append(Block(cin, cout, stride if b == 0 else 1, act))
                cin = cout
        self.body = nn.Sequential(*layers)
        self.norm, self.act = RMSNorm2d(cin), act()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.act(self.norm(self.body(x)))
        return self.fc(x.mean((2, 3)))


def plain_step(batch_size, keep_ratio, topk, seed=0):
    torch.manual_seed(seed)
    model = WRN(keep_ratio=keep_ratio, topk=topk)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (batch_size,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def kerasparse_step(batch_size, keep_ratio, topk):
    os.environ["KERAS_BACKEND"] = "torch"
    from kerasparse import bench

    model = bench.compile_for_benchmark(
        bench.build_model("wrn28-4", topk=topk, keep_ratio=keep_ratio)
    )
    x, y = bench.synthetic_batch((32, 32, 3), 10, batch_size)
    return bench._train_step_fn(model, x, y)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--keep-ratio", type=float, default=0.5)
    parser.add_argument("--no-topk", action="store_true")
    parser.add_argument("--with-kerasparse", action="store_true")
    args = parser.parse_args()
    topk = not args.no_topk
    fns = {"plain_torch": plain_step(args.batch_size, args.keep_ratio, topk)}
    if args.with_kerasparse:
        fns["kerasparse_torch"] = kerasparse_step(args.batch_size, args.keep_ratio, topk)
    for _ in range(args.warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(args.steps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    result = {name: statistics.median(v) for name, v in times.items()}
    result.update(batch_size=args.batch_size, keep_ratio=args.keep_ratio, topk=topk,
                  torch_threads=torch.get_num_threads(), steps=args.steps)
    if args.with_kerasparse:
        result["kerasparse_over_plain"] = result["kerasparse_torch"] / result["plain_torch"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
