"""PyTorch references for the TypeScript models, written from the published semantics (not copied):

- swiftformer: SwiftFormer with the official state_dict key names (classifier and fork_feat backbone,
  the L2 (official) and softmax (Hugging Face) attention rules),
- semfpn: mmsegmentation 0.x's Semantic FPN (FPN neck + FPNHead) with mmseg's key names,
- maskrcnn: torchvision's MaskRCNN on the fork_feat backbone with torchvision's key names,
- tensorio: safetensors read/write with numpy + json, fixture .bin files, atomic writes,
- scenes: the scene dataset of scripts/make-scenes.ts (label maps, COCO JSON, RLE),
- env: thread count, BLAS and CPU facts recorded with every measurement.

Run everything with Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision 0.14).
"""
