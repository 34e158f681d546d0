#!/usr/bin/python3
"""Mask R-CNN on SwiftFormer in PyTorch / torchvision: the reference side of the detection
side-by-side (same data, backbone, schedule and image sizes as the TypeScript trainer), plus ONNX
export and checkpoints in torchvision's references/detection layout.

Model: torchvision 0.14's MaskRCNN with backbone.body = SwiftFormer fork_feat and backbone.fpn =
FeaturePyramidNetwork + LastLevelMaxPool (bench/torchref/maskrcnn.py, checked against
../shared/fixtures/maskrcnn-tiny{,-train} by bench/torchref/check_fixtures.py); torchvision's default
heads (FPN 256, TwoMLPHead 1024, mask head 4 x 256) unless given. Backbone from a classification
checkpoint with official keys (default: the bundled Fashion-MNIST XS); the rest as torchvision
initializes it. Data: COCO instances of the scene set (scripts/make-scenes.ts), uncompressed RLE
decoded here (torchref/coco.py), crowd and degenerate boxes dropped and training images without a
box removed as the references do, horizontal flip 0.5, multi-scale training through
GeneralizedRCNNTransform's min_size tuple (a size drawn per image), evaluation at --test-size.

Schedule (the references' train.py with EfficientFormer's optimizer): AdamW lr 2e-4, weight decay
1e-4 (or --opt sgd: momentum 0.9), all parameters decayed, MultiStepLR x0.1 at epochs 8 and 11 of 12,
linear warm-up over the first min(1000, iterations - 1) iterations of epoch 0 from factor 0.001.
Batches of --batch-size images in a shuffled order; the last batch is completed from the start of
the order (as the references' GroupedBatchSampler completes its groups).

Each epoch writes <out>/results/epoch<N>_{bbox,segm}.json (COCO results; segm as compressed RLE of
mask > 0.5) for an external COCOeval, <out>/checkpoint.pth ({'model', 'optimizer', 'lr_scheduler',
'args', 'epoch'}, as the references save it) and <out>/checkpoint.safetensors (the model).

    /usr/bin/python3 bench/maskrcnn-torch.py --data data/scenes --out runs/maskrcnn-torch --json runs/maskrcnn-torch.json
    /usr/bin/python3 bench/maskrcnn-torch.py --data data/scenes --steps 10       # throughput only
    /usr/bin/python3 bench/maskrcnn-torch.py --data data/scenes --serve-steps    # timing server of bench/detection-train.ts
    /usr/bin/python3 bench/maskrcnn-torch.py --resume runs/maskrcnn-torch/checkpoint.pth --data data/scenes --out runs/maskrcnn-torch
    /usr/bin/python3 bench/maskrcnn-torch.py --export-onnx maskrcnn.onnx --weights W [--export-size 800,1333]
    /usr/bin/python3 bench/maskrcnn-torch.py --save-weights out.safetensors --weights W   (also writes out.pth)
    /usr/bin/python3 bench/maskrcnn-torch.py --time-eager image.bin --weights W --export-size 800,1333 --test-size 800

--time-eager serves eager inference to a benchmark (bench/detection.ts): it reads the image (float32
3 x H x W, RGB in [0, 1], H, W from --export-size), prints one JSON line with the machine and the
detections (boxes, scores, labels, mask pixels > 0.5 per detection), then times one model([image])
under torch.no_grad() for every line 'run' on stdin, printing the milliseconds, until 'quit' or EOF.

Call Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision 0.14).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchref import coco, env  # noqa: E402
from torchref.maskrcnn import maskrcnn, maskrcnn_from_state, register_roi_align_opset16  # noqa: E402
from torchref.swiftformer import init_backbone, init_weights as init_swiftformer, variant_name  # noqa: E402
from torchref.tensorio import finish_onnx_export, load_weights, torch_save, write_json, write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BACKBONE = os.path.join(ROOT, 'assets', 'default', 'model.safetensors')
LOSSES = ('loss_classifier', 'loss_box_reg', 'loss_mask', 'loss_objectness', 'loss_rpn_box_reg')


def ints(text):
    return tuple(int(t) for t in text.split(','))


def build_model(args, num_classes):
    kw = dict(out_channels=args.fpn_channels, representation=args.representation, mask_layers=(args.mask_channels,) * 4,
              min_size=args.min_size, max_size=args.max_size)
    model = maskrcnn(args.variant, num_classes, **kw)
    init_swiftformer(model.backbone.body)
    return model, init_backbone(model.backbone.body, args.backbone, args.variant)


def make_optimizer(args, model):
    params = [p for p in model.parameters() if p.requires_grad]
    if args.opt == 'sgd':
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    return torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)


def epoch_batches(n, batch_size, rng):
    order = rng.permutation(n).tolist()
    count = -(-n // batch_size)
    order += order[:count * batch_size - n]
    return [order[b * batch_size:(b + 1) * batch_size] for b in range(count)]


def read_plan(path, data, args):
    """--plan: per epoch, the (index, flip) of each position, from bench/detection-train.ts's plan.json
    (the images our trainer draws, in its order with its flips), so that both sides see the same data."""
    with open(path) as f:
        plan = json.load(f)
    index = {im['id']: i for i, im in enumerate(data.images)}
    if len(args.min_size) != 1:
        raise SystemExit(f'maskrcnn-torch: --plan needs one training size (--min-size), not {args.min_size}')
    epochs = []
    for e, images in enumerate(plan['epochs']):
        for p in images:
            if p['image_id'] not in index:
                raise SystemExit(f'maskrcnn-torch: {path}: epoch {e + 1} has image {p["image_id"]}, not in the training set')
            if p['min_size'] != args.min_size[0]:
                raise SystemExit(f'maskrcnn-torch: {path}: epoch {e + 1} draws short side {p["min_size"]}, not --min-size {args.min_size[0]}')
        if len(images) % args.batch_size:
            raise SystemExit(f'maskrcnn-torch: {path}: epoch {e + 1} has {len(images)} images, not whole batches of {args.batch_size}')
        pairs = [(index[p['image_id']], bool(p['flip'])) for p in images]
        epochs.append([pairs[b:b + args.batch_size] for b in range(0, len(pairs), args.batch_size)])
    if len(epochs) < args.epochs:
        raise SystemExit(f'maskrcnn-torch: {path} plans {len(epochs)} epochs, fewer than --epochs {args.epochs}')
    return epochs


def load_sample(data, i, rng, flip=0.5):
    """Image i, flipped with probability `flip` (or exactly when `flip` is True / never when False)."""
    image, target = data.image(i), data.target(i)
    if (flip if isinstance(flip, bool) else rng.rand() < flip):
        image, target = coco.flip_horizontal(image, target)
    return image, target


def evaluate(model, data, test_size, out_dir, epoch, batch=4):
    """Detections on the val set as COCO results files; returns their paths and the time taken."""
    model.eval()
    train_sizes = model.transform.min_size
    model.transform.min_size = (test_size,)
    bbox, segm = [], []
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(data), batch):
            idx = list(range(start, min(len(data), start + batch)))
            for i, det in zip(idx, model([data.image(i) for i in idx])):
                b, s = coco.detections_to_results(data.images[i]['id'], det)
                bbox += b
                segm += s
    seconds = time.perf_counter() - t0
    model.transform.min_size = train_sizes
    model.train()
    paths = {}
    for kind, rows in (('bbox', bbox), ('segm', segm)):
        paths[kind] = os.path.join(out_dir, 'results', f'epoch{epoch}_{kind}.json')
        write_json(paths[kind], rows, indent=None)
    return paths, len(bbox), seconds


def references_checkpoint(model, optimizer, lr_scheduler, args, epoch):
    """torchvision references/detection/train.py's checkpoint dict."""
    return {'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'lr_scheduler': lr_scheduler.state_dict(),
            'args': args, 'epoch': epoch}


