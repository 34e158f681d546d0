#!/usr/bin/python3
"""The Fashion-MNIST recipe of bench/train-fmnist.ts in PyTorch, for a side-by-side throughput number.

SwiftFormer-XS comes from bench/torchref/swiftformer.py (written from the paper's description,
with the official key names; checked against ../shared/fixtures by bench/torchref/check_fixtures.py):
stem of two 3x3 stride-2 conv+BN+ReLU (24, 48), stages [48, 56, 112, 220] x [3, 3, 6, 4] of
ConvEncoders with a SwiftFormer encoder (efficient additive attention) last in each stage, 3x3
stride-2 conv+BN between stages, head BN -> global mean -> Linear, initialized as the TypeScript
trainer does (torchref.swiftformer.init_weights). Recipe: 10 classes, 28x28 zero-padded to 32x32,
gray to 3 channels, normalized (0.2860/0.3530), batch 128 (drop last), AdamW lr 1e-3 wd 0.025
(no decay on 1-d params, biases, layer scales), cosine per step to 0, label smoothing 0.1.

    /usr/bin/python3 bench/train-fmnist-torch.py --steps 40            # throughput only
    /usr/bin/python3 bench/train-fmnist-torch.py --epochs 9            # the full recipe
    [--limit N] [--threads 2] [--batch-size 128] [--json out.json] [--data DIR]

Call Debian's /usr/bin/python3 (it has python3-torch); a pyenv python3 may come first on PATH.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchref import env  # noqa: E402
from torchref.swiftformer import init_weights, swiftformer  # noqa: E402


# ------------------------------------------------------------------ data

def read_idx(path):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if data[:2] != b'\0\0' or data[2] != 8:
        raise SystemExit(f'{path}: not a uint8 IDX file')
    ndim = data[3]
    dims = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise SystemExit(f'{path}: truncated')
    return body.reshape(dims)


def find(directory, prefix, kind):
    n = 3 if kind == 'images' else 1
    for ext in ('', '.gz'):
        path = os.path.join(directory, f'{prefix}-{kind}-idx{n}-ubyte{ext}')
        if os.path.exists(path):
            return path
    raise SystemExit(f'no {prefix} {kind} in {directory} (apt-get install dataset-fashion-mnist)')


def load_split(directory, prefix, limit):
    images = read_idx(find(directory, prefix, 'images'))
    labels = read_idx(find(directory, prefix, 'labels')).astype(np.int64)
    if limit is not None and limit < len(labels):
        idx = (np.arange(limit) * len(labels)) // limit  # evenly spaced, as the TS harness
        images, labels = images[idx], labels[idx]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    x = F.pad(x, (2, 2, 2, 2))  # 28 -> 32, zeros before normalization (as torchvision Pad on the image)
    x = ((x - 0.2860) / 0.3530).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return x, torch.from_numpy(labels)


# ------------------------------------------------------------------ training

def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.ndim <= 1 or name.endswith('.bias') or 'layer_scale' in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{'params': no_decay, 'weight_decay': 0.0}, {'params': decay, 'weight_decay': weight_decay}]


def evaluate(model, x, y, batch=500):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch):
            correct += (model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=9)
    ap.add_argument('--steps', type=int, default=None, help='time this many steps and stop (throughput only)')
    ap.add_argument('--limit', type=int, default=None)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--data', default='/usr/share/datasets/fashion-mnist')
    ap.add_argument('--json', default=None)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()

    machine = env.setup(args.threads)
    torch.manual_seed(args.seed)
    x_train, y_train = load_split(args.data, 'train', args.limit)
    x_test, y_test = load_split(args.data, 't10k', args.limit)
    model = init_weights(swiftformer('XS', num_classes=10, distillation=False))
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(param_groups(model, 0.025), lr=1e-3)
    steps_per_epoch = len(y_train) // args.batch_size
    total = args.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, total) / total)))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    print(f'PyTorch {torch.__version__}, {args.threads} threads; SwiftFormer-XS ({n_params / 1e6:.2f} M params), '
          f'{len(y_train)} train / {len(y_test)} test, batch {args.batch_size}', flush=True)

    def step(xb, yb):
        loss = criterion(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    result = {'bench': 'train-fmnist-torch', **machine, 'batch_size': args.batch_size, 'params': n_params}
    if args.steps is not None:
        warmup = 3
        perm = torch.randperm(len(y_train), generator=gen)
        times = []
        for s in range(warmup + args.steps):
            idx = perm[(s % steps_per_epoch) * args.batch_size:][:args.batch_size]
            t = time.perf_counter()
            step(x_train[idx], y_train[idx])
            if s >= warmup:
                times.append(time.perf_counter() - t)
        med = sorted(times)[len(times) // 2]
        result.update(steps=args.steps, img_per_s=args.batch_size * len(times) / sum(times), img_per_s_median_step=args.batch_size / med)
        print(f'{args.steps} steps: {result["img_per_s"]:.1f} img/s (median step {med * 1000:.0f} ms, {result["img_per_s_median_step"]:.1f} img/s)')
    else:
        epochs = []
        for epoch in range(args.epochs):
            perm = torch.randperm(len(y_train), generator=gen)
            t0 = time.perf_counter()
            loss_sum = 0.0
            for s in range(steps_per_epoch):
                idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
                loss_sum += step(x_train[idx], y_train[idx])
            seconds = time.perf_counter() - t0
            acc = evaluate(model, x_test, y_test)
            m = {'epoch': epoch + 1, 'train_loss': loss_sum / steps_per_epoch, 'test_acc': acc,
                 'img_per_s': steps_per_epoch * args.batch_size / seconds, 'seconds': seconds}
            epochs.append(m)
            print(f'epoch {m["epoch"]}: test acc {acc * 100:.2f}%  loss {m["train_loss"]:.4f}  {m["img_per_s"]:.1f} img/s', flush=True)
        result.update(epochs=epochs, final_test_acc=epochs[-1]['test_acc'] if epochs else None)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
