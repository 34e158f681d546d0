#!/usr/bin/env python3
"""Generates reference data for test/coco-masks.test.ts and test/cocoeval.test.ts from pycocotools.

Deterministic random cases, written under test/data/coco/:

  masks.json  maskApi through pycocotools.mask: encode / decode of random masks, merge (union and
              intersection, and of different sizes), area, toBbox, iou (RLE and box, with crowd
              flags), frPyObjects of awkward polygons (fractional, negative and out-of-image
              vertices, self-intersecting, repeated and collinear points, slivers, vertices on
              the rounding boundaries), of boxes and of uncompressed RLE, compressed strings with
              large counts.
  eval-*.json COCOeval runs (bbox and segm) on synthetic ground truth and results: crowd regions,
              objects on the small / medium / large boundaries, images with more than 100
              detections, categories without ground truth or without detections, tied scores,
              results without bbox (segm), the stats, the printed summary, recall, and precision
              at area=all / maxDets=100.
  numpy-sums.json  np.sum / np.mean of float64 vectors of many lengths (the summation order the
              summary's means depend on).

pycocotools is not on PyPI here; build it from the cocoapi sources (PythonAPI: `python3 setup.py
build_ext --inplace` with cython3, gcc and python3-numpy) outside the repository and put its
PythonAPI directory on PYTHONPATH. coco.py imports matplotlib only to draw; it is stubbed when it
is missing. This pycocotools uses np.float, which NumPy 1.24 removed; it is restored as the
builtin float it always aliased.

    PYTHONPATH=/path/to/cocoapi/PythonAPI python3 scripts/make-coco-refs.py [out_dir]
"""

import base64
import contextlib
import copy
import io
import json
import os
import sys
import types

import numpy as np

for name in ['matplotlib', 'matplotlib.pyplot', 'matplotlib.collections', 'matplotlib.patches']:
    try:
        __import__(name)
    except ImportError:
        module = types.ModuleType(name)
        module.PatchCollection = module.Polygon = None
        sys.modules[name] = module
if not hasattr(np, 'float'):
    np.float = float

import pycocotools.mask as maskUtils  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def s(rle):
    """A pycocotools RLE with its counts as text."""
    counts = rle['counts']
    return {'size': [int(v) for v in rle['size']], 'counts': counts.decode('ascii') if isinstance(counts, bytes) else counts}


def bits(mask):
    """A row-major 0/1 mask as a string of '0' and '1'."""
    return ''.join('1' if v else '0' for v in np.asarray(mask).reshape(-1))


def uncompressed(mask):
    """An uncompressed RLE ({size, counts}) of a mask, as COCO's crowd annotations store them."""
    flat = np.asfortranarray(mask).reshape(-1, order='F').astype(np.int64)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1] if len(flat) else 1]])))
    counts = np.diff(np.concatenate([[0], change])).tolist()
    return {'size': [int(mask.shape[0]), int(mask.shape[1])], 'counts': [int(c) for c in counts]}


def random_mask(rng, h, w):
    kind = rng.integers(4)
    if kind == 0:
        return (rng.random((h, w)) < 0.5).astype(np.uint8)
    if kind == 1:  # blobs
        m = np.zeros((h, w), np.uint8)
        for _ in range(rng.integers(1, 4)):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0:y0 + rng.integers(1, h + 1), x0:x0 + rng.integers(1, w + 1)] = 1
        return m
    if kind == 2:
        return np.zeros((h, w), np.uint8)
    return np.ones((h, w), np.uint8)


def encode(mask):
    return s(maskUtils.encode(np.asfortranarray(mask.astype(np.uint8))))