def save_checkpoint(out, model, optimizer, lr_scheduler, args, epoch):
    torch_save(references_checkpoint(model, optimizer, lr_scheduler, args, epoch), os.path.join(out, 'checkpoint.pth'))
    write_safetensors(os.path.join(out, 'checkpoint.safetensors'), model.state_dict(), {'epoch': epoch, 'variant': args.variant})


def export_onnx(args):
    state, _ = load_weights(args.weights)
    model, cfg = maskrcnn_from_state(state, min_size=args.test_size, max_size=args.max_size)
    model.eval()
    h, w = args.export_size
    x = torch.rand(3, h, w)
    if args.opset >= 16:
        register_roi_align_opset16()
    torch.onnx.export(model, ([x],), args.export_onnx, opset_version=args.opset, input_names=['images'],
                      output_names=['boxes', 'labels', 'scores', 'masks'],
                      dynamic_axes={'images': {1: 'height', 2: 'width'}, 'boxes': {0: 'detections'}, 'labels': {0: 'detections'},
                                    'scores': {0: 'detections'}, 'masks': {0: 'detections', 2: 'height', 3: 'width'}},
                      do_constant_folding=True)
    import onnx
    m = onnx.load(args.export_onnx)
    masks = next(o for o in m.graph.output if o.name == 'masks').type.tensor_type.shape.dim[1]
    masks.ClearField('dim_param')
    masks.dim_value = 1  # one mask per detection (that of its class); the exporter leaves the axis symbolic
    with torch.no_grad():
        det = model([x])[0]
    finish_onnx_export(args.export_onnx, m, {
        'weights': args.weights, 'variant': variant_name(cfg['backbone']), 'opset': args.opset,
        'semantics': 'one image per run: images is (3, H, W) RGB in [0, 1] before normalization; resizing to min_size '
                     f'{args.test_size} / max_size {args.max_size}, ImageNet normalization and padding happen inside the graph; '
                     'boxes (N, 4) x1, y1, x2, y2 in the input image\'s pixels, labels (N,) int64, scores (N,), '
                     'masks (N, 1, H, W) probabilities pasted into the input image; N <= detections_per_img (100). '
                     'The graph computes the resized size in float32 (eager PyTorch in float64): where in * scale lies within '
                     'float32 rounding of an integer the ONNX image is one pixel larger (maskrcnn-tiny image 1: 192x128 vs 191x127)',
        'roi_align': 'RoiAlign with coordinate_transformation_mode output_half_pixel (aligned=False)' if args.opset >= 16 else
                     'RoiAlign-10 (no coordinate_transformation_mode: output_half_pixel)',
        'detections_on_random_input': int(len(det['scores'])),
        'config': {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if k != 'backbone'},
    })


