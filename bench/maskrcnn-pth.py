#!/usr/bin/python3
"""A references/detection checkpoint through torchvision and back: loads --pth (torch.load; the
'model' entry into bench/torchref/maskrcnn.py's torchvision MaskRCNN with load_state_dict(strict=True)),
runs it in eval mode on --image (float32 3 x H x W, RGB in [0, 1], H, W from --size) with
GeneralizedRCNNTransform(min_size, max_size), prints one JSON line with the detections (boxes
as x1,y1,x2,y2, scores, labels, masks as hex of the H x W bytes of mask > 0.5), and with --save
writes what torchvision hands back: torch.save of {'model': model.state_dict(), 'args', 'epoch'}.

    /usr/bin/python3 bench/maskrcnn-pth.py --pth run/checkpoint.pth --image img.bin --size 64,64 \\
        --min-size 128 --max-size 256 [--save back.pth]

Used by test/detection-pth.test.ts. Call Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision 0.14).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torchref.maskrcnn import maskrcnn_from_state  # noqa: E402
from torchref.tensorio import torch_save  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--pth', required=True)
    ap.add_argument('--image', required=True)
    ap.add_argument('--size', required=True, help='H,W of the image')
    ap.add_argument('--min-size', type=int, required=True)
    ap.add_argument('--max-size', type=int, required=True)
    ap.add_argument('--save', default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    checkpoint = torch.load(args.pth, map_location='cpu')
    extra = checkpoint.get('args', {})
    attention = extra.get('attention', 'l2') if isinstance(extra, dict) else 'l2'
    model, _ = maskrcnn_from_state(checkpoint['model'], attention=attention, min_size=args.min_size, max_size=args.max_size)
    model.eval()
    h, w = (int(v) for v in args.size.split(','))
    image = torch.from_numpy(np.fromfile(args.image, dtype='<f4').reshape(3, h, w).copy())
    with torch.no_grad():
        det = model([image])[0]
    masks = (det['masks'][:, 0] > 0.5).to(torch.uint8).numpy()
    print(json.dumps({
        'epoch': checkpoint.get('epoch'), 'keys': sorted(checkpoint.keys()), 'attention': attention,
        'boxes': det['boxes'].tolist(), 'scores': det['scores'].tolist(), 'labels': det['labels'].tolist(),
        'masks': [m.tobytes().hex() for m in masks],
    }))
    if args.save:
        torch_save({'model': model.state_dict(), 'args': extra, 'epoch': checkpoint.get('epoch')}, args.save)


if __name__ == '__main__':
    main()
