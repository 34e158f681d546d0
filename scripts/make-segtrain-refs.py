#!/usr/bin/python3
"""A tiny Semantic FPN training run in PyTorch, for test/segmentation-train.test.ts: the same few
iterations our training loop takes must give the same losses and weights.

Model: ../shared/fixtures/semfpn-tiny (mmseg's EncoderDecoder on the tiny fork_feat backbone, FPN 32,
head 16, 5 classes), dropout 0, BatchNorm in train mode. Data: two 64x64 training scenes and two val
scenes written here in mmseg's generic layout (img_dir/, ann_dir/, dataset.json), labels with 255
bands. Recipe (bench/semfpn-torch.py's): per-pixel cross-entropy with ignore 255 on logits resized to
the label size, averaged over all pixels; AdamW lr 2e-4, weight decay 1e-4 on every parameter; poly
(power 0.9, min lr 0) over 3 iterations; batch 2 = the whole training set each iteration, no
augmentation (the scenes are the crop size: mmseg's pipeline with ratio 1, no flip, no photometric
distortion leaves them as they are). Then mmseg's whole-image evaluation on the val scenes.

    /usr/bin/python3 scripts/make-segtrain-refs.py     # writes test/data/segtrain/
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
from torchref import env, segdata  # noqa: E402
from torchref.semfpn import IMAGENET_MEAN, IMAGENET_STD, mmseg_checkpoint, seg_loss, semfpn_from_state  # noqa: E402
from torchref.segmetrics import SegMetric  # noqa: E402
from torchref.tensorio import load_state_dict, torch_save, write_json, write_safetensors  # noqa: E402

OUT = os.path.join(ROOT, 'test', 'data', 'segtrain')
FIXTURE = os.path.join(ROOT, '..', 'shared', 'fixtures', 'semfpn-tiny', 'weights.safetensors')
ITERS, LR, WD, POWER = 3, 2e-4, 1e-4, 0.9
CLASSES = ['c0', 'c1', 'c2', 'c3', 'c4']
PALETTE = [[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30]]


def scene(rng, size=64):
    """A smooth random image and a label map of rectangles (classes 0-4) with a 255 band on their edges."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + rng.uniform(0, 6)), np.cos(5 * y + rng.uniform(0, 6)), np.sin(4 * (x + y))], -1)
    label = np.zeros((size, size), np.uint8)
    image = (base * 60 + 128).astype(np.float64)
    for k in range(1, 5):
        y0, x0 = rng.integers(0, size - 20, 2)
        h, w = rng.integers(12, 28, 2)
        label[y0:y0 + h, x0:x0 + w] = k
        image[y0:y0 + h, x0:x0 + w] += np.array(PALETTE[k]) * 0.4 - 40
    edge = np.zeros_like(label, bool)
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    label[edge] = 255
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), label


def main():
    env.setup(2)
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    for split in ('train', 'val'):
        os.makedirs(os.path.join(OUT, 'img_dir', split), exist_ok=True)
        os.makedirs(os.path.join(OUT, 'ann_dir', split), exist_ok=True)
        for i in range(2):
            img, lbl = scene(rng)
            Image.fromarray(img).save(os.path.join(OUT, 'img_dir', split, f's{i}.png'))
            Image.fromarray(lbl, mode='L').save(os.path.join(OUT, 'ann_dir', split, f's{i}.png'))
    write_json(os.path.join(OUT, 'dataset.json'), {'classes': CLASSES, 'palette': PALETTE, 'generator': 'scripts/make-segtrain-refs.py'})

    state, _ = load_state_dict(FIXTURE)
    model, _ = semfpn_from_state(state, dropout=0.0)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WD)
    train = segdata.load_generic(OUT, 'train', len(CLASSES))
    x = torch.stack([segdata.normalize(img, IMAGENET_MEAN, IMAGENET_STD) for _, img, _ in train])
    y = torch.stack([torch.from_numpy(lbl.astype(np.int64)) for _, _, lbl in train])
    losses, grad_max = [], {}
    for it in range(ITERS):
        for g in opt.param_groups:
            g['lr'] = (LR - 0) * (1 - it / ITERS) ** POWER
        loss = seg_loss(model.forward_quarter(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in model.named_parameters():
            grad_max[name] = max(grad_max.get(name, 0.0), float(p.grad.abs().max()))
        opt.step()
        losses.append(float(loss))
    top = max(grad_max.values())
    # AdamW's first steps move every parameter by about lr whatever the size of its gradient: where the
    # gradient is ~0 (a conv bias feeding a train-mode BatchNorm) its sign is rounding noise.
    degenerate = sorted(k for k, v in grad_max.items() if v < 1e-4 * top)

    model.eval()
    metric = SegMetric(len(CLASSES))
    counts = []
    with torch.no_grad():
        for _, img, lbl in segdata.load_generic(OUT, 'val', len(CLASSES)):
            logits = model(segdata.test_input(img, (256, 64), IMAGENET_MEAN, IMAGENET_STD)[None])[0]
            metric.add(logits.argmax(0).numpy(), lbl)
    result = metric.result()
    result.update(intersect=metric.intersect.tolist(), pred=metric.pred.tolist(), label=metric.label.tolist())

    trained = model.state_dict()
    write_safetensors(os.path.join(OUT, 'trained.safetensors'), trained, {})
    torch_save(mmseg_checkpoint(model, CLASSES, PALETTE, 'scripts/make-segtrain-refs.py: semfpn-tiny after 3 iterations'), os.path.join(OUT, 'trained.pth'))
    write_json(os.path.join(OUT, 'index.json'), {
        'torch': torch.__version__, 'iterations': ITERS, 'lr': LR, 'weight_decay': WD, 'power': POWER, 'batch': 2,
        'losses': losses, 'degenerate_grads': degenerate, 'eval': result, 'test_scale': [256, 64],
    })
    print(f'losses {losses}; eval mIoU {result["mIoU"]:.4f}; {len(degenerate)} parameters with ~0 gradients')


if __name__ == '__main__':
    main()
