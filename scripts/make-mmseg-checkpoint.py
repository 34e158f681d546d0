#!/usr/bin/python3
"""A small checkpoint in mmcv's save_checkpoint layout with what real mmseg checkpoints carry in
`meta` beyond CLASSES and PALETTE: numpy scalars (EvalHook's hook_msgs.best_score is an
np.float64), strings, ints, and an AdamW `optimizer` state that stepped. For
test/segmentation.test.ts (the loader's allow-listed unpickler must read it).

    /usr/bin/python3 scripts/make-mmseg-checkpoint.py      # writes test/data/mmseg/meta-numpy.pth
"""
import os

import numpy as np
import torch

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'data', 'mmseg', 'meta-numpy.pth')
torch.manual_seed(0)
weight = torch.nn.Parameter(torch.randn(3, 2))
optimizer = torch.optim.AdamW([weight], lr=2e-4, weight_decay=1e-4)
weight.sum().backward()
optimizer.step()
checkpoint = {
    'meta': {
        'mmcv_version': '1.4.0', 'time': 'Mon Dec  1 00:00:00 2026', 'env_info': 'sys.platform: linux\nPython: 3.11',
        'seed': 42, 'exp_name': 'fpn_swiftformer.py', 'mmseg_version': '0.20.2', 'config': "model = dict(type='EncoderDecoder')",
        'CLASSES': ('background', 'thing'), 'PALETTE': [[0, 0, 0], [200, 100, 50]],
        'epoch': 1, 'iter': 8000,
        'hook_msgs': {'last_ckpt': 'work_dirs/iter_8000.pth', 'best_score': np.float64(0.4125), 'best_ckpt': 'work_dirs/best_mIoU_iter_8000.pth',
                      'count': np.int64(7), 'flag': np.bool_(True), 'ratio': np.float32(0.5)},
    },
    'state_dict': {'decode_head.conv_seg.weight': weight.detach().clone()},
    'optimizer': optimizer.state_dict(),
}
os.makedirs(os.path.dirname(out), exist_ok=True)
torch.save(checkpoint, out)
print(f'wrote {out} ({os.path.getsize(out)} bytes)')
