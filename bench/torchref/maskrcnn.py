"""torchvision 0.14's MaskRCNN with the SwiftFormer fork_feat backbone: torchvision's own modules (the
reference), composed as the fixtures record, with torchvision's key names:

    backbone.body.<official fork_feat keys>      SwiftFormer, levels '0'..'3' (strides 4..32)
    backbone.fpn.inner_blocks.<i>.0.*, layer_blocks.<i>.0.*   FeaturePyramidNetwork + LastLevelMaxPool ('pool')
    rpn.head.conv.0.0.*, rpn.head.cls_logits.*, rpn.head.bbox_pred.*
    roi_heads.box_head.fc6.*, fc7.*              TwoMLPHead
    roi_heads.box_predictor.cls_score.*, bbox_pred.*
    roi_heads.mask_head.<k>.0.*                  MaskRCNNHeads (3x3 convs + ReLU)
    roi_heads.mask_predictor.conv5_mask.*, mask_fcn_logits.*

Everything else is torchvision's default (transform, anchors 32..512 x ratios 0.5/1/2, RPN and RoI
thresholds, MultiScaleRoIAlign 7x7 / 14x14 with sampling ratio 2, box coder weights 10, 10, 5, 5).
"""
from collections import OrderedDict

import torch.nn as nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .swiftformer import SwiftFormer, config_from_state, swiftformer


class SwiftFormerFPN(nn.Module):
    """backbone.body (SwiftFormer fork_feat) + backbone.fpn, as torchvision's BackboneWithFPN lays them out."""

    def __init__(self, body, out_channels):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.out_channels, out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x):
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.body(x))))


def maskrcnn_on(body, num_classes, out_channels=256, representation=1024, mask_layers=(256, 256, 256, 256), **kwargs):
    """MaskRCNN around a fork_feat SwiftFormer; kwargs go to torchvision's MaskRCNN (min_size, max_size, ...)."""
    backbone = SwiftFormerFPN(body, out_channels)
    resolution = 7  # torchvision's default box RoIAlign output
    # num_classes is given through the predictors (torchvision wants None when they are passed)
    return MaskRCNN(
        backbone, None,
        box_head=TwoMLPHead(out_channels * resolution ** 2, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes),
        mask_head=MaskRCNNHeads(out_channels, list(mask_layers), 1),
        mask_predictor=MaskRCNNPredictor(mask_layers[-1], mask_layers[-1], num_classes),
        **kwargs)


def maskrcnn(variant='XS', num_classes=91, attention='l2', **kwargs):
    return maskrcnn_on(swiftformer(variant, fork_feat=True, attention=attention), num_classes, **kwargs)


def config_from_torchvision_state(state):
    """Head sizes, class count and backbone config read off torchvision-layout weights."""
    mask_layers = []
    k = 0
    while f'roi_heads.mask_head.{k}.0.weight' in state:
        mask_layers.append(int(state[f'roi_heads.mask_head.{k}.0.weight'].shape[0]))
        k += 1
    return {
        'backbone': config_from_state(state, 'backbone.body.'),
        'num_classes': int(state['roi_heads.box_predictor.cls_score.weight'].shape[0]),
        'out_channels': int(state['backbone.fpn.inner_blocks.0.0.weight'].shape[0]),
        'representation': int(state['roi_heads.box_head.fc6.weight'].shape[0]),
        'mask_layers': tuple(mask_layers),
    }


def maskrcnn_from_state(state, attention='l2', **kwargs):
    """A MaskRCNN shaped as torchvision-layout weights say, loaded with strict=True."""
    cfg = config_from_torchvision_state(state)
    b = cfg['backbone']
    body = SwiftFormer(b['embed_dims'], b['depths'], fork_feat=True, attention=attention, mlp_ratio=b['mlp_ratio'], downsamples=b['downsamples'])
    model = maskrcnn_on(body, cfg['num_classes'], cfg['out_channels'], cfg['representation'], cfg['mask_layers'], **kwargs)
    model.load_state_dict(state, strict=True)
    return model, cfg


class RecordedSampler:
    """Stands in for BalancedPositiveNegativeSampler: returns recorded per-image (positive, negative)
    uint8 masks instead of drawing with torch.randperm."""

    def __init__(self, name, pos, neg):
        self.name, self.pos, self.neg = name, pos, neg
        self.calls = 0

    def __call__(self, matched_idxs):
        if [len(m) for m in matched_idxs] != [len(p) for p in self.pos]:
            raise ValueError(f'{self.name}: sampling over {[len(m) for m in matched_idxs]} candidates, recorded {[len(p) for p in self.pos]}')
        self.calls += 1
        return list(self.pos), list(self.neg)


def register_roi_align_opset16():
    """torchvision 0.14 registers its roi_align ONNX symbolic for opset 11 only: exported at opset >= 16
    the RoiAlign node gets that opset's default coordinate_transformation_mode, 'half_pixel' (torchvision's
    aligned=True), so MultiScaleRoIAlign (aligned=False) would be shifted by half a pixel. This symbolic
    states the mode: 'output_half_pixel' for aligned=False, 'half_pixel' for aligned=True."""
    import torch
    from torch.onnx import register_custom_op_symbolic
    from torch.onnx.symbolic_helper import parse_args

    @parse_args('v', 'v', 'f', 'i', 'i', 'i', 'i')
    def roi_align(g, features, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
        batch = g.op('Cast', g.op('Gather', rois, g.op('Constant', value_t=torch.tensor(0)), axis_i=1), to_i=7)  # INT64
        boxes = g.op('Gather', rois, g.op('Constant', value_t=torch.tensor([1, 2, 3, 4])), axis_i=1)
        return g.op('RoiAlign', features, boxes, batch, spatial_scale_f=spatial_scale, output_height_i=pooled_height,
                    output_width_i=pooled_width, sampling_ratio_i=max(sampling_ratio, 0),
                    coordinate_transformation_mode_s='half_pixel' if aligned else 'output_half_pixel')

    register_custom_op_symbolic('torchvision::roi_align', roi_align, 16)
