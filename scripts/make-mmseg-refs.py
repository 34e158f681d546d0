#!/usr/bin/env python3
"""Generates reference data for test/segmentation-metrics.test.ts from mmsegmentation 0.x itself.

Runs mmseg's `eval_metrics` (mmseg/core/evaluation/metrics.py: intersect_and_union with
torch.histc, totals over the dataset, IoU / Acc / aAcc) on deterministic random label maps, and
draws the per-class and summary tables the way mmseg's CustomDataset.evaluate logs them
(np.round(x * 100, 2), np.nanmean, PrettyTable). The cases cover ignore pixels, reduce_zero_label,
predictions and labels outside [0, K-1], classes absent from the prediction, the ground truth or
both, images of different sizes, and 150 classes (np.nanmean's pairwise summation past 128).

mmsegmentation's package needs mmcv and a GPU-era stack to import; only metrics.py is needed, so
it is loaded from a path. mmcv is stubbed when it is not installed (metrics.py calls it only to
read label files, and this script passes arrays). Needs python3-torch, python3-numpy and
python3-prettytable:

    python3 scripts/make-mmseg-refs.py /path/to/mmsegmentation-0.x/mmseg/core/evaluation/metrics.py [out.json]
"""

import base64
import importlib.util
import json
import sys
import types
from collections import OrderedDict

import numpy as np
from prettytable import PrettyTable

if 'mmcv' not in sys.modules:
    try:
        import mmcv  # noqa: F401
    except ImportError:
        sys.modules['mmcv'] = types.ModuleType('mmcv')


def load_metrics(path):
    spec = importlib.util.spec_from_file_location('mmseg_metrics', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tables(ret_metrics, num_classes):
    """CustomDataset.evaluate's logging (mmseg 0.x), for class names tuple(range(num_classes))."""
    ret_metrics = dict(ret_metrics)
    summary = OrderedDict({k: np.round(np.nanmean(v) * 100, 2) for k, v in ret_metrics.items()})
    ret_metrics.pop('aAcc', None)
    per_class = OrderedDict({k: np.round(v * 100, 2) for k, v in ret_metrics.items()})
    per_class.update({'Class': tuple(range(num_classes))})
    per_class.move_to_end('Class', last=False)
    class_table = PrettyTable()
    for key, val in per_class.items():
        class_table.add_column(key, val)
    summary_table = PrettyTable()
    for key, val in summary.items():
        summary_table.add_column(key if key == 'aAcc' else 'm' + key, [val])
    return 'per class results:\n\n' + class_table.get_string() + '\nSummary:\n\n' + summary_table.get_string()


def b64(a):
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode('ascii')


def case(metrics, rng, name, k, sizes, reduce_zero_label=False, ignore_index=255, absent=(), extra_pred=(), extra_gt=(), p_ignore=0.1):
    preds, gts = [], []
    for h, w in sizes:
        classes = [c for c in range(k) if c not in absent]
        # Ground truth values are raw file values: with reduce_zero_label, 1..K stand for classes 0..K-1.
        shift = 1 if reduce_zero_label else 0
        gt = rng.choice(classes, size=(h, w)) + shift
        gt[rng.random((h, w)) < p_ignore] = 0 if reduce_zero_label else ignore_index
        if reduce_zero_label:
            gt[rng.random((h, w)) < 0.03] = 255
        for v in extra_gt:
            gt[rng.random((h, w)) < 0.03] = v
        # Predictions agree with the ground truth 60% of the time.
        pred = np.where(rng.random((h, w)) < 0.6, np.clip(gt - shift, 0, k - 1), rng.choice(classes, size=(h, w)))
        for v in extra_pred:
            pred[rng.random((h, w)) < 0.03] = v
        preds.append(pred.astype(np.int64))
        gts.append(gt.astype(np.uint8))
    ret = metrics.eval_metrics(preds, gts, k, ignore_index, ['mIoU'], reduce_zero_label=reduce_zero_label)
    totals = metrics.total_intersect_and_union(preds, gts, k, ignore_index, dict(), reduce_zero_label)
    nan = lambda a: [None if np.isnan(x) else float(x) for x in a]
    return {
        'name': name,
        'numClasses': k,
        'ignoreIndex': ignore_index,
        'reduceZeroLabel': reduce_zero_label,
        'images': [{'height': h, 'width': w, 'pred': b64(p.astype(np.int16)), 'gt': b64(g)} for (h, w), p, g in zip(sizes, preds, gts)],
        'aAcc': float(ret['aAcc']),
        'IoU': nan(ret['IoU']),
        'Acc': nan(ret['Acc']),
        'mIoU': float(np.nanmean(ret['IoU'])),
        'mAcc': float(np.nanmean(ret['Acc'])),
        'totals': {key: t.numpy().tolist() for key, t in zip(['intersect', 'union', 'predLabel', 'label'], totals)},
        'tables': tables(ret, k),
    }


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    metrics = load_metrics(sys.argv[1])
    out = sys.argv[2] if len(sys.argv) > 2 else 'test/data/mmseg/metrics.json'
    rng = np.random.default_rng(20240613)
    cases = [
        case(metrics, rng, 'plain', 5, [(7, 9), (4, 11)]),
        case(metrics, rng, 'absent classes', 8, [(10, 10), (6, 13), (3, 3)], absent=(2, 5), extra_pred=(2,)),
        case(metrics, rng, 'out-of-range predictions and labels', 6, [(9, 8), (12, 5)], extra_pred=(-1, 6, 7, 255), extra_gt=(6, 9)),
        case(metrics, rng, 'reduce_zero_label', 7, [(8, 8), (5, 12)], reduce_zero_label=True, absent=(3,)),
        case(metrics, rng, 'ignore index 0', 4, [(6, 6)], ignore_index=0, p_ignore=0.2),
        case(metrics, rng, '150 classes', 150, [(48, 64), (40, 50)], reduce_zero_label=True, absent=tuple(range(100, 150, 3))),
    ]
    with open(out, 'w') as f:
        json.dump({'generator': 'scripts/make-mmseg-refs.py', 'cases': cases}, f, indent=1)
        f.write('\n')
    print(f'wrote {len(cases)} cases to {out}')


if __name__ == '__main__':
    main()