def mask_cases(rng):
    out = {}
    sizes = [(1, 1), (1, 7), (6, 1), (5, 8), (13, 11), (32, 17), (40, 64)]
    out['encode'] = []
    for h, w in sizes * 3:
        m = random_mask(rng, h, w)
        out['encode'].append({'height': h, 'width': w, 'mask': bits(m), 'rle': encode(m)})

    # Large counts exercise the string's multi-character, negative-delta encoding (made as
    # uncompressed RLEs: masks this size would take gigabytes).
    out['strings'] = []
    for h, w in [(4000, 3000), (20000, 25000), (23000, 23000)]:
        cuts = np.sort(rng.choice(h * w, size=int(rng.integers(3, 9)), replace=False))
        counts = np.diff(np.concatenate([[0], cuts, [h * w]])).tolist()
        r = maskUtils.frPyObjects({'size': [h, w], 'counts': counts}, h, w)
        out['strings'].append({'counts': counts, 'rle': s(r), 'area': int(maskUtils.area(r)), 'bbox': maskUtils.toBbox(r).tolist()})

    out['merge'] = []
    for h, w in [(5, 8), (13, 11), (32, 17)] * 3:
        rles = [maskUtils.encode(np.asfortranarray(random_mask(rng, h, w))) for _ in range(rng.integers(2, 5))]
        out['merge'].append({
            'rles': [s(r) for r in rles],
            'union': s(maskUtils.merge(rles, intersect=0)),
            'intersection': s(maskUtils.merge(rles, intersect=1)),
        })
    a = maskUtils.encode(np.asfortranarray(random_mask(rng, 5, 8)))
    b = maskUtils.encode(np.asfortranarray(random_mask(rng, 8, 5)))
    out['merge'].append({'rles': [s(a), s(b)], 'union': s(maskUtils.merge([a, b], intersect=0)), 'intersection': s(maskUtils.merge([a, b], intersect=1))})

    out['rle'] = []
    for h, w in sizes * 2:
        r = maskUtils.encode(np.asfortranarray(random_mask(rng, h, w)))
        out['rle'].append({'rle': s(r), 'area': int(maskUtils.area(r)), 'bbox': maskUtils.toBbox(r).tolist()})

    out['iou'] = []
    for h, w in [(13, 11), (32, 17), (40, 64)]:
        dt = [maskUtils.encode(np.asfortranarray(random_mask(rng, h, w))) for _ in range(4)]
        gt = [maskUtils.encode(np.asfortranarray(random_mask(rng, h, w))) for _ in range(3)]
        crowd = [0, 1, 0]
        out['iou'].append({'dt': [s(r) for r in dt], 'gt': [s(r) for r in gt], 'iscrowd': crowd, 'iou': np.asarray(maskUtils.iou(dt, gt, crowd)).tolist()})
    dt = [maskUtils.encode(np.asfortranarray(np.ones((4, 4), np.uint8)))]
    gt = [maskUtils.encode(np.asfortranarray(np.ones((5, 4), np.uint8)))]
    out['iou'].append({'dt': [s(r) for r in dt], 'gt': [s(r) for r in gt], 'iscrowd': [0], 'iou': np.asarray(maskUtils.iou(dt, gt, [0])).tolist()})

    out['bboxIou'] = []
    for _ in range(3):
        dt = np.round(rng.random((5, 4)) * [40, 40, 30, 30], 1).tolist()
        gt = np.round(rng.random((4, 4)) * [40, 40, 30, 30], 1).tolist()
        gt.append(dt[0])  # an exact match
        crowd = [0, 1, 0, 1, 0]
        out['bboxIou'].append({'dt': dt, 'gt': gt, 'iscrowd': crowd, 'iou': np.asarray(maskUtils.iou(dt, gt, crowd)).tolist()})

    polygons = [
        [2, 2, 10, 2, 10, 8, 2, 8],                          # an axis-aligned rectangle
        [0.5, 0.5, 9.5, 0.5, 9.5, 6.5, 0.5, 6.5],            # on pixel centres
        [0.1, 0.3, 0.9, 0.3, 0.9, 0.7],                      # smaller than a pixel
        [-3.2, -2.6, 12.7, 1.1, 5.3, 14.9],                  # outside the image on every side
        [-0.2, -0.6, 4.4, -0.2, 4.4, 3.8, -0.2, 3.8],        # (int)(5x+.5) truncates toward zero
        [1, 1, 9, 9, 1, 9, 9, 1],                            # self-intersecting (bow tie)
        [3, 3, 3, 3, 8, 3, 8, 3, 8, 7, 3, 7, 3, 7],          # repeated vertices
        [1, 1, 4, 4, 7, 7, 7, 1],                            # collinear vertices
        [1.1, 2.3, 1.3, 2.3, 9.7, 2.4],                      # a sliver
        [2.9, 0.1, 3.1, 0.1, 3.1, 12.0, 2.9, 12.0],          # one column wide
        [0, 0, 12, 0, 12, 10, 0, 10],                        # the whole image and more
        [11.5, 2, 11.9, 2, 11.9, 9, 11.5, 9],                # at the right edge
        [2.7, 1.3, 8.1, 0.7, 11.2, 4.4, 9.9, 9.3, 4.1, 9.8, 0.6, 6.2],
    ]
    for _ in range(12):
        n = int(rng.integers(3, 12))
        pts = (rng.random(2 * n) * 18 - 3).round(int(rng.integers(0, 3)))
        polygons.append(pts.tolist())
    out['polygons'] = []
    for poly in polygons:
        for h, w in [(10, 12), (7, 5)]:
            rle = maskUtils.frPyObjects([poly], h, w)[0]
            out['polygons'].append({'polygon': poly, 'height': h, 'width': w, 'rle': s(rle), 'area': int(maskUtils.area(rle)), 'mask': bits(maskUtils.decode(rle))})
    # A multi-part segmentation: frPyObjects then merge, as COCO.annToRLE does.
    parts = [[1, 1, 5, 1, 5, 5, 1, 5], [4, 4, 9, 4, 9, 8]]
    out['multipart'] = {'segmentation': parts, 'height': 10, 'width': 12, 'rle': s(maskUtils.merge(maskUtils.frPyObjects(parts, 10, 12)))}
    # Degenerate later parts (a segment, a point), as some COCO annotations have: pycocotools
    # rasterizes them (only the first polygon decides how the list is read).
    parts = [[1, 1, 5, 1, 5, 5, 1, 5], [2, 2, 8, 8], [3, 3]]
    out['degenerate'] = {'segmentation': parts, 'height': 10, 'width': 12, 'rle': s(maskUtils.merge(maskUtils.frPyObjects(parts, 10, 12)))}

    out['boxes'] = []
    for box in [[1.2, 2.7, 5.1, 3.3], [0, 0, 12, 10], [-2.5, 3.1, 6.6, 20], [3, 3, 0.1, 0.1]]:
        rle = maskUtils.frPyObjects(np.array([box], dtype=np.double), 10, 12)[0]
        out['boxes'].append({'bbox': box, 'height': 10, 'width': 12, 'rle': s(rle)})

    out['uncompressed'] = []
    for h, w in [(5, 8), (13, 11)]:
        m = random_mask(rng, h, w)
        obj = uncompressed(m)
        out['uncompressed'].append({'rle': obj, 'compressed': s(maskUtils.frPyObjects(obj, h, w))})
    return out


