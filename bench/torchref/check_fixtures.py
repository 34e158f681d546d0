#!/usr/bin/python3
"""Checks the PyTorch references in this package against ../shared/fixtures (outputs of the official
SwiftFormer code, mmsegmentation's composition and torchvision's MaskRCNN), within the fixture
README's tolerances. Prints one line per check and exits 1 if any fails.

    /usr/bin/python3 bench/torchref/check_fixtures.py [--only classification,semfpn,maskrcnn] [--fixtures DIR]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from torchref import env  # noqa: E402
from torchref import coco, segdata  # noqa: E402
from torchref.maskrcnn import RecordedSampler, maskrcnn  # noqa: E402
from torchref.segmetrics import SegMetric  # noqa: E402
from torchref.semfpn import semfpn, seg_loss  # noqa: E402
from torchref.swiftformer import swiftformer  # noqa: E402
from torchref.tensorio import load_state_dict, read_bin  # noqa: E402

DEFAULT_FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'fixtures')


BN_BUFFERS = ('running_mean', 'running_var', 'num_batches_tracked')


class Report:
    def __init__(self):
        self.rows = []

    def add(self, name, ok, detail):
        self.rows.append((name, ok, detail))
        print(f'{"ok  " if ok else "FAIL"} {name}: {detail}', flush=True)

    def close(self, name, actual, ref, rel=1e-4, floor=0.0):
        """max|a - b| <= rel * max|ref| + floor."""
        a = actual.detach().double()
        b = ref.detach().double()
        if a.shape != b.shape:
            self.add(name, False, f'shape {tuple(a.shape)} vs reference {tuple(b.shape)}')
            return False
        diff = (a - b).abs().max().item() if b.numel() else 0.0
        scale = b.abs().max().item() if b.numel() else 0.0
        ok = diff <= rel * scale + floor
        self.add(name, ok, f'max|diff| {diff:.3g}, max|ref| {scale:.3g}, relative {diff / scale if scale else 0:.3g} (limit {rel:g}{f" + {floor:g}" if floor else ""})')
        return ok

    def equal(self, name, actual, ref):
        ok = torch.equal(actual, ref)
        self.add(name, ok, 'equal' if ok else f'{(actual != ref).sum().item()} of {ref.numel()} differ')
        return ok

    def failed(self):
        return [r for r in self.rows if not r[1]]


class Fixture:
    """A fixture folder: its manifest and its .bin / .safetensors files."""

    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        with open(os.path.join(self.dir, 'manifest.json')) as f:
            self.manifest = json.load(f)

    def path(self, file):
        return os.path.join(self.dir, file)

    def bin(self, file, dtype=np.float32):
        return read_bin(self.path(file), self.manifest['files'][file]['shape'], dtype)

    def state(self, file):
        return load_state_dict(self.path(file))[0]


def compare_grads(report, prefix, model, grads, rel=1e-4, floor=1e-6):
    """Every parameter's gradient against the reference (same names); lists names that are missing."""
    params = dict(model.named_parameters())
    missing = sorted(set(grads) - set(params))
    extra = sorted(k for k, p in params.items() if p.requires_grad and k not in grads)
    report.add(f'{prefix} gradient names', not missing and not extra, f'{len(grads)} tensors; missing here {missing[:5]}, not in reference {extra[:5]}')
    worst = (0.0, '')
    bad = []
    for name, ref in grads.items():
        g = params[name].grad
        g = torch.zeros_like(params[name]) if g is None else g
        diff = (g.double() - ref.double()).abs().max().item()
        scale = ref.abs().max().item()
        if diff > rel * scale + floor:
            bad.append(f'{name} ({diff:.3g} vs max {scale:.3g})')
        margin = diff / (rel * scale + floor)
        worst = max(worst, (margin, name))
    report.add(f'{prefix} gradients', not bad, f'{len(grads)} tensors within 1e-4*max|ref| + {floor:g}; worst {worst[1]} at {worst[0]:.2f} of the limit' + (f'; failing: {bad[:5]}' if bad else ''))


def compare_buffers(report, prefix, model, after, rel=1e-5):
    buffers = dict(model.named_buffers())
    bad = []
    for name, ref in after.items():
        b = buffers[name]
        if name.endswith('num_batches_tracked'):
            if not torch.equal(b, ref):
                bad.append(f'{name} {b.item()} vs {ref.item()}')
        elif (b.double() - ref.double()).abs().max().item() > rel * ref.abs().max().item():
            bad.append(name)
    report.add(f'{prefix} BatchNorm buffers after the pass', not bad, f'{len(after)} tensors within relative {rel:g}' + (f'; failing {bad[:5]}' if bad else ''))


