"""How many steps an RMSNorm WRN needs to leave chance at a given learning rate (issue 17,
item 7), kerasparse (torch backend) beside the plain-PyTorch WRN of plain_torch_wrn.py on the
same batches, with each model's own initialisation and with the other's swapped in.

    python benchmarks/wrn_lr_probe.py --dataset mnist --data-dir ../shared/data/mnist \\
        --depth 16 --width 1 --steps 300 --lr 0.1 --variants ks,plain,plain-ksinit,ks-torchinit

SGD with Nesterov momentum 0.9, no weight decay, batch 128, seed 3407, test accuracy on the
first --test-examples test images every --eval-every steps. The learning rate comes from
``kerasparse.train.build_optimizer`` (the optimizer ``kerasparse train`` builds, one step per
"epoch"): ``--schedule constant`` (the start of the paper's 500-epoch cosine is flat: over
its first 400 steps it stays within 1e-5 of lr), ``--schedule cosine`` a cosine to 0 over
--steps (a short run of the recipe), ``--warmup-steps W`` the linear warm-up from 0 that
``warmup_epochs`` gives. The plain-PyTorch variants follow the same schedule (the Keras
schedule's value is set on the torch optimizer before each step). Prints one JSON line per
variant: the accuracy and training-loss trajectories, the first evaluated step with test
accuracy >= 0.2 and >= 0.5 (chance is 0.1), and the CPU seconds it took.
docs/training.md, "Warm-up", records the figures.

Variants: ``ks`` kerasparse's WideResNet (convs N(0, 2/fan_out), Keras Dense glorot-uniform
kernel, zero bias); ``plain`` the plain-PyTorch WRN with PyTorch's default init (convs and
linear kaiming_uniform(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)), uniform linear bias);
``plain-ksinit`` the plain WRN re-initialised like kerasparse; ``ks-torchinit`` kerasparse
with PyTorch's default init (VarianceScaling(1/3, fan_in, uniform)).
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402


def load(args):
    from kerasparse import data as ks_data

    bundle = ks_data.load(args.dataset, batch_size=args.batch_size, data_dir=args.data_dir,
                          seed=args.seed, max_train_examples=args.steps * args.batch_size)
    x, y = bundle.train_arrays()
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    xt, yt = bundle.test.head(args.test_examples).arrays()
    return x, y.astype("int64"), xt, yt.astype("int64")


def batches(x, y, steps, batch_size):
    n = len(x)
    for s in range(steps):
        idx = np.arange(s * batch_size, (s + 1) * batch_size) % n
        yield x[idx], y[idx]


def schedule(args):
    """The learning-rate schedule ``kerasparse train`` would build for this run (one step
    per epoch, so ``warmup_epochs`` counts steps), and its optimizer."""
    import keras

    from kerasparse.train import build_optimizer

    config = {"lr": args.lr, "epochs": args.steps, "schedule": args.schedule,
              "warmup_epochs": args.warmup_steps, "optimizer": "sgd", "momentum": 0.9,
              "nesterov": True, "weight_decay": 0.0}
    optimizer = build_optimizer(config, steps_per_epoch=1)
    sched = optimizer._learning_rate  # a LearningRateSchedule, or the float lr when constant
    if isinstance(sched, keras.optimizers.schedules.LearningRateSchedule):
        return optimizer, lambda step: float(sched(step))
    return optimizer, lambda step: args.lr


def run_keras(args, data, torch_init):
    import keras

    from kerasparse.models import WideResNet

    keras.utils.set_random_seed(args.seed)
    x, y, xt, yt = data
    init = None
    if torch_init:  # kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)), variance 1/(3 fan_in)
        init = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
    model = WideResNet(depth=args.depth, width=args.width, num_classes=10,
                       input_shape=x.shape[1:], topk=False, kernel_initializer=init,
                       data_format=args.ks_data_format)
    if torch_init:
        dense = model.get_layer("logits")
        fan_in = dense.kernel.shape[0]
        bound = 1.0 / math.sqrt(fan_in)
        rng = np.random.default_rng(args.seed)
        dense.kernel.assign(rng.uniform(-bound, bound, dense.kernel.shape).astype("float32"))
        dense.bias.assign(rng.uniform(-bound, bound, dense.bias.shape).astype("float32"))
    model.compile(
        optimizer=schedule(args)[0],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    def evaluate():
        logits = model.predict(xt, batch_size=500, verbose=0)
        return float((logits.argmax(1) == yt).mean())

    def step(xb, yb):
        return float(model.train_on_batch(xb, yb, return_dict=True)["loss"])

    return step, evaluate


def run_plain(args, data, ks_init):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from plain_torch_wrn import WRN

    torch.manual_seed(args.seed)
    x, y, xt, yt = data
    model = WRN(depth=args.depth, width=args.width, topk=False, in_channels=x.shape[-1])
    if ks_init:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True)
    lr_at = schedule(args)[1]
    taken = [0]
    xt_t = torch.from_numpy(xt).permute(0, 3, 1, 2).contiguous()

    def evaluate():
        with torch.no_grad():
            model.eval()
            pred = torch.cat([model(xt_t[i:i + 500]) for i in range(0, len(xt_t), 500)])
            model.train()
        return float((pred.argmax(1).numpy() == yt).mean())

    def step(xb, yb):
        xb = torch.from_numpy(xb).permute(0, 3, 1, 2).contiguous()
        for group in opt.param_groups:
            group["lr"] = lr_at(taken[0])
        taken[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), torch.from_numpy(yb))
        loss.backward()
        opt.step()
        return loss.item()

    return step, evaluate


def probe(args, data, variant):
    makers = {"ks": lambda: run_keras(args, data, False),
              "ks-torchinit": lambda: run_keras(args, data, True),
              "plain": lambda: run_plain(args, data, False),
              "plain-ksinit": lambda: run_plain(args, data, True)}
    step, evaluate = makers[variant]()
    cpu0 = time.process_time()
    trajectory = {0: evaluate()}
    losses = []
    loss_trajectory = {}
    for s, (xb, yb) in enumerate(batches(data[0], data[1], args.steps, args.batch_size), 1):
        losses.append(step(xb, yb))
        if s % args.eval_every == 0 or s == args.steps:
            trajectory[s] = evaluate()
            loss_trajectory[s] = round(float(np.mean(losses[-args.eval_every:])), 4)
            if args.verbose:
                print(f"# {variant} step {s}: test acc {trajectory[s]:.3f}, mean loss "
                      f"{loss_trajectory[s]:.4f}, {time.process_time() - cpu0:.0f} cpu s",
                      file=sys.stderr, flush=True)
            if args.stop_at is not None and trajectory[s] >= args.stop_at:
                break  # left chance: the rest of the budget goes to the next run
    first = {t: next((s for s, a in trajectory.items() if a >= t), None) for t in (0.2, 0.5)}
    return {"variant": variant, "dataset": args.dataset, "model": f"wrn{args.depth}-{args.width}",
            "lr": args.lr, "schedule": args.schedule, "warmup_steps": args.warmup_steps,
            "seed": args.seed, "batch_size": args.batch_size, "steps": args.steps,
            "steps_run": len(losses),
            "test_examples": len(data[2]),
            "first_step_acc_ge_0.2": first[0.2], "first_step_acc_ge_0.5": first[0.5],
            "test_accuracy": trajectory, "train_loss_mean_since_last_eval": loss_trajectory,
            "final_loss": losses[-1],
            "cpu_s": round(time.process_time() - cpu0, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--width", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--stop-at", type=float, default=None,
                        help="stop a variant at the first evaluation with test accuracy >= this")
    parser.add_argument("--verbose", action="store_true", help="progress lines on stderr")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=3407)
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds, one run each (weights and batch order)")
    parser.add_argument("--variants", default="ks,plain")
    parser.add_argument("--ks-data-format", default="channels_first",
                        choices=["channels_first", "channels_last"])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for seed in [int(v) for v in args.seeds.split(",")] if args.seeds else [args.seed]:
        args.seed = seed
        data = load(args)
        for variant in args.variants.split(","):
            print(json.dumps(probe(args, data, variant)), flush=True)


if __name__ == "__main__":
    main()