# ---------------------------------------------------------------- COCOeval


def rand_box(rng, size, side):
    w = min(size[1] - 1.0, max(1.0, float(side * rng.uniform(0.7, 1.3))))
    h = min(size[0] - 1.0, max(1.0, float(side * rng.uniform(0.7, 1.3))))
    x = float(rng.uniform(0, size[1] - w)); y = float(rng.uniform(0, size[0] - h))
    return [round(x, 2), round(y, 2), round(w, 2), round(h, 2)]


def jitter(rng, box, amount):
    x, y, w, h = box
    return [round(x + rng.normal(0, amount * w), 2), round(y + rng.normal(0, amount * h), 2),
            round(max(0.5, w * rng.uniform(1 - amount, 1 + amount)), 2), round(max(0.5, h * rng.uniform(1 - amount, 1 + amount)), 2)]


def box_polygon(box, rng, wobble=0.0):
    x, y, w, h = box
    pts = [x, y, x + w, y, x + w, y + h, x, y + h]
    return [[round(p + (rng.normal(0, wobble) if wobble else 0), 2) for p in pts]]


def synthetic(rng, n_images, cats, segm, with_bbox_in_segm_results=False, many=False, score_levels=None):
    """Ground truth with crowds and boundary areas, and results with misses, duplicates and ties."""
    images, anns, results = [], [], []
    ann_id = 1
    sizes = [(120, 160), (200, 150), (96, 96), (300, 240)]
    for i in range(n_images):
        h, w = sizes[i % len(sizes)]
        image_id = 10 + 3 * i  # ids need not be contiguous
        images.append({'id': image_id, 'width': w, 'height': h, 'file_name': f'{image_id}.jpg'})
        for cat in cats['with_gt']:
            for k in range(int(rng.integers(0, 4))):
                side = float(rng.choice([8, 30, 32, 33, 60, 95, 97, 140]))
                box = rand_box(rng, (h, w), min(side, min(h, w) * 0.8))
                crowd = int(rng.random() < 0.12)
                area = round(box[2] * box[3] * float(rng.uniform(0.6, 1.0)), 2)
                if k == 0 and i % 5 == 1:
                    area = float(rng.choice([32 ** 2, 96 ** 2]))  # exactly on a range boundary
                ann = {'id': ann_id, 'image_id': image_id, 'category_id': cat, 'bbox': box, 'area': area, 'iscrowd': crowd}
                if segm:
                    poly = box_polygon(box, rng, 0.8)
                    if crowd:
                        ann['segmentation'] = uncompressed(maskUtils.decode(maskUtils.merge(maskUtils.frPyObjects(poly, h, w))))
                    elif rng.random() < 0.2:
                        ann['segmentation'] = s(maskUtils.merge(maskUtils.frPyObjects(poly, h, w)))
                    else:
                        ann['segmentation'] = poly
                elif rng.random() < 0.5:
                    ann['segmentation'] = box_polygon(box, rng)
                anns.append(ann)
                ann_id += 1
                # Detections: usually one near-hit, sometimes a duplicate, sometimes a miss.
                for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                    det = jitter(rng, box, float(rng.choice([0.02, 0.08, 0.2])))
                    results.append(make_result(rng, image_id, cat, det, (h, w), segm, with_bbox_in_segm_results, score_levels))
        # False positives, some in categories without ground truth anywhere.
        for _ in range(int(rng.integers(0, 4))):
            cat = int(rng.choice(cats['with_gt'] + cats['without_gt']))
            det = rand_box(rng, (h, w), float(rng.choice([10, 40, 100])))
            results.append(make_result(rng, image_id, cat, det, (h, w), segm, with_bbox_in_segm_results, score_levels))
        if many and i == 0:
            # More than 100 detections in one image and category: maxDets cuts them.
            cat = cats['with_gt'][0]
            for _ in range(130):
                det = rand_box(rng, (h, w), float(rng.choice([12, 40])))
                results.append(make_result(rng, image_id, cat, det, (h, w), segm, with_bbox_in_segm_results, score_levels))
            for _ in range(6):
                box = rand_box(rng, (h, w), 40)
                anns.append({'id': ann_id, 'image_id': image_id, 'category_id': cat, 'bbox': box, 'area': round(box[2] * box[3], 2), 'iscrowd': 0,
                             **({'segmentation': box_polygon(box, rng, 0.5)} if segm else {})})
                ann_id += 1
                results.append(make_result(rng, image_id, cat, jitter(rng, box, 0.05), (h, w), segm, with_bbox_in_segm_results, score_levels, score=0.001))
    categories = [{'id': c, 'name': f'class{c}', 'supercategory': 'thing'} for c in sorted(cats['with_gt'] + cats['without_gt'] + cats['no_results'])]
    return {'images': images, 'annotations': anns, 'categories': categories}, results