# ------------------------------------------------------------------ classification

def check_classification(report, root):
    for name in ('tiny', 'xs'):
        fx = Fixture(root, name)
        variant = 'tiny' if name == 'tiny' else 'XS'
        x = fx.bin('input.bin')

        model = swiftformer(variant, num_classes=1000, distillation=True).eval()
        ckpt = torch.load(fx.path('checkpoint_model_only.pth'), map_location='cpu')
        model.load_state_dict(ckpt['model'], strict=True)
        with torch.no_grad():
            report.close(f'{name}: eval logits (checkpoint_model_only.pth)', model(x), fx.bin('logits.bin'))

        backbone = swiftformer(variant, fork_feat=True).eval()
        backbone.load_state_dict(fx.state('fork_feat_weights.safetensors'), strict=True)
        with torch.no_grad():
            outs = backbone(x)
        for i, out in enumerate(outs):
            report.close(f'{name}: fork_feat_out{i}', out, fx.bin(f'fork_feat_out{i}.bin'))

        # one training pass: train-mode logits, every gradient, BN buffers after
        model = swiftformer(variant, num_classes=10, distillation=False).train()
        model.load_state_dict(fx.state('train_weights.safetensors'), strict=True)
        logits = model(fx.bin('train_input.bin'))
        report.close(f'{name}: train-mode logits', logits, fx.bin('train_logits.bin'))
        loss = F.cross_entropy(logits, fx.bin('train_labels.bin', np.int64))
        report.close(f'{name}: train loss', loss, torch.tensor(fx.manifest['train_loss']), rel=1e-5)
        loss.backward()
        compare_grads(report, name, model, fx.state('grads.safetensors'))
        compare_buffers(report, name, model, fx.state('train_bn_after.safetensors'))

    # The softmax rule (Hugging Face weights): every token weight is 1, so w_g cannot matter.
    fx = Fixture(root, 'tiny')
    x = fx.bin('input.bin')
    soft = swiftformer('tiny', fork_feat=True, attention='softmax').eval()
    soft.load_state_dict(fx.state('fork_feat_weights.safetensors'), strict=True)
    with torch.no_grad():
        before = soft(x)
        for p in soft.state_dict():
            if p.endswith('w_g'):
                soft.state_dict()[p].mul_(-3.0).add_(0.5)
        after = soft(x)
    report.close('tiny: softmax rule ignores w_g', after[3], before[3], rel=1e-6)
    report.add('tiny: softmax rule differs from l2', not torch.allclose(before[3], fx.bin('fork_feat_out3.bin'), atol=1e-3), 'stage 4 output moves')


# ------------------------------------------------------------------ Semantic FPN

