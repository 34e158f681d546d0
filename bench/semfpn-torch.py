#!/usr/bin/python3
"""Semantic FPN on SwiftFormer in PyTorch: the reference side of the segmentation side-by-side
(same data, architecture and recipe as the TypeScript trainer), plus ONNX export and mmseg-layout
checkpoints for the loader and the benchmark.

Model: bench/torchref/semfpn.py (mmseg 0.x's FPN neck + FPNHead on the SwiftFormer fork_feat
backbone, checked against ../shared/fixtures by bench/torchref/check_fixtures.py), FPN 256, head 128,
Dropout2d 0.1. Backbone from a classification checkpoint with official keys (default: the bundled
Fashion-MNIST XS, assets/default/model.safetensors; its norm/head are dropped, the fork_feat norms
start as identity); neck and head initialized as mmseg does (semfpn.init_weights).

Recipe (EfficientFormer's ADE20K Semantic FPN, scaled to the scenes): mmseg's training pipeline
(torchref/segdata.py: random rescale of img_scale with ratio 0.5-2.0, random crop with
cat_max_ratio 0.75, horizontal flip 0.5, PhotoMetricDistortion, ImageNet normalization, padding
with 0 / 255 in the label to the crop size), per-pixel cross-entropy with ignore 255 on logits resized
to the label size, averaged over all pixels (mmseg's default), AdamW lr 2e-4, weight decay 1e-4 on
every parameter (mmseg's default optimizer has no parameter-wise rules), poly schedule per iteration
lr = (lr0 - min_lr) * (1 - it / iters)^0.9 + min_lr, batch 8 (last incomplete batch dropped), BatchNorm in
train mode everywhere. Evaluation each epoch: whole-image inference as mmseg 0.x's test pipeline
(resize into img_scale keeping the ratio, no padding), logits resized to the original size, argmax,
mmseg's mIoU (torchref/segmetrics.py).

    /usr/bin/python3 bench/semfpn-torch.py --data data/scenes --epochs 12 --json runs/semfpn-torch.json
    /usr/bin/python3 bench/semfpn-torch.py --data data/scenes --steps 20          # throughput only
    /usr/bin/python3 bench/semfpn-torch.py --data data/scenes --serve-steps       # timing server of bench/segmentation-train.ts
    /usr/bin/python3 bench/semfpn-torch.py --export-onnx semfpn.onnx --weights w.safetensors [--export-size 512]
    /usr/bin/python3 bench/semfpn-torch.py --save-weights out.safetensors [--weights W | --data D --epochs N]

--save-weights PATH writes PATH (mmseg-layout safetensors) and PATH with .pth (mmcv's save_checkpoint
layout: {'meta': {CLASSES, PALETTE, ...}, 'state_dict', 'optimizer' after training}).
Call Debian's /usr/bin/python3 (python3-torch 1.13); a pyenv python3 may come first on PATH.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchref import env  # noqa: E402
from torchref import segdata  # noqa: E402
from torchref.semfpn import (IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, init_weights, mmseg_checkpoint,  # noqa: E402
                             seg_loss, semfpn, semfpn_from_state)
from torchref.segmetrics import SegMetric  # noqa: E402
from torchref.swiftformer import init_backbone, init_weights as init_swiftformer, variant_name  # noqa: E402
from torchref.tensorio import finish_onnx_export, load_weights, torch_save, write_json, write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BACKBONE = os.path.join(ROOT, 'assets', 'default', 'model.safetensors')


def pair(text, kind=int):
    parts = [kind(p) for p in text.split(',')]
    return tuple(parts * 2 if len(parts) == 1 else parts)


def poly_lr(base, min_lr, power, it, total):
    return (base - min_lr) * (1 - it / total) ** power + min_lr


# ------------------------------------------------------------------ model

def build_model(args, num_classes):
    model = semfpn(args.variant, num_classes, args.fpn_channels, args.head_channels, dropout=args.dropout)
    init_swiftformer(model.backbone)
    init_weights(model)
    return model, init_backbone(model.backbone, args.backbone, args.variant)


def evaluate(model, samples, num_classes, img_scale, batch=8):
    model.eval()
    metric = SegMetric(num_classes, IGNORE_INDEX)
    with torch.no_grad():
        for start in range(0, len(samples), batch):
            chunk = samples[start:start + batch]
            inputs = [segdata.test_input(img, img_scale, IMAGENET_MEAN, IMAGENET_STD) for _, img, _ in chunk]
            same = all(x.shape == inputs[0].shape for x in inputs)
            outs = list(model(torch.stack(inputs))) if same else [model(x[None])[0] for x in inputs]
            for (_, img, lbl), logits in zip(chunk, outs):
                if logits.shape[1:] != lbl.shape:
                    logits = torch.nn.functional.interpolate(logits[None], size=lbl.shape, mode='bilinear', align_corners=False)[0]
                metric.add(logits.argmax(0).numpy(), lbl)
    model.train()
    return metric.result()


def batches(samples, pipeline, rng, batch_size):
    """One epoch: a permutation of the training set through the pipeline, in full batches."""
    order = rng.permutation(len(samples))
    for b in range(len(order) // batch_size):
        xs, ys = [], []
        for i in order[b * batch_size:(b + 1) * batch_size]:
            _, img, lbl = samples[i]
            x, y = pipeline(img, lbl, rng)
            xs.append(x)
            ys.append(y)
        yield torch.stack(xs), torch.stack(ys)


def save_weights(path, model, classes, palette, args, optimizer=None, epoch=None, iteration=None):
    meta = {'variant': args.variant, 'num_classes': len(classes), 'fpn_channels': args.fpn_channels,
            'head_channels': args.head_channels, 'classes': json.dumps(list(classes)), 'palette': json.dumps(palette)}
    write_safetensors(path, model.state_dict(), meta)
    config = json.dumps({'model': 'EncoderDecoder', 'backbone': f'SwiftFormer_{args.variant} fork_feat', 'neck': f'FPN {args.fpn_channels}',
                         'decode_head': f'FPNHead {args.head_channels}', 'recipe': vars(args)}, default=str)
    pth = os.path.splitext(path)[0] + '.pth'
    torch_save(mmseg_checkpoint(model, classes, palette, config, optimizer, epoch, iteration), pth)
    print(f'wrote {path} and {pth}', flush=True)


def export_onnx(args):
    state, extra = load_weights(args.weights)
    model, cfg = semfpn_from_state(state, dropout=0.0)
    model.eval()
    size = args.export_size
    x = torch.randn(1, 3, size[0], size[1])
    torch.onnx.export(model, x, args.export_onnx, opset_version=17, input_names=['pixel_values'], output_names=['logits'],
                      dynamic_axes={'pixel_values': {0: 'batch'}, 'logits': {0: 'batch'}}, do_constant_folding=True)
    import onnx
    with torch.no_grad():
        out_shape = list(model(x).shape)
    m = onnx.load(args.export_onnx)
    # The trace computes the resize sizes from Shape ops, so the exporter leaves the output's K, H, W
    # symbolic; they are fixed by the weights and --export-size, so record them.
    for d, v in zip(m.graph.output[0].type.tensor_type.shape.dim[1:], out_shape[1:]):
        d.ClearField('dim_param')
        d.dim_value = v
    with torch.no_grad():
        absmax = float(model(x).abs().max())
    record = finish_onnx_export(args.export_onnx, m, {'weights': args.weights, 'variant': variant_name(cfg), 'opset': 17,
                                                      'logits_absmax_random_input': absmax})
    print(f"BatchNormalization nodes left (not after a conv): {'BatchNormalization' in record['ops']}")


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', help='dataset root in the generic layout (img_dir/{train,val}, ann_dir/{train,val})')
    env.add_run_args(ap, DEFAULT_BACKBONE)
    ap.add_argument('--num-classes', type=int, default=None, help='default: from dataset.json')
    ap.add_argument('--epochs', type=int, default=12)
    ap.add_argument('--batch-size', type=int, default=8)
    ap.add_argument('--lr', type=float, default=2e-4)
    ap.add_argument('--weight-decay', type=float, default=1e-4)
    ap.add_argument('--min-lr', type=float, default=0.0)
    ap.add_argument('--power', type=float, default=0.9)
    ap.add_argument('--img-scale', type=pair, default=(512, 128), help='(long, short) as mmseg img_scale; 128x128 scenes stay 128 at ratio 1')
    ap.add_argument('--crop', type=pair, default=(128, 128))
    ap.add_argument('--ratio-range', type=lambda t: pair(t, float), default=(0.5, 2.0))
    ap.add_argument('--cat-max-ratio', type=float, default=0.75)
    ap.add_argument('--no-photometric', action='store_true')
    ap.add_argument('--fpn-channels', type=int, default=256)
    ap.add_argument('--head-channels', type=int, default=128)
    ap.add_argument('--dropout', type=float, default=0.1)
    ap.add_argument('--avg-non-ignore', action='store_true')
    ap.add_argument('--export-size', type=pair, default=(512, 512))
    ap.add_argument('--serve-steps', action='store_true',
                    help='timing server for bench/segmentation-train.ts: after a "ready" line, each line K on stdin runs K '
                         'iterations (data + step) and answers one JSON line of per-iteration seconds')
    args = ap.parse_args()

    machine = env.start(args, 'semfpn-torch', export_onnx)
    if machine is None:
        return
    if args.weights and args.save_weights and not args.data:
        state, extra = load_weights(args.weights)
        model, cfg = semfpn_from_state(state)
        meta = extra.get('meta', {}) if isinstance(extra, dict) else {}
        classes = meta.get('CLASSES') or json.loads(extra.get('classes', 'null') or 'null') or [str(i) for i in range(model.num_classes)]
        palette = meta.get('PALETTE') or json.loads(extra.get('palette', 'null') or 'null') or [[0, 0, 0]] * model.num_classes
        args.variant, args.fpn_channels, args.head_channels = variant_name(cfg), model.neck.fpn_convs[0].conv.out_channels, model.decode_head.conv_seg.in_channels
        save_weights(args.save_weights, model, classes, palette, args)
        return
    if not args.data:
        raise SystemExit('semfpn-torch: --data is required for training (or --export-onnx / --save-weights with --weights)')

    info = segdata.dataset_info(args.data) or {}
    classes = info.get('classes')
    num_classes = args.num_classes or (len(classes) if classes else None)
    if num_classes is None:
        raise SystemExit(f'semfpn-torch: {args.data} has no dataset.json; pass --num-classes')
    classes = classes or [str(i) for i in range(num_classes)]
    palette = info.get('palette') or [[(37 * i) % 256, (91 * i) % 256, (173 * i) % 256] for i in range(num_classes)]
    try:
        train_set = segdata.load_generic(args.data, 'train', num_classes, args.limit)
        val_set = segdata.load_generic(args.data, 'val', num_classes, args.val_limit)
    except segdata.SegDataError as e:
        raise SystemExit(f'semfpn-torch: {e}')

    model, init_info = build_model(args, num_classes)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    pipeline = segdata.TrainPipeline(args.img_scale, args.crop, IMAGENET_MEAN, IMAGENET_STD, args.ratio_range,
                                     args.cat_max_ratio, 0.5, not args.no_photometric, IGNORE_INDEX)
    rng = np.random.RandomState(args.seed)
    iters_per_epoch = len(train_set) // args.batch_size
    if iters_per_epoch == 0:
        raise SystemExit(f'semfpn-torch: {len(train_set)} training scenes make no batch of {args.batch_size}')
    total = (args.steps + 2) if args.steps is not None else args.epochs * iters_per_epoch
    print(f'PyTorch {torch.__version__}, {args.threads} threads; Semantic FPN SwiftFormer-{args.variant} ({n_params / 1e6:.2f} M params), '
          f'{num_classes} classes, {len(train_set)} train / {len(val_set)} val, batch {args.batch_size}, crop {args.crop}, backbone {init_info["backbone_init"]}', flush=True)

    it = 0

    def step(x, y):
        nonlocal it
        for g in opt.param_groups:
            g['lr'] = poly_lr(args.lr, args.min_lr, args.power, it, total)
        loss = seg_loss(model.forward_quarter(x), y, args.avg_non_ignore)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        it += 1
        return loss.item()

    if args.serve_steps:
        env.serve_steps(lambda: batches(train_set, pipeline, rng, args.batch_size), lambda b: step(*b),
                        {**machine, 'params': n_params, 'num_classes': num_classes, **init_info})
        return

    result = {'bench': 'semfpn-torch', **machine, 'params': n_params, 'num_classes': num_classes, 'classes': classes,
              'train_images': len(train_set), 'val_images': len(val_set), 'args': {k: v for k, v in vars(args).items()}, **init_info}
    if args.steps is not None:
        warmup, times, data_times = 2, [], []
        stream = batches(train_set, pipeline, rng, args.batch_size)
        for s in range(warmup + args.steps):
            t0 = time.perf_counter()
            try:
                x, y = next(stream)
            except StopIteration:
                stream = batches(train_set, pipeline, rng, args.batch_size)
                x, y = next(stream)
            t1 = time.perf_counter()
            step(x, y)
            t2 = time.perf_counter()
            if s >= warmup:
                times.append(t2 - t0)
                data_times.append(t1 - t0)
        result.update(steps=args.steps, img_per_s=args.batch_size * len(times) / sum(times),
                      step_img_per_s=args.batch_size * len(times) / (sum(times) - sum(data_times)),
                      data_seconds_per_batch=sum(data_times) / len(times))
        print(f'{args.steps} iterations: {result["img_per_s"]:.2f} img/s with data, {result["step_img_per_s"]:.2f} img/s for the steps alone')
    else:
        epochs = []
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            data_s = loss_sum = 0.0
            td = time.perf_counter()
            for x, y in batches(train_set, pipeline, rng, args.batch_size):
                data_s += time.perf_counter() - td
                loss_sum += step(x, y)
                td = time.perf_counter()
            seconds = time.perf_counter() - t0
            te = time.perf_counter()
            metrics = evaluate(model, val_set, num_classes, args.img_scale)
            m = {'epoch': epoch + 1, 'train_loss': loss_sum / iters_per_epoch, 'mIoU': metrics['mIoU'], 'aAcc': metrics['aAcc'],
                 'mAcc': metrics['mAcc'], 'IoU': metrics['IoU'], 'lr': opt.param_groups[0]['lr'],
                 'img_per_s': iters_per_epoch * args.batch_size / seconds,
                 'step_img_per_s': iters_per_epoch * args.batch_size / (seconds - data_s),
                 'seconds': seconds, 'eval_seconds': time.perf_counter() - te}
            epochs.append(m)
            print(f'epoch {m["epoch"]}: mIoU {m["mIoU"] * 100:.2f}  aAcc {m["aAcc"] * 100:.2f}  mAcc {m["mAcc"] * 100:.2f}  '
                  f'loss {m["train_loss"]:.4f}  {m["img_per_s"]:.2f} img/s ({m["step_img_per_s"]:.2f} steps only)', flush=True)
            if args.json:  # a long run leaves its history behind as it goes
                write_json(args.json, {**result, 'epochs': epochs})
        result.update(epochs=epochs, final_mIoU=epochs[-1]['mIoU'] if epochs else None)
        if args.save_weights:
            save_weights(args.save_weights, model, classes, palette, args, opt, args.epochs, it)
    if args.json:
        write_json(args.json, result)


if __name__ == '__main__':
    main()
