"""Segmentation data for the references: mmsegmentation's generic layout (img_dir/<split>/<stem>.*,
ann_dir/<split>/<stem>.png with label values as pixel values) and mmseg 0.x's training pipeline,
written from its documented behaviour:

    Resize(img_scale, ratio_range=(0.5, 2.0))   ratio ~ U[lo, hi); the target (long, short) scale is
                                                (int(s0 * ratio), int(s1 * ratio)); keep_ratio: factor =
                                                min(long / max(h, w), short / min(h, w)), new size
                                                int(side * factor + 0.5); image bilinear, label nearest
    RandomCrop(crop, cat_max_ratio=0.75)        offset ~ randint over the margin; up to 10 redraws until
                                                the crop holds > 1 class (ignore excluded) and no class
                                                exceeds 75% of its labelled pixels
    RandomFlip(prob=0.5)                        horizontal, image and label
    PhotoMetricDistortion                       brightness +-32, then contrast [0.5, 1.5] first or last
                                                (coin), saturation [0.5, 1.5] and hue +-18 (in OpenCV's
                                                8-bit HSV, H in [0, 180)), each applied with probability 1/2
    Normalize(mean, std)                        RGB, 0..255 scale
    Pad(crop, pad_val=0, seg_pad_val=255)       bottom/right

Random draws use one numpy RandomState, in the order mmseg's transforms make them. Images are
resized with PyTorch's bilinear (half-pixel, no antialias: OpenCV's INTER_LINEAR without its
fixed-point rounding) and labels with PyTorch's nearest (floor(dst * scale), OpenCV's INTER_NEAREST).
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')


class SegDataError(ValueError):
    pass


def read_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert('RGB'), dtype=np.uint8).copy()


def read_label(path):
    """Pixel values as label indices: a palette ('P') PNG gives its indices, a gray PNG its values."""
    with Image.open(path) as im:
        if im.mode not in ('L', 'P', 'I;16', 'I'):
            raise SegDataError(f'{path}: label map has mode {im.mode}; expected a single-channel or palette PNG')
        return np.asarray(im).astype(np.uint8 if im.mode in ('L', 'P') else np.int64).copy()


def load_generic(root, split, num_classes, limit=None, ignore_index=255):
    """[(stem, image HxWx3 uint8, label HxW)] of img_dir/<split> paired with ann_dir/<split> by stem."""
    img_dir = os.path.join(root, 'img_dir', split)
    ann_dir = os.path.join(root, 'ann_dir', split)
    if not os.path.isdir(img_dir):
        raise SegDataError(f'{img_dir} does not exist (expected the generic layout img_dir/{{train,val}}, ann_dir/{{train,val}})')
    files = sorted(f for f in os.listdir(img_dir) if f.lower().endswith(IMAGE_SUFFIXES))
    if limit is not None:
        files = files[:limit]
    samples = []
    for f in files:
        stem = os.path.splitext(f)[0]
        ann = os.path.join(ann_dir, stem + '.png')
        if not os.path.exists(ann):
            raise SegDataError(f'{os.path.join(img_dir, f)} has no label map {ann}')
        img = read_rgb(os.path.join(img_dir, f))
        lbl = read_label(ann)
        if lbl.shape != img.shape[:2]:
            raise SegDataError(f'{ann} is {lbl.shape[1]}x{lbl.shape[0]}, its image {img.shape[1]}x{img.shape[0]}')
        bad = (lbl >= num_classes) & (lbl != ignore_index)
        if bad.any():
            raise SegDataError(f'{ann}: label value {int(lbl[bad][0])} is not below {num_classes} classes nor {ignore_index}')
        samples.append((stem, img, lbl))
    if not samples:
        raise SegDataError(f'{img_dir} holds no images')
    return samples


def dataset_info(root):
    """dataset.json of scripts/make-scenes.ts (classes, palette), if present."""
    path = os.path.join(root, 'dataset.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


# ------------------------------------------------------------------ geometry

def rescale_size(h, w, scale):
    """mmcv.imrescale's size for keep_ratio: fit (long, short) = (max(scale), min(scale))."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(h, w), short_edge / min(h, w))
    return int(h * factor + 0.5), int(w * factor + 0.5)


def resize_image(img, size):
    if img.shape[:2] == tuple(size):
        return img
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=size, mode='bilinear', align_corners=False)
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def resize_label(lbl, size):
    if lbl.shape == tuple(size):
        return lbl
    t = torch.from_numpy(lbl.astype(np.float32))[None, None]
    return F.interpolate(t, size=size, mode='nearest')[0, 0].numpy().astype(lbl.dtype)


def random_rescale(img, lbl, rng, img_scale, ratio_range):
    ratio = rng.random_sample() * (ratio_range[1] - ratio_range[0]) + ratio_range[0]
    scale = (int(img_scale[0] * ratio), int(img_scale[1] * ratio))
    size = rescale_size(img.shape[0], img.shape[1], scale)
    return resize_image(img, size), resize_label(lbl, size)


def random_crop(img, lbl, rng, crop, cat_max_ratio, ignore_index=255):
    ch, cw = crop

    def bbox():
        oy = rng.randint(0, max(img.shape[0] - ch, 0) + 1)
        ox = rng.randint(0, max(img.shape[1] - cw, 0) + 1)
        return oy, ox

    oy, ox = bbox()
    if cat_max_ratio < 1:
        for _ in range(10):
            labels, counts = np.unique(lbl[oy:oy + ch, ox:ox + cw], return_counts=True)
            counts = counts[labels != ignore_index]
            if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
                break
            oy, ox = bbox()
    return img[oy:oy + ch, ox:ox + cw], lbl[oy:oy + ch, ox:ox + cw]