def check_semfpn(report, root):
    fx = Fixture(root, 'semfpn-tiny')
    cfg = fx.manifest['config']
    build = lambda: semfpn('tiny', cfg['num_classes'], cfg['fpn_channels'], cfg['head_channels'], dropout=0.0)  # noqa: E731
    state = fx.state('weights.safetensors')
    ckpt = torch.load(fx.path('checkpoint.pth'), map_location='cpu')
    same = list(ckpt['state_dict']) == list(state) and all(torch.equal(ckpt['state_dict'][k], v) for k, v in state.items())
    report.add('semfpn-tiny: checkpoint.pth state_dict == weights.safetensors', same, f"meta CLASSES {ckpt['meta'].get('CLASSES')}")

    model = build().eval()
    model.load_state_dict(state, strict=True)
    x = fx.bin('input.bin')
    with torch.no_grad():
        feats = model.features(x)
        quarter = model.decode_head(feats)
        full = model(x)
    for i, f in enumerate(feats):
        report.close(f'semfpn-tiny: neck features{i}', f, fx.bin(f'features{i}.bin'))
    report.close('semfpn-tiny: logits_quarter', quarter, fx.bin('logits_quarter.bin'))
    report.close('semfpn-tiny: logits (resized to 64x64)', full, fx.bin('logits.bin'))

    model = build().train()
    model.load_state_dict(state, strict=True)
    labels = fx.bin('train_labels.bin', np.int64)
    quarter = model.forward_quarter(fx.bin('train_input.bin'))
    report.close('semfpn-tiny: train-mode logits_quarter', quarter, fx.bin('train_logits_quarter.bin'))
    loss = seg_loss(quarter, labels)
    report.close('semfpn-tiny: loss (mean over all pixels)', loss, torch.tensor(fx.manifest['train_loss']), rel=1e-5)
    report.close('semfpn-tiny: loss (mean over non-ignored)', seg_loss(quarter, labels, avg_non_ignore=True),
                 torch.tensor(fx.manifest['train_loss_avg_non_ignore']), rel=1e-5)
    loss.backward()
    compare_grads(report, 'semfpn-tiny', model, fx.state('grads.safetensors'))
    compare_buffers(report, 'semfpn-tiny', model, fx.state('train_bn_after.safetensors'))

    fx = Fixture(root, 'semfpn-xs')
    model = semfpn('XS', fx.manifest['config']['num_classes']).eval()
    model.load_state_dict(fx.state('weights.safetensors'), strict=True)
    with torch.no_grad():
        quarter = model.forward_quarter(fx.bin('input.bin'))
        full = F.interpolate(quarter, size=(256, 256), mode='bilinear', align_corners=False)
    report.close('semfpn-xs: logits_quarter', quarter, fx.bin('logits_quarter.bin'))
    report.close('semfpn-xs: logits channels 0-7 at 256x256', full[:, :8], fx.bin('logits_first8.bin'))
    mask = full.argmax(1).to(torch.uint8)
    ref = fx.bin('mask.bin', np.uint8)
    agree = (mask == ref).float().mean().item()
    # an argmax may flip only where the two best logits are within float noise
    top2 = full.topk(2, dim=1).values
    close_call = (top2[:, 0] - top2[:, 1]) < 1e-4 * full.abs().max()
    report.add('semfpn-xs: argmax mask', bool(((mask == ref) | close_call).all()), f'{agree * 100:.4f}% of pixels equal; the rest are near-ties')


# ------------------------------------------------------------------ Mask R-CNN

def box_iou(a, b):
    from torchvision.ops import box_iou as iou
    return iou(a.double(), b.double())


def compare_detections(report, name, ours, ref, score_tol=1e-4, iou_min=0.99, box_rel=1e-4, mask_iou_min=0.99, threshold=0.05):
    """Detections as sets: each reference detection needs one of ours with its label, box IoU >= iou_min
    (then box corners within box_rel of the largest coordinate: IoU alone is fragile for boxes a fraction
    of a pixel thin), score within score_tol and mask IoU (at 0.5) >= mask_iou_min; unmatched ones on
    either side may only sit within score_tol of the score threshold."""
    iou = box_iou(ref['boxes'], ours['boxes'])
    used = set()
    unmatched_ref, worst = [], {'score': 0.0, 'box_iou': 1.0, 'mask_iou': 1.0, 'box': 0.0}
    for i in torch.argsort(ref['scores'], descending=True).tolist():
        cand = [j for j in range(len(ours['scores'])) if j not in used and ours['labels'][j] == ref['labels'][i]
                and iou[i, j] >= iou_min and abs(ours['scores'][j] - ref['scores'][i]) <= score_tol]
        if not cand:
            unmatched_ref.append(i)
            continue
        j = max(cand, key=lambda c: iou[i, c])
        used.add(j)
        a, b = ours['masks'][j, 0] > 0.5, ref['masks'][i, 0] > 0.5
        union = (a | b).sum().item()
        m_iou = (a & b).sum().item() / union if union else 1.0
        worst = {'score': max(worst['score'], abs(ours['scores'][j] - ref['scores'][i]).item()),
                 'box_iou': min(worst['box_iou'], iou[i, j].item()), 'mask_iou': min(worst['mask_iou'], m_iou),
                 'box': max(worst['box'], (ours['boxes'][j] - ref['boxes'][i]).abs().max().item())}
    unmatched_ours = [j for j in range(len(ours['scores'])) if j not in used]
    near = lambda s: abs(s - threshold) <= score_tol  # noqa: E731
    ok = all(near(ref['scores'][i].item()) for i in unmatched_ref) and all(near(ours['scores'][j].item()) for j in unmatched_ours) \
        and worst['mask_iou'] >= mask_iou_min and worst['box'] <= box_rel * ref['boxes'].abs().max().item()
    report.add(name, ok, f'{len(ref["scores"])} reference / {len(ours["scores"])} ours, {len(used)} matched; worst score diff {worst["score"]:.2g}, '
               f'box IoU {worst["box_iou"]:.6f}, box corner diff {worst["box"]:.2g} px, mask IoU {worst["mask_iou"]:.4f}; '
               f'unmatched {len(unmatched_ref)} / {len(unmatched_ours)}')


