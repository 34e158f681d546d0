"""COCO instance data without pycocotools: uncompressed and compressed RLE (pycocotools' maskApi
conventions: column-major runs starting with zeros; the string form stores each count, minus the
count two places before it from the fourth on, in 5-bit groups with a continuation bit, offset by 48),
the torchvision references' target conversion (xywh -> xyxy clamped to the image, degenerate boxes
and crowd annotations dropped, category ids used as labels), and COCO results files."""
import json
import os

import numpy as np
import torch
from PIL import Image


class CocoError(ValueError):
    pass


# ------------------------------------------------------------------ RLE

def rle_counts(mask):
    """Column-major run lengths of a HxW binary mask, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    return [0] + counts if flat[0] else counts


def rle_decode(rle):
    """{'counts': [...] or str, 'size': [h, w]} -> HxW uint8."""
    h, w = rle['size']
    counts = rle_from_string(rle['counts']) if isinstance(rle['counts'], str) else list(rle['counts'])
    if sum(counts) != h * w:
        raise CocoError(f'RLE counts sum to {sum(counts)}, the mask has {h}x{w} = {h * w} pixels')
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 1
    return np.repeat(values, counts).reshape(w, h).T.copy()


def rle_to_string(counts):
    out = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative deltas end at -1
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
    return ''.join(out)


def rle_from_string(s):
    counts = []
    p = 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def encode_mask(mask):
    """Compressed RLE as pycocotools.mask.encode gives it (counts as a str)."""
    h, w = mask.shape
    return {'size': [int(h), int(w)], 'counts': rle_to_string(rle_counts(mask))}


# ------------------------------------------------------------------ dataset

class CocoInstances:
    """images + annotations of instances_<split>.json; `sample(i)` gives (image CHW float [0, 1], target)."""

    def __init__(self, json_path, image_dir, remove_empty=False, limit=None):
        with open(json_path) as f:
            data = json.load(f)
        for key in ('images', 'annotations', 'categories'):
            if key not in data:
                raise CocoError(f'{json_path}: no "{key}" list')
        self.categories = {c['id']: c['name'] for c in data['categories']}
        self.image_dir = image_dir
        by_image = {img['id']: [] for img in data['images']}
        for a in data['annotations']:
            if a['image_id'] not in by_image:
                raise CocoError(f'{json_path}: annotation {a.get("id")} refers to image {a["image_id"]}, which does not exist')
            if a['category_id'] not in self.categories:
                raise CocoError(f'{json_path}: annotation {a.get("id")} has category_id {a["category_id"]}, not in categories')
            by_image[a['image_id']].append(a)
        images = sorted(data['images'], key=lambda im: im['id'])
        if remove_empty:  # torchvision references: train only on images with a box wider and taller than 1
            images = [im for im in images if any(a['bbox'][2] > 1 and a['bbox'][3] > 1 and not a.get('iscrowd', 0) for a in by_image[im['id']])]
        self.images = images[:limit] if limit is not None else images
        self.annotations = by_image

    def __len__(self):
        return len(self.images)

    def image(self, i):
        info = self.images[i]
        path = os.path.join(self.image_dir, info['file_name'])
        if not os.path.exists(path):
            raise CocoError(f'image {info["id"]}: {path} does not exist')
        with Image.open(path) as im:
            arr = np.asarray(im.convert('RGB'), dtype=np.uint8)
        if arr.shape[:2] != (info['height'], info['width']):
            raise CocoError(f'image {info["id"]}: {path} is {arr.shape[1]}x{arr.shape[0]}, the annotations say {info["width"]}x{info["height"]}')
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255)

    def target(self, i):
        """torchvision references' ConvertCocoPolysToMask for RLE masks."""
        info = self.images[i]
        h, w = info['height'], info['width']
        anns = [a for a in self.annotations[info['id']] if not a.get('iscrowd', 0)]
        boxes = torch.tensor([a['bbox'] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2].clamp_(0, w)
        boxes[:, 1::2].clamp_(0, h)
        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        masks = np.stack([rle_decode(a['segmentation']) for a in anns]) if anns else np.zeros((0, h, w), np.uint8)
        return {
            'boxes': boxes[keep],
            'labels': torch.tensor([a['category_id'] for a in anns], dtype=torch.int64)[keep],
            'masks': torch.from_numpy(masks)[keep],
            'image_id': torch.tensor([info['id']]),
        }


def flip_horizontal(image, target):
    """The references' RandomHorizontalFlip for an image and its boxes and masks."""
    width = image.shape[-1]
    image = image.flip(-1)
    target = dict(target)
    boxes = target['boxes'].clone()
    boxes[:, [0, 2]] = width - target['boxes'][:, [2, 0]]
    target['boxes'] = boxes
    target['masks'] = target['masks'].flip(-1)
    return image, target


def detections_to_results(image_id, det, with_masks=True):
    """COCO results entries (bbox as x, y, w, h; segm as compressed RLE of mask > 0.5) for one image."""
    boxes = det['boxes'].tolist()
    scores = det['scores'].tolist()
    labels = det['labels'].tolist()
    bbox = [{'image_id': int(image_id), 'category_id': int(c), 'bbox': [b[0], b[1], b[2] - b[0], b[3] - b[1]], 'score': s}
            for b, s, c in zip(boxes, scores, labels)]
    segm = []
    if with_masks:
        masks = (det['masks'][:, 0] > 0.5).numpy()
        segm = [{'image_id': int(image_id), 'category_id': int(c), 'segmentation': encode_mask(m), 'score': s}
                for m, s, c in zip(masks, scores, labels)]
    return bbox, segm
