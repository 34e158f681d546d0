"""Semantic FPN as mmsegmentation 0.x composes it (EncoderDecoder with a SwiftFormer fork_feat
backbone, the FPN neck and FPNHead), written from mmseg's documented behaviour, with mmseg's
state_dict names:

    backbone.<official fork_feat keys>
    neck.lateral_convs.<i>.conv.{weight,bias}      1x1 conv with bias on backbone level i
    neck.fpn_convs.<i>.conv.{weight,bias}          3x3 conv (padding 1, bias) on each merged level
    decode_head.scale_heads.<i>.<j>.conv.weight    3x3 conv without bias ...
    decode_head.scale_heads.<i>.<j>.bn.*           ... + BatchNorm + ReLU (j counts the upsamples too)
    decode_head.conv_seg.{weight,bias}             1x1 classifier after Dropout2d

Neck (no norm, no activation): top-down, lat[i-1] += nearest-resize(lat[i], size of lat[i-1]).
Head: level i (stride 4 * 2^i) has max(1, i) conv blocks, each followed, for i > 0, by a 2x bilinear
upsample (align_corners False); the levels are summed at 1/4 (each resized bilinearly to level 0's
size), then Dropout2d and conv_seg. Inference resizes the 1/4 logits bilinearly to the input size.
Loss (CrossEntropyLoss, ignore 255): logits resized bilinearly to the label size, per-pixel cross
entropy; mmseg's default (avg_non_ignore=False) divides the sum by ALL pixels, ignored ones included.
"""
import math

import torch.nn as nn
import torch.nn.functional as F

from .swiftformer import swiftformer

IGNORE_INDEX = 255
# mmseg's img_norm_cfg for ImageNet-pretrained backbones (RGB, 0..255)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class ConvModule(nn.Module):
    """mmcv's ConvModule order: conv, then (optional) BN, then (optional) ReLU; bias only without a norm."""

    def __init__(self, in_ch, out_ch, kernel, norm=False, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=not norm)
        if norm:
            self.bn = nn.BatchNorm2d(out_ch)
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        if hasattr(self, 'bn'):
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class Upsample2x(nn.Module):
    """mmseg's Upsample(scale_factor=2, mode='bilinear'): resize to twice the size, no parameters."""

    def forward(self, x):
        return F.interpolate(x, size=(x.shape[2] * 2, x.shape[3] * 2), mode='bilinear', align_corners=False)


class FPN(nn.Module):
    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvModule(out_channels, out_channels, 3) for _ in in_channels)

    def forward(self, feats):
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode='nearest')
        return [conv(x) for conv, x in zip(self.fpn_convs, lat)]


class FPNHead(nn.Module):
    def __init__(self, in_channels, channels, num_classes, feature_strides=(4, 8, 16, 32), dropout=0.1):
        super().__init__()
        heads = []
        for i, stride in enumerate(feature_strides):
            blocks = max(1, int(math.log2(stride) - math.log2(feature_strides[0])))
            layers = []
            for k in range(blocks):
                layers.append(ConvModule(in_channels[i] if k == 0 else channels, channels, 3, norm=True, relu=True))
                if stride != feature_strides[0]:
                    layers.append(Upsample2x())
            heads.append(nn.Sequential(*layers))
        self.scale_heads = nn.ModuleList(heads)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else None
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats):
        out = self.scale_heads[0](feats[0])
        for head, f in zip(self.scale_heads[1:], feats[1:]):
            out = out + F.interpolate(head(f), size=out.shape[2:], mode='bilinear', align_corners=False)
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv_seg(out)


class SemanticFPN(nn.Module):
    def __init__(self, backbone, num_classes, fpn_channels=256, head_channels=128, dropout=0.1):
        super().__init__()
        self.backbone = backbone
        self.neck = FPN(backbone.out_channels, fpn_channels)
        self.decode_head = FPNHead([fpn_channels] * 4, head_channels, num_classes, dropout=dropout)
        self.num_classes = num_classes

    def features(self, x):
        return self.neck(self.backbone(x))

    def forward_quarter(self, x):
        """The decode head's logits at 1/4 of the input."""
        return self.decode_head(self.features(x))

    def forward(self, x):
        """Logits at the input resolution (mmseg's encode_decode)."""
        return F.interpolate(self.forward_quarter(x), size=x.shape[2:], mode='bilinear', align_corners=False)


def semfpn(variant='XS', num_classes=150, fpn_channels=256, head_channels=128, dropout=0.1, attention='l2'):
    return SemanticFPN(swiftformer(variant, fork_feat=True, attention=attention), num_classes, fpn_channels, head_channels, dropout)


def seg_loss(quarter_logits, labels, avg_non_ignore=False):
    """mmseg's decode-head loss: resize to the label size, per-pixel CE with ignore 255, mean over
    all pixels (avg_non_ignore=False) or over the non-ignored ones."""
    logits = F.interpolate(quarter_logits, size=labels.shape[-2:], mode='bilinear', align_corners=False)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction='none')
    if avg_non_ignore:
        return per_pixel.sum() / (labels != IGNORE_INDEX).sum().clamp(min=1)
    return per_pixel.mean()


def init_weights(model):
    """mmseg's initialization of the parts after the backbone: the FPN neck's convs Xavier-uniform with
    zero bias (FPN's init_cfg), the head's ConvModules Kaiming-normal (fan_out, ReLU) with BN
    weight 1 / bias 0 (ConvModule.init_weights), conv_seg Normal(0, 0.01) with zero bias."""
    for m in model.neck.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.decode_head.scale_heads.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.normal_(model.decode_head.conv_seg.weight, std=0.01)
    nn.init.zeros_(model.decode_head.conv_seg.bias)
    return model


# ------------------------------------------------------------------ weights in mmseg's layout

def semfpn_from_state(state, dropout=0.1, attention='l2'):
    """A SemanticFPN shaped as mmseg-layout weights say (backbone config, FPN and head widths,
    class count), with the weights loaded strictly."""
    from .swiftformer import SwiftFormer, config_from_state
    cfg = config_from_state(state, 'backbone.')
    backbone = SwiftFormer(cfg['embed_dims'], cfg['depths'], fork_feat=True, attention=attention,
                           mlp_ratio=cfg['mlp_ratio'], downsamples=cfg['downsamples'])
    seg = state['decode_head.conv_seg.weight']
    model = SemanticFPN(backbone, seg.shape[0], state['neck.lateral_convs.0.conv.weight'].shape[0], seg.shape[1], dropout)
    model.load_state_dict(state, strict=True)
    return model, cfg


def mmseg_checkpoint(model, classes, palette, config_text, optimizer=None, epoch=None, iteration=None):
    """The dict mmcv 1.x's save_checkpoint writes for an mmseg 0.x run: meta (CLASSES, PALETTE,
    mmcv/mmseg versions of the layout, time, config) and state_dict, plus optimizer when given."""
    import time
    from collections import OrderedDict
    meta = {
        'mmseg_version': '0.30.0', 'mmcv_version': '1.7.1',  # the versions whose layout this follows
        'config': config_text, 'CLASSES': tuple(classes), 'PALETTE': [list(map(int, c)) for c in palette],
        'time': time.asctime(), 'writer': 'bench/semfpn-torch.py (PyTorch reference, not mmseg itself)',
    }
    if epoch is not None:
        meta['epoch'] = epoch
    if iteration is not None:
        meta['iter'] = iteration
    ckpt = {'meta': meta, 'state_dict': OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items())}
    if optimizer is not None:
        ckpt['optimizer'] = optimizer.state_dict()
    return ckpt