def compare_rows_as_sets(report, name, ours, ref, rel=1e-4):
    """Boxes whose order may differ where two scores tie within float noise (and which may repeat:
    a box clipped to the whole image can come from several levels): each reference row, in order,
    takes the nearest row of ours not yet taken; then the pairs are compared."""
    if ours.shape != ref.shape:
        report.add(name, False, f'shape {tuple(ours.shape)} vs reference {tuple(ref.shape)}')
        return
    dist = torch.cdist(ref.double(), ours.double(), p=float('inf'))
    pairing = []
    for i in range(len(ref)):
        j = int(dist[i].argmin())
        pairing.append(j)
        dist[:, j] = float('inf')
    pairing = torch.tensor(pairing, dtype=torch.long)
    diff = (ours[pairing].double() - ref.double()).abs().max().item()
    scale = ref.abs().max().item()
    moved = int((pairing != torch.arange(len(ref))).sum())
    report.add(name, diff <= rel * scale,
               f'{len(ref)} rows, {moved} in another position (tied scores or repeated boxes); max|diff| {diff:.3g}, relative {diff / scale:.3g} (limit {rel:g})')


def maskrcnn_config(fx):
    c = fx.manifest['config']
    return dict(num_classes=c['num_classes'], out_channels=c['out_channels'], representation=c['representation'],
                mask_layers=tuple(c['mask_layers']), min_size=c['min_size'], max_size=c['max_size'])


def fixture_images(fx):
    return [fx.bin(f'images{i}.bin') for i in range(2)]