def random_flip(img, lbl, rng, prob=0.5):
    if rng.rand() < prob:
        return img[:, ::-1], lbl[:, ::-1]
    return img, lbl


# ------------------------------------------------------------------ photometric distortion (OpenCV's 8-bit HSV)

_SHIFT = 12
_SDIV = np.array([0] + [int(round((255 << _SHIFT) / i)) for i in range(1, 256)], dtype=np.int64)
_HDIV = np.array([0] + [int(round((180 << _SHIFT) / (6.0 * i))) for i in range(1, 256)], dtype=np.int64)


def rgb_to_hsv8(img):
    """OpenCV's COLOR_RGB2HSV on uint8: H in [0, 180), S and V in [0, 255], fixed-point rounding."""
    r, g, b = (img[..., i].astype(np.int64) for i in range(3))
    v = np.maximum(np.maximum(r, g), b)
    diff = v - np.minimum(np.minimum(r, g), b)
    s = (diff * _SDIV[v] + (1 << (_SHIFT - 1))) >> _SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * _HDIV[diff] + (1 << (_SHIFT - 1))) >> _SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], axis=-1).astype(np.uint8)


_SECTORS = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])  # (r, g, b) per sector


def hsv8_to_rgb(hsv):
    """OpenCV's COLOR_HSV2RGB on uint8: via float32 (H * 6/180, S/255, V/255), rounded to nearest even."""
    h = hsv[..., 0].astype(np.float32) * np.float32(6.0 / 180.0)
    s = hsv[..., 1].astype(np.float32) * np.float32(1.0 / 255.0)
    v = hsv[..., 2].astype(np.float32) * np.float32(1.0 / 255.0)
    h = np.mod(h, np.float32(6.0))
    sector = np.floor(h).astype(np.int64)
    bad = (sector < 0) | (sector >= 6)
    sector = np.where(bad, 0, sector)
    f = np.where(bad, np.float32(0), h - sector).astype(np.float32)
    one = np.float32(1.0)
    tab = np.stack([v, v * (one - s), v * (one - s * f), v * (one - s * (one - f))], axis=-1)
    idx = _SECTORS[sector]  # (..., 3)
    rgb = np.take_along_axis(tab, idx, axis=-1)
    gray = (s == 0)[..., None]
    rgb = np.where(gray, v[..., None], rgb)
    return np.clip(np.rint(rgb * np.float32(255.0)), 0, 255).astype(np.uint8)


def _convert(x, alpha=1.0, beta=0.0):
    return np.clip(x.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(img, rng, brightness=32, contrast=(0.5, 1.5), saturation=(0.5, 1.5), hue=18):
    """mmseg's PhotoMetricDistortion, with its random draws in its order."""
    if rng.randint(2):
        img = _convert(img, beta=rng.uniform(-brightness, brightness))
    mode = rng.randint(2)
    if mode == 1 and rng.randint(2):
        img = _convert(img, alpha=rng.uniform(*contrast))
    if rng.randint(2):
        hsv = rgb_to_hsv8(img)
        hsv[..., 1] = _convert(hsv[..., 1], alpha=rng.uniform(*saturation))
        img = hsv8_to_rgb(hsv)
    if rng.randint(2):
        hsv = rgb_to_hsv8(img)
        hsv[..., 0] = (hsv[..., 0].astype(np.int64) + rng.randint(-hue, hue)) % 180
        img = hsv8_to_rgb(hsv)
    if mode == 0 and rng.randint(2):
        img = _convert(img, alpha=rng.uniform(*contrast))
    return img


# ------------------------------------------------------------------ tensors

def normalize(img, mean, std):
    """HxWx3 uint8 RGB -> 3xHxW float32 (x - mean) / std."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def pad_to(x, lbl, size, ignore_index=255):
    """Pads a normalized 3xHxW image with 0 and its label with ignore_index, bottom/right, to size."""
    ph, pw = size[0] - x.shape[1], size[1] - x.shape[2]
    lbl_t = torch.from_numpy(np.ascontiguousarray(lbl).astype(np.int64))
    if ph <= 0 and pw <= 0:
        return x, lbl_t
    x = F.pad(x, (0, max(pw, 0), 0, max(ph, 0)), value=0.0)
    lbl_t = F.pad(lbl_t, (0, max(pw, 0), 0, max(ph, 0)), value=ignore_index)
    return x, lbl_t


class TrainPipeline:
    def __init__(self, img_scale, crop, mean, std, ratio_range=(0.5, 2.0), cat_max_ratio=0.75, flip=0.5, photometric=True, ignore_index=255):
        self.img_scale, self.crop, self.mean, self.std = img_scale, crop, mean, std
        self.ratio_range, self.cat_max_ratio, self.flip, self.photometric = ratio_range, cat_max_ratio, flip, photometric
        self.ignore_index = ignore_index

    def __call__(self, img, lbl, rng):
        img, lbl = random_rescale(img, lbl, rng, self.img_scale, self.ratio_range)
        img, lbl = random_crop(img, lbl, rng, self.crop, self.cat_max_ratio, self.ignore_index)
        img, lbl = random_flip(img, lbl, rng, self.flip)
        if self.photometric:
            img = photometric_distortion(np.ascontiguousarray(img), rng)
        return pad_to(normalize(img, self.mean, self.std), lbl, self.crop, self.ignore_index)


def test_input(img, img_scale, mean, std):
    """mmseg 0.x's test pipeline for whole-image inference: resize keeping the ratio into img_scale, normalize."""
    size = rescale_size(img.shape[0], img.shape[1], img_scale)
    return normalize(resize_image(img, size), mean, std)