def make_result(rng, image_id, cat, box, size, segm, with_bbox, score_levels, score=None):
    if score is None:
        score = float(rng.choice(score_levels)) if score_levels is not None else round(float(rng.random()), 4)
    r = {'image_id': image_id, 'category_id': cat, 'score': score}
    if segm:
        h, w = size
        rle = maskUtils.merge(maskUtils.frPyObjects(box_polygon(box, rng, 0.5), h, w))
        r['segmentation'] = s(rle)
        if with_bbox:
            r['bbox'] = box
    else:
        r['bbox'] = box
    return r


def run_eval(gt, results, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        dt = coco.loadRes(copy.deepcopy(results))
    E = COCOeval(coco, dt, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        E.summarize()
    precision = E.eval['precision'][:, :, :, 0, 2]  # [T, R, K] at area=all, maxDets=100
    return {
        'stats': [float(x) for x in E.stats],
        'summary': buf.getvalue(),
        'recall': E.eval['recall'].tolist(),  # [T, K, A, M]
        'precisionAllArea100': base64.b64encode(np.ascontiguousarray(precision, dtype='<f8').tobytes()).decode('ascii'),
    }


def eval_cases(rng):
    cases = []
    cats = {'with_gt': [1, 3, 7], 'without_gt': [4], 'no_results': [9]}
    for name, iou_type, kwargs in [
        ('bbox', 'bbox', dict(n_images=12, many=True)),
        ('bbox tied scores', 'bbox', dict(n_images=10, score_levels=[0.9, 0.5, 0.5, 0.3])),
        ('segm', 'segm', dict(n_images=10, many=True)),
        ('segm results with bbox', 'segm', dict(n_images=8, with_bbox_in_segm_results=True)),
    ]:
        segm = iou_type == 'segm'
        gt, results = synthetic(rng, cats=cats, segm=segm, **kwargs)
        cases.append({'name': name, 'iouType': iou_type, 'gt': gt, 'results': results, **run_eval(gt, results, iou_type)})
    # Segm results evaluated as boxes (their bbox comes from the RLE), and box results as masks.
    seg_gt, seg_results = synthetic(rng, n_images=6, cats=cats, segm=True)
    cases.append({'name': 'segm results, bbox evaluation', 'iouType': 'bbox', 'gt': seg_gt, 'results': seg_results, **run_eval(seg_gt, seg_results, 'bbox')})
    box_gt, box_results = synthetic(rng, n_images=6, cats=cats, segm=True)
    for r in box_results:
        x, y, w, h = [round(v, 2) for v in maskUtils.toBbox(r.pop('segmentation')).tolist()]
        r['bbox'] = [x, y, w, h]
    cases.append({'name': 'bbox results, segm evaluation', 'iouType': 'segm', 'gt': box_gt, 'results': box_results, **run_eval(box_gt, box_results, 'segm')})
    return cases


def numpy_sums():
    """Vectors both languages can build bit for bit: v[i] = (i * 7919 % 10007) / 10007 + 1 / (i + 3), times a scale."""
    out = []
    for n, scale in [(1, 1), (7, 1), (8, 1e-3), (9, 1), (127, 1e6), (128, 1), (129, 1), (300, 1e-3), (1000, 1), (8191, 1), (8192, 1e6), (8193, 1), (20000, 1), (30300, 1e-3)]:
        a = np.array([((i * 7919 % 10007) / 10007 + 1 / (i + 3)) * scale for i in range(n)])
        out.append({'length': n, 'scale': scale, 'sum': float(np.sum(a)), 'mean': float(np.mean(a))})
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else 'test/data/coco'
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(15)

    def write(name, data):
        with open(os.path.join(out_dir, name), 'w') as f:
            json.dump({'generator': 'scripts/make-coco-refs.py', **data}, f, separators=(',', ':'))
            f.write('\n')
        print('wrote', os.path.join(out_dir, name))

    write('masks.json', mask_cases(rng))
    write('numpy-sums.json', {'cases': numpy_sums()})
    for i, case in enumerate(eval_cases(rng)):
        write(f'eval-{i}.json', case)


if __name__ == '__main__':
    main()