def check_maskrcnn(report, root):
    fx = Fixture(root, 'maskrcnn-tiny')
    model = maskrcnn('tiny', **maskrcnn_config(fx)).eval()
    model.load_state_dict(fx.state('weights.safetensors'), strict=True)
    d = fx.manifest['defaults']
    rpn, roi = model.rpn, model.roi_heads
    settings = {'rpn_pre_nms_top_n_test': rpn._pre_nms_top_n['testing'], 'rpn_post_nms_top_n_test': rpn._post_nms_top_n['testing'],
                'rpn_nms_thresh': rpn.nms_thresh, 'box_score_thresh': roi.score_thresh, 'box_nms_thresh': roi.nms_thresh,
                'detections_per_img': roi.detections_per_img,
                'anchor_sizes': [list(s) for s in model.rpn.anchor_generator.sizes],
                'aspect_ratios': [list(a) for a in model.rpn.anchor_generator.aspect_ratios]}
    expected = {k: d[k] for k in settings}
    report.add('maskrcnn-tiny: configuration = manifest defaults', settings == expected, str({k: v for k, v in settings.items() if v != expected[k]} or 'all equal'))
    images = fixture_images(fx)
    with torch.no_grad():
        batch, _ = model.transform(images)
        report.add('maskrcnn-tiny: resized image sizes', [list(s) for s in batch.image_sizes] == fx.manifest['image_sizes_resized'], str(batch.image_sizes))
        report.close('maskrcnn-tiny: normalized, resized, padded batch', batch.tensors, fx.bin('batch.bin'))
        feats = model.backbone(batch.tensors)
        for k in ('0', '1', '2', '3', 'pool'):
            report.close(f'maskrcnn-tiny: fpn {k}', feats[k], fx.bin(f'fpn_{k}.bin'))
        proposals, _ = model.rpn(batch, feats)
        for i, p in enumerate(proposals):
            compare_rows_as_sets(report, f'maskrcnn-tiny: RPN proposals of image {i}', p, fx.bin(f'proposals{i}.bin'))
        ref_props = [fx.bin(f'proposals{i}.bin') for i in range(2)]
        pooled = model.roi_heads.box_roi_pool(feats, ref_props, batch.image_sizes)
        class_logits, box_regression = model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))
        report.close('maskrcnn-tiny: class_logits', class_logits, fx.bin('class_logits.bin'))
        report.close('maskrcnn-tiny: box_regression', box_regression, fx.bin('box_regression.bin'))
        dets = model(images)
    for i, det in enumerate(dets):
        ref = {'boxes': fx.bin(f'boxes{i}.bin'), 'scores': fx.bin(f'scores{i}.bin'), 'labels': fx.bin(f'labels{i}.bin', np.int64),
               'masks': fx.bin(f'masks{i}.bin')}
        compare_detections(report, f'maskrcnn-tiny: detections of image {i}', det, ref)

    # Training pass with the recorded samples. The fixture's weights.safetensors holds the BatchNorm
    # buffers as they were AFTER the pass (equal to bn_after.safetensors; every parameter equals
    # maskrcnn-tiny's), so the buffers before the pass are taken from maskrcnn-tiny.
    before = fx.state('weights.safetensors')
    fx = Fixture(root, 'maskrcnn-tiny-train')
    state = fx.state('weights.safetensors')
    params_equal = all(torch.equal(state[k], before[k]) for k in state if not k.endswith(BN_BUFFERS))
    report.add('maskrcnn-tiny-train: parameters = maskrcnn-tiny\'s (BN buffers taken from there)', params_equal, f'{len(state)} tensors')
    state.update({k: before[k] for k in state if k.endswith(BN_BUFFERS)})
    model = maskrcnn('tiny', **maskrcnn_config(fx)).train()
    model.load_state_dict(state, strict=True)
    u8 = lambda f: fx.bin(f, np.uint8).bool()  # noqa: E731
    model.rpn.fg_bg_sampler = RecordedSampler('rpn', [u8(f'rpn_pos{i}.bin') for i in range(2)], [u8(f'rpn_neg{i}.bin') for i in range(2)])
    model.roi_heads.fg_bg_sampler = RecordedSampler('roi', [u8(f'roi_pos{i}.bin') for i in range(2)], [u8(f'roi_neg{i}.bin') for i in range(2)])
    # The recorded RoI samples index the recorded proposals; ours may order near-tied scores
    # differently (float noise), so after comparing them as sets the RoI heads get the recorded ones.
    # No gradient flows through proposals (torchvision decodes them from detached deltas).
    seen = {}
    recorded = [fx.bin(f'roi_proposals{i}.bin') for i in range(2)]

    def use_recorded(mod, inputs, output):
        seen['proposals'] = [p.detach().clone() for p in output[0]]
        return recorded, output[1]

    hook = model.rpn.register_forward_hook(use_recorded)
    targets = [{'boxes': fx.bin(f'gt_boxes{i}.bin'), 'labels': fx.bin(f'gt_labels{i}.bin', np.int64),
                'masks': fx.bin(f'gt_masks{i}.bin', np.uint8)} for i in range(2)]
    losses = model(fixture_images(fx), targets)
    hook.remove()
    for i, p in enumerate(seen['proposals']):
        compare_rows_as_sets(report, f'maskrcnn-tiny-train: RPN proposals (train mode), image {i}', p, recorded[i])
    report.add('maskrcnn-tiny-train: recorded samples used', model.rpn.fg_bg_sampler.calls == 1 and model.roi_heads.fg_bg_sampler.calls == 1,
               f'rpn {model.rpn.fg_bg_sampler.calls} call, roi {model.roi_heads.fg_bg_sampler.calls} call')
    for k, ref in fx.manifest['losses'].items():
        report.close(f'maskrcnn-tiny-train: {k}', losses[k], torch.tensor(ref), rel=1e-4)
    total = sum(losses.values())
    report.close('maskrcnn-tiny-train: total loss', total, torch.tensor(fx.manifest['total_loss']), rel=1e-5)
    total.backward()
    compare_grads(report, 'maskrcnn-tiny-train', model, fx.state('grads.safetensors'))
    compare_buffers(report, 'maskrcnn-tiny-train', model, fx.state('bn_after.safetensors'))