def time_eager(args, machine):
    state, _ = load_weights(args.weights)
    model, _ = maskrcnn_from_state(state, min_size=args.test_size, max_size=args.max_size)
    model.eval()
    h, w = args.export_size
    image = torch.from_numpy(np.fromfile(args.time_eager, dtype='<f4').reshape(3, h, w).copy())
    with torch.no_grad():
        det = model([image])[0]
    found = {'boxes': det['boxes'].reshape(-1).tolist(), 'scores': det['scores'].tolist(), 'labels': det['labels'].tolist(),
             'mask_pixels': (det['masks'] > 0.5).reshape(len(det['scores']), -1).sum(1).tolist()}
    print(json.dumps({'machine': machine, 'detections': found}), flush=True)
    for line in sys.stdin:
        if line.strip() != 'run':
            break
        t0 = time.perf_counter()
        with torch.no_grad():
            model([image])
        print(f'{(time.perf_counter() - t0) * 1000:.3f}', flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--data', help='scene dataset root (annotations/instances_{train,val}.json, img_dir/{train,val})')
    env.add_run_args(ap, DEFAULT_BACKBONE)
    ap.add_argument('--epochs', type=int, default=12)
    ap.add_argument('--lr-steps', type=ints, default=(8, 11))
    ap.add_argument('--lr-gamma', type=float, default=0.1)
    ap.add_argument('--opt', choices=('adamw', 'sgd'), default='adamw')
    ap.add_argument('--lr', type=float, default=None, help='default 2e-4 (adamw), 0.02 * batch / 16 (sgd, the references\' linear rule)')
    ap.add_argument('--momentum', type=float, default=0.9)
    ap.add_argument('--weight-decay', type=float, default=1e-4)
    ap.add_argument('--warmup-iters', type=int, default=1000)
    ap.add_argument('--warmup-factor', type=float, default=1e-3)
    ap.add_argument('--batch-size', type=int, default=2)
    ap.add_argument('--min-size', type=ints, default=(96, 112, 128, 144, 160), help='training short sides (one drawn per image)')
    ap.add_argument('--test-size', type=int, default=128)
    ap.add_argument('--max-size', type=int, default=1333)
    ap.add_argument('--fpn-channels', type=int, default=256)
    ap.add_argument('--representation', type=int, default=1024)
    ap.add_argument('--mask-channels', type=int, default=256)
    ap.add_argument('--out', default=None, help='checkpoints and per-epoch COCO results')
    ap.add_argument('--plan', default=None, help='plan.json of bench/detection-train.ts: the images, order and flips of each epoch')
    ap.add_argument('--resume', default=None, help='a checkpoint.pth of this script (or of torchvision references)')
    ap.add_argument('--export-size', type=ints, default=(800, 1333))
    ap.add_argument('--opset', type=int, default=17)
    ap.add_argument('--time-eager', default=None, help='float32 3 x H x W image (.bin): serve eager timings on stdin (see above)')
    ap.add_argument('--serve-steps', action='store_true',
                    help='timing server for bench/detection-train.ts: after a "ready" line, each line K on stdin runs K '
                         'iterations (data + step + AdamW/SGD update) and answers one JSON line of per-iteration seconds')
    args = ap.parse_args()
    if args.lr is None:
        args.lr = 2e-4 if args.opt == 'adamw' else 0.02 * args.batch_size / 16

    machine = env.start(args, 'maskrcnn-torch', export_onnx)
    if machine is None:
        return
    if args.time_eager:
        if not args.weights:
            raise SystemExit('maskrcnn-torch: --time-eager needs --weights')
        time_eager(args, machine)
        return
    if args.weights and args.save_weights:
        state, _ = load_weights(args.weights)
        model, cfg = maskrcnn_from_state(state)
        args.variant = variant_name(cfg['backbone'])
        opt = make_optimizer(args, model)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(args.lr_steps), gamma=args.lr_gamma)
        write_safetensors(args.save_weights, model.state_dict(), {'variant': args.variant, **{k: str(v) for k, v in cfg.items() if k != 'backbone'}})
        pth = os.path.splitext(args.save_weights)[0] + '.pth'
        torch_save(references_checkpoint(model, opt, sched, args, 0), pth)
        print(f'wrote {args.save_weights} and {pth}')
        return
    if not args.data:
        raise SystemExit('maskrcnn-torch: --data is required for training')

    ann = lambda split: os.path.join(args.data, 'annotations', f'instances_{split}.json')  # noqa: E731
    try:
        train_set = coco.CocoInstances(ann('train'), os.path.join(args.data, 'img_dir', 'train'), remove_empty=True, limit=args.limit)
        val_set = coco.CocoInstances(ann('val'), os.path.join(args.data, 'img_dir', 'val'), limit=args.val_limit)
    except (OSError, coco.CocoError) as e:
        raise SystemExit(f'maskrcnn-torch: {e}')
    num_classes = max(train_set.categories) + 1  # category ids are the labels; 0 is background
    model, init_info = build_model(args, num_classes)
    opt = make_optimizer(args, model)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(args.lr_steps), gamma=args.lr_gamma)
    start_epoch = 0
    if args.resume:
        ckpt = torch.load(args.resume, map_location='cpu')
        model.load_state_dict(ckpt['model'], strict=True)
        opt.load_state_dict(ckpt['optimizer'])
        sched.load_state_dict(ckpt['lr_scheduler'])
        start_epoch = ckpt['epoch'] + 1
        init_info['resumed_from'] = args.resume
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    rng = np.random.RandomState(args.seed + start_epoch)
    plan = read_plan(args.plan, train_set, args) if args.plan else None
    out = args.out or os.path.join('/tmp', f'maskrcnn-torch-{int(time.time())}')
    print(f'PyTorch {torch.__version__}, {args.threads} threads; Mask R-CNN SwiftFormer-{args.variant} ({n_params / 1e6:.2f} M params), '
          f'{num_classes} classes, {len(train_set)} train / {len(val_set)} val, batch {args.batch_size}, sizes {args.min_size} / test {args.test_size}, '
          f'{args.opt} lr {args.lr:g}, backbone {init_info["backbone_init"]}; output {out}', flush=True)

    def load(idx):
        # idx: image indices (flips drawn here) or, from --plan, (index, flip) pairs
        pairs = [(i, 0.5) if isinstance(i, int) else i for i in idx]
        return zip(*(load_sample(train_set, i, rng, flip) for i, flip in pairs))

    def step(idx, warmup, loaded=None):
        images, targets = loaded or load(idx)
        losses = model(list(images), list(targets))
        total = sum(losses.values())
        if not torch.isfinite(total):
            raise SystemExit(f'maskrcnn-torch: loss is {total.item()} ({ {k: v.item() for k, v in losses.items()} }); stopping')
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if warmup is not None:
            warmup.step()
        return {k: v.item() for k, v in losses.items()}

    if args.serve_steps:
        def stream():
            for idx in epoch_batches(len(train_set), args.batch_size, rng):
                yield load(idx)
        env.serve_steps(stream, lambda loaded: step(None, None, loaded),
                        {**machine, 'params': n_params, 'num_classes': num_classes, 'train_images': len(train_set), **init_info})
        return

    result = {'bench': 'maskrcnn-torch', **machine, 'params': n_params, 'num_classes': num_classes, 'train_images': len(train_set),
              'val_images': len(val_set), 'args': {k: v for k, v in vars(args).items()}, **init_info}
    if args.steps is not None:
        batches = epoch_batches(len(train_set), args.batch_size, rng)
        times = env.time_steps(lambda s: step(batches[s % len(batches)], None), args.steps)
        result.update(steps=args.steps, img_per_s=args.batch_size * len(times) / sum(times))
        print(f'{args.steps} iterations: {result["img_per_s"]:.2f} img/s (data loading included)')
    else:
        epochs = []
        for epoch in range(start_epoch, args.epochs):
            batches = plan[epoch] if plan else epoch_batches(len(train_set), args.batch_size, rng)
            warmup = None
            if epoch == 0:
                iters = min(args.warmup_iters, len(batches) - 1)
                if iters > 0:
                    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=args.warmup_factor, total_iters=iters)
            sums = dict.fromkeys(LOSSES, 0.0)
            t0 = time.perf_counter()
            for b, idx in enumerate(batches):
                losses = step(idx, warmup)
                for k in LOSSES:
                    sums[k] += losses[k]
                if (b + 1) % 50 == 0:
                    print(f'  epoch {epoch + 1} iteration {b + 1}/{len(batches)}: ' + ' '.join(f'{k[5:]} {v / (b + 1):.4f}' for k, v in sums.items()), flush=True)
            seconds = time.perf_counter() - t0
            lr = opt.param_groups[0]['lr']
            sched.step()
            paths, n_dets, eval_s = evaluate(model, val_set, args.test_size, out, epoch + 1)
            save_checkpoint(out, model, opt, sched, args, epoch)
            m = {'epoch': epoch + 1, **{k: v / len(batches) for k, v in sums.items()}, 'lr': lr,
                 'img_per_s': len(batches) * args.batch_size / seconds, 'seconds': seconds, 'eval_seconds': eval_s,
                 'detections': n_dets, 'results': paths}
            epochs.append(m)
            print(f'epoch {m["epoch"]}: ' + ' '.join(f'{k[5:]} {m[k]:.4f}' for k in LOSSES) +
                  f'  {m["img_per_s"]:.2f} img/s  {n_dets} val detections -> {paths["bbox"]}', flush=True)
            if args.json:
                write_json(args.json, {**result, 'epochs': epochs})
        result.update(epochs=epochs, checkpoint=os.path.join(out, 'checkpoint.pth'))
        if args.save_weights:
            write_safetensors(args.save_weights, model.state_dict(), {'variant': args.variant})
            torch_save(references_checkpoint(model, opt, sched, args, args.epochs - 1), os.path.splitext(args.save_weights)[0] + '.pth')
    if args.json:
        write_json(args.json, result)


if __name__ == '__main__':
    main()
