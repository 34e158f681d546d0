#!/usr/bin/env python3
"""Generates PyTorch reference data for test/attention.test.ts.

Independent PyTorch implementations, written from the papers' equations, of
  * multi-head self-attention (ViT / timm layout: qkv Linear(D, 3D), proj Linear(D, D));
  * Fastformer's additive attention (Wu et al. 2021; per-head vectors w_q, w_k of size d, and the
    paper's query-value parameter sharing, as the FViT paper's parameter counts imply);
  * a tiny ViT / FViT (pre-LN blocks, class token, position embeddings, GELU MLP, final LayerNorm).

Outputs (test/data/attention/, every tensor float32 in safetensors files written by hand, so only
torch is needed; Debian's python3-torch works):
  module_<name>.safetensors  weights (keys under "attn."), "input" (N,C,H,W), "output" (N,C,H,W)
  vit_<attention>.safetensors weights by timm key, "input" (2,3,32,32), "labels" (2,), "logits",
                             "loss" (), and "grad:<key>" for every parameter (mean cross-entropy)
  index.json                 the configurations

Usage:  /usr/bin/python3 scripts/make-attention-refs.py [output_dir]
"""

import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # (B, T, D)
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # (B, h, T, dh) each
        scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(d // h)
        out = torch.einsum("bhij,bhjd->bhid", scores.softmax(dim=-1), v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class FastformerAttention(nn.Module):
    def __init__(self, dim, heads, share_query_value=True):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = None if share_query_value else nn.Linear(dim, dim)
        self.w_q = nn.Parameter(torch.randn(heads, dim // heads))
        self.w_k = nn.Parameter(torch.randn(heads, dim // heads))
        self.transform = nn.Linear(dim, dim)

    def forward(self, x):  # (B, T, D)
        b, t, d = x.shape
        h, dh = self.heads, d // self.heads
        split = lambda m: m.reshape(b, t, h, dh)  # noqa: E731
        q_all = self.query(x)
        q, k = split(q_all), split(self.key(x))
        v = q if self.value is None else split(self.value(x))
        alpha = (torch.einsum("bthd,hd->bth", q, self.w_q) / math.sqrt(dh)).softmax(dim=1)  # over tokens
        global_q = torch.einsum("bth,bthd->bhd", alpha, q)
        p = global_q[:, None] * k
        beta = (torch.einsum("bthd,hd->bth", p, self.w_k) / math.sqrt(dh)).softmax(dim=1)
        global_k = torch.einsum("bth,bthd->bhd", beta, p)
        u = (global_k[:, None] * v).reshape(b, t, d)
        return self.transform(u) + q_all


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, attention):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiHeadSelfAttention(dim, heads) if attention == "mhsa" else FastformerAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, T, D)


class VisionTransformer(nn.Module):
    def __init__(self, image, patch, dim, depth, heads, mlp_ratio, classes, attention):
        super().__init__()
        tokens = (image // patch) ** 2
        self.patch_embed = PatchEmbed(patch, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.5)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, attention) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def randomize(module, std):
    """Weights far enough from 0 that every softmax is visibly non-uniform."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(std * torch.randn_like(p))


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "data", "attention")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    index = {"modules": {}, "vit": {}}

    # Attention modules alone, on (N, C, H, W) maps read as H*W tokens (row-major), C = 8, 2 heads.
    modules = {
        "mhsa": MultiHeadSelfAttention(8, 2),
        "fastformer": FastformerAttention(8, 2),
        "fastformer_value": FastformerAttention(8, 2, share_query_value=False),
    }
    for name, module in modules.items():
        randomize(module, 0.4)
        x = torch.randn(2, 8, 3, 4)
        tokens = x.flatten(2).transpose(1, 2)
        y = module(tokens).transpose(1, 2).reshape(x.shape)
        tensors = {f"attn.{k}": v for k, v in module.state_dict().items()}
        tensors.update(input=x, output=y)
        write_safetensors(os.path.join(out, f"module_{name}.safetensors"), tensors)
        index["modules"][name] = {"channels": 8, "heads": 2, "input": list(x.shape)}

    # Tiny ViT / FViT: eval logits and one training step's loss and gradients.
    config = dict(image=32, patch=8, dim=16, depth=2, heads=2, mlp_ratio=2, classes=10)
    for attention in ["mhsa", "fastformer"]:
        model = VisionTransformer(**config, attention=attention)
        randomize(model, 0.3)
        x = torch.randn(2, 3, 32, 32)
        labels = torch.tensor([3, 7])
        logits = model(x)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        tensors = dict(model.state_dict())
        tensors.update(input=x, labels=labels.float(), logits=logits, loss=loss.reshape(()))
        tensors.update({f"grad:{k}": p.grad for k, p in model.named_parameters()})
        write_safetensors(os.path.join(out, f"vit_{attention}.safetensors"), tensors)
        index["vit"][attention] = {**config, "params": sum(p.numel() for p in model.parameters())}

    index["torch"] = torch.__version__
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