def check_segdata(report, root):
    """No fixture: hand-worked mIoU cases and the pipeline's image/label alignment."""
    m = SegMetric(3)
    # labels 0 0 1 1 | 255 255 ; predictions 0 1 1 7 | 2 2  (7 is outside the classes, 255 is ignored)
    m.add(np.array([0, 1, 1, 7, 2, 2]), np.array([0, 0, 1, 1, 255, 255]))
    r = m.result()
    # class 0: I 1, P 1, L 2 -> IoU 1/2, Acc 1/2; class 1: I 1, P 2, L 2 -> IoU 1/3, Acc 1/2; class 2: absent -> nan
    ok = np.allclose(r['IoU'][:2], [0.5, 1 / 3]) and r['IoU'][2] is None and np.isclose(r['mIoU'], (0.5 + 1 / 3) / 2) \
        and np.isclose(r['aAcc'], 2 / 4) and np.isclose(r['mAcc'], 0.5)
    report.add('segmetrics: hand-worked case (ignore, out-of-range prediction, absent class)', ok, str(r))
    m = SegMetric(2, reduce_zero_label=True)
    # labels -> 255, 0, 1, 255: class 0 I 0 P 0 L 1 (IoU 0), class 1 I 1 P 2 L 1 (IoU 1/2)
    m.add(np.array([0, 1, 1, 0]), np.array([0, 1, 2, 255]))
    r = m.result()
    report.add('segmetrics: reduce_zero_label (label only)', r['IoU'] == [0.0, 0.5] and np.isclose(r['aAcc'], 0.5), str(r))

    rng = np.random.RandomState(1)
    img = rng.randint(0, 256, (40, 50, 3)).astype(np.uint8)
    hsv = segdata.rgb_to_hsv8(img)
    back = segdata.hsv8_to_rgb(hsv)
    report.add('segdata: 8-bit HSV round trip', int(np.abs(back.astype(int) - img).max()) <= 5 and hsv[..., 0].max() < 180,
               f'max error {np.abs(back.astype(int) - img).max()} (OpenCV quantizes H to 180 steps)')

    # Label k painted as color 10k: after crop, flip and pad the image must still encode the label.
    lbl = (np.arange(40 * 50).reshape(40, 50) * 7 % 11).astype(np.uint8)
    img = np.repeat((lbl * 10)[..., None], 3, axis=2).astype(np.uint8)
    pipe = segdata.TrainPipeline((50, 40), (48, 64), (0, 0, 0), (1, 1, 1), ratio_range=(1.0, 1.0), photometric=False)
    ok = True
    for _ in range(8):
        x, y = pipe(img, lbl, rng)
        inside = y != 255
        ok &= x.shape == (3, 48, 64) and y.shape == (48, 64) and bool((x[0][inside] == y[inside].float() * 10).all()) \
            and bool((y[40:] == 255).all()) and bool((y[:, 50:] == 255).all()) and bool((x[:, 40:] == 0).all())
    report.add('segdata: crop/flip/pad keep image and label aligned, pad 0 / 255', ok, '8 draws of a 40x50 scene into 48x64')


def check_coco(report, root):
    """No fixture: pycocotools' published encodings (25x25 masks with a 5x5 square at (0, 0) and at
    (5, 5) encode to '05d00000000d?' and 'R45d00000000b;') and round trips."""
    for at, expected in ((0, '05d00000000d?'), (5, 'R45d00000000b;')):
        mask = np.zeros((25, 25), np.uint8)
        mask[at:at + 5, at:at + 5] = 1
        got = coco.encode_mask(mask)
        back = coco.rle_decode({'size': [25, 25], 'counts': expected})
        report.add(f'coco: 5x5 square at ({at}, {at}) in 25x25 -> {expected}', got['counts'] == expected and np.array_equal(back, mask), got['counts'])
    rng = np.random.RandomState(0)
    ok = True
    for h, w in ((1, 1), (7, 3), (64, 48), (200, 300)):
        m = (rng.rand(h, w) < rng.rand()).astype(np.uint8)
        counts = coco.rle_counts(m)
        ok &= coco.rle_from_string(coco.rle_to_string(counts)) == counts
        ok &= np.array_equal(coco.rle_decode({'size': [h, w], 'counts': counts}), m)
        ok &= np.array_equal(coco.rle_decode(coco.encode_mask(m)), m)
    report.add('coco: RLE round trips (counts, string, mask)', bool(ok), '4 random masks 1x1 .. 200x300')


CHECKS = {'classification': check_classification, 'semfpn': check_semfpn, 'segdata': check_segdata, 'maskrcnn': check_maskrcnn, 'coco': check_coco}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--fixtures', default=os.path.normpath(DEFAULT_FIXTURES))
    ap.add_argument('--only', default=None, help=f'comma-separated subset of {",".join(CHECKS)}')
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    env.setup(args.threads)
    torch.manual_seed(0)
    names = args.only.split(',') if args.only else list(CHECKS)
    for n in names:
        if n not in CHECKS:
            raise SystemExit(f'check_fixtures: unknown check {n!r} (have {", ".join(CHECKS)})')
    report = Report()
    for n in names:
        CHECKS[n](report, args.fixtures)
    failed = report.failed()
    print(f'{len(report.rows) - len(failed)} of {len(report.rows)} checks passed')
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
