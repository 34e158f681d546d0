"""SwiftFormer (Shaker et al., ICCV 2023) in PyTorch, written from the paper and the published
module structure, with the official state_dict key names so that official checkpoints load with
load_state_dict(strict=True):

    patch_embed.{0,1,3,4}                       stem: 3x3/2 conv + BN + ReLU, twice (C/2, then C)
    network.<2i>.<j>.{dwconv,norm,pwconv1,pwconv2,layer_scale}      ConvEncoder blocks of stage i
    network.<2i>.<last>.local_representation.{dwconv,norm,pwconv1,pwconv2,layer_scale}
    network.<2i>.<last>.attn.{to_query,to_key,w_g,Proj,final}       efficient additive attention
    network.<2i>.<last>.linear.{norm1,fc1,fc2}, .layer_scale_1, .layer_scale_2
    network.<2i+1>.{proj,norm}                  3x3/2 conv + BN between stages
    norm, head, dist_head                       classifier (BN, global mean, two linear heads)
    norm0, norm2, norm4, norm6                  fork_feat: a BN on each stage output, no classifier

Attention for tokens x (B, N, D): q, k = L2-normalized to_query(x), to_key(x) over D;
s = (q @ w_g) / sqrt(D); a = rule(s); G = sum_n a_n q_n; out = final(Proj(G * k) + q).
rule 'l2' (official code since July 2023): a = s / max(||s||_2 over the N tokens, 1e-12).
rule 'softmax' (Hugging Face transformers and the March 2023 release): softmax over the size-1
last axis, i.e. every a_n = 1 (w_g has no effect).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# Variants as data: widths and depths per stage.
VARIANTS = {
    'XS': {'embed_dims': (48, 56, 112, 220), 'depths': (3, 3, 6, 4)},
    'S': {'embed_dims': (48, 64, 168, 224), 'depths': (3, 3, 9, 6)},
    'L1': {'embed_dims': (48, 96, 192, 384), 'depths': (4, 3, 10, 5)},
    'L3': {'embed_dims': (64, 128, 320, 512), 'depths': (4, 4, 12, 6)},
    # the fixtures' small custom configuration
    'tiny': {'embed_dims': (16, 24, 32, 48), 'depths': (1, 1, 2, 1)},
}
ATTENTION_RULES = ('l2', 'softmax')


# ------------------------------------------------------------------ modules

def conv_bn_relu_stem(out_dim):
    half = out_dim // 2
    return nn.Sequential(
        nn.Conv2d(3, half, 3, stride=2, padding=1), nn.BatchNorm2d(half), nn.ReLU(),
        nn.Conv2d(half, out_dim, 3, stride=2, padding=1), nn.BatchNorm2d(out_dim), nn.ReLU(),
    )


class Downsample(nn.Module):
    """Between stages: 3x3 stride-2 conv, then BN (official name: Embedding)."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_dim)

    def forward(self, x):
        return self.norm(self.proj(x))


class ConvEncoder(nn.Module):
    """x + layer_scale * pw2(GELU(pw1(BN(dw3x3(x))))). With hidden == dim it is the attention block's
    local representation."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = nn.BatchNorm2d(dim)
        self.pwconv1 = nn.Conv2d(dim, hidden, 1)
        self.pwconv2 = nn.Conv2d(hidden, dim, 1)
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1))

    def forward(self, x):
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.layer_scale * y


class ConvMlp(nn.Module):
    """BN, 1x1 conv to hidden, GELU, 1x1 conv back (no residual: the block adds it)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm1(x))))


class AdditiveAttention(nn.Module):
    """Efficient additive attention on tokens (B, N, D); see the module docstring for the two rules."""

    def __init__(self, dim, rule='l2'):
        super().__init__()
        if rule not in ATTENTION_RULES:
            raise ValueError(f'attention rule must be one of {ATTENTION_RULES}, got {rule!r}')
        self.rule = rule
        self.to_query = nn.Linear(dim, dim)
        self.to_key = nn.Linear(dim, dim)
        self.w_g = nn.Parameter(torch.randn(dim, 1))
        self.scale = dim ** -0.5
        self.Proj = nn.Linear(dim, dim)
        self.final = nn.Linear(dim, dim)

    def forward(self, x):
        q = F.normalize(self.to_query(x), dim=-1)
        k = F.normalize(self.to_key(x), dim=-1)
        s = (q @ self.w_g) * self.scale  # (B, N, 1)
        a = F.normalize(s, dim=1) if self.rule == 'l2' else s.softmax(dim=-1)
        g = (a * q).sum(dim=1, keepdim=True)  # (B, 1, D), broadcast over the tokens
        return self.final(self.Proj(g * k) + q)


class SwiftFormerBlock(nn.Module):
    """Local representation, then x + ls1 * attention(tokens), then x + ls2 * MLP(x)."""

    def __init__(self, dim, mlp_ratio=4, rule='l2'):
        super().__init__()
        self.local_representation = ConvEncoder(dim, dim)
        self.attn = AdditiveAttention(dim, rule)
        self.linear = ConvMlp(dim, int(dim * mlp_ratio))
        self.layer_scale_1 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, 1, 1), 1e-5))

    def forward(self, x):
        x = self.local_representation(x)
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C), row-major over (h, w)
        attended = self.attn(tokens).transpose(1, 2).reshape(b, c, h, w)
        x = x + self.layer_scale_1 * attended
        return x + self.layer_scale_2 * self.linear(x)


def make_stage(dim, depth, mlp_ratio, rule, attention_blocks=1):
    """depth - attention_blocks ConvEncoders, then the SwiftFormer blocks."""
    blocks = [ConvEncoder(dim, int(dim * mlp_ratio)) for _ in range(depth - attention_blocks)]
    blocks += [SwiftFormerBlock(dim, mlp_ratio, rule) for _ in range(attention_blocks)]
    return nn.Sequential(*blocks)


# ------------------------------------------------------------------ model

class SwiftFormer(nn.Module):
    """Classifier (fork_feat=False) or dense-prediction backbone (fork_feat=True: returns the four
    stage maps, strides 4..32, each through its own BatchNorm)."""

    def __init__(self, embed_dims, depths, num_classes=1000, distillation=True, fork_feat=False,
                 attention='l2', mlp_ratio=4, downsamples=(True, True, True, True), vit_num=1):
        super().__init__()
        self.embed_dims = tuple(embed_dims)
        self.fork_feat = fork_feat
        self.attention = attention
        self.patch_embed = conv_bn_relu_stem(embed_dims[0])
        network = []
        self.stage_indices = []
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            self.stage_indices.append(len(network))
            network.append(make_stage(dim, depth, mlp_ratio, attention, vit_num))
            last = i == len(depths) - 1
            if not last and (downsamples[i] or dim != embed_dims[i + 1]):
                network.append(Downsample(dim, embed_dims[i + 1]))
        self.network = nn.ModuleList(network)
        if fork_feat:
            for idx, dim in zip(self.stage_indices, embed_dims):
                self.add_module(f'norm{idx}', nn.BatchNorm2d(dim))
        else:
            self.distillation = distillation
            self.norm = nn.BatchNorm2d(embed_dims[-1])
            self.head = nn.Linear(embed_dims[-1], num_classes)
            if distillation:
                self.dist_head = nn.Linear(embed_dims[-1], num_classes)

    @property
    def out_channels(self):
        return list(self.embed_dims)

    def forward_features(self, x):
        x = self.patch_embed(x)
        outs = []
        for idx, block in enumerate(self.network):
            x = block(x)
            if self.fork_feat and idx in self.stage_indices:
                outs.append(getattr(self, f'norm{idx}')(x))
        return outs if self.fork_feat else x

    def forward(self, x):
        x = self.forward_features(x)
        if self.fork_feat:
            return x
        pooled = self.norm(x).flatten(2).mean(-1)
        if not self.distillation:
            return self.head(pooled)
        logits = self.head(pooled), self.dist_head(pooled)
        # training: both heads (the distillation loss needs them); eval: their mean
        return logits if self.training else (logits[0] + logits[1]) / 2


def swiftformer(variant='XS', **kwargs):
    """A variant by name ('XS', 'S', 'L1', 'L3', 'tiny') or a dict with embed_dims and depths."""
    cfg = VARIANTS[variant] if isinstance(variant, str) else variant
    return SwiftFormer(cfg['embed_dims'], cfg['depths'], **kwargs)


# ------------------------------------------------------------------ initialization and checkpoints

def init_weights(model):
    """Fresh weights as the project's TypeScript trainer makes them (src/models/swiftformer.ts
    initialWeights): Linear trunc_normal(0.02) with zero bias, convs PyTorch's default, BatchNorm
    identity, ConvEncoder layer scales 1, attention-block layer scales 1e-5, w_g standard normal
    (the last four are the constructors' values)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    return model


def config_from_state(state, prefix=''):
    """embed_dims, depths, downsamples and mlp_ratio read off official-layout weights under `prefix`
    (network.<i>.<j>.* are stage blocks, network.<i>.proj.* downsamples)."""
    stages = {}  # network index -> set of block indices
    downsample_after = set()
    for key in state:
        if not key.startswith(prefix + 'network.'):
            continue
        parts = key[len(prefix):].split('.')
        i = int(parts[1])
        if parts[2] in ('proj', 'norm'):
            downsample_after.add(i - 1)
        else:
            stages.setdefault(i, set()).add(int(parts[2]))
    if not stages:
        raise KeyError(f'no SwiftFormer network.* keys under {prefix!r}')
    order = sorted(stages)
    dims, depths = [], []
    for i in order:
        first = f'{prefix}network.{i}.0.'
        dw = state.get(first + 'dwconv.weight', state.get(first + 'local_representation.dwconv.weight'))
        dims.append(int(dw.shape[0]))
        depths.append(len(stages[i]))
    downsamples = tuple(i in downsample_after for i in order[:-1]) + (True,)
    hidden = next((state[k].shape[0] for k in state if k.startswith(f'{prefix}network.{order[0]}.') and k.endswith(('pwconv1.weight', 'fc1.weight')) and 'local_representation' not in k), 4 * dims[0])
    return {'embed_dims': tuple(dims), 'depths': tuple(depths), 'downsamples': downsamples, 'mlp_ratio': int(hidden) // dims[0]}


def variant_name(cfg):
    """The variant whose widths and depths these are, else 'custom'."""
    for name, v in VARIANTS.items():
        if tuple(v['embed_dims']) == tuple(cfg['embed_dims']) and tuple(v['depths']) == tuple(cfg['depths']):
            return name
    return 'custom'


def backbone_state_from_classifier(state):
    """The backbone part of a classification state dict (official keys): drops norm/head/dist_head,
    which the fork_feat model does not have. Returns (backbone state, dropped keys)."""
    keep = {k: v for k, v in state.items() if not k.startswith(('norm.', 'head.', 'dist_head.'))}
    return keep, sorted(set(state) - set(keep))


def load_backbone(backbone, state):
    """Loads a classification checkpoint's weights into a fork_feat backbone. The fork_feat norms
    norm0..norm6 have no counterpart in a classifier and keep their initial (identity) values,
    as mmseg's init_cfg loading (strict=False) leaves them. Every other key must match."""
    keep, dropped = backbone_state_from_classifier(state)
    missing, unexpected = backbone.load_state_dict(keep, strict=False)
    bad_missing = [k for k in missing if not k.startswith(tuple(f'norm{i}.' for i in backbone.stage_indices))]
    if bad_missing or unexpected:
        raise KeyError(f'classification checkpoint does not fit the backbone: missing {bad_missing[:8]}, unexpected {unexpected[:8]}')
    return {'dropped': dropped, 'kept_initial': sorted(missing)}


def init_backbone(body, path, variant):
    """Initializes a fork_feat backbone from a classification checkpoint of the given variant
    (or leaves it as init_weights made it when path is 'none'); returns what was done, for the logs."""
    from .tensorio import load_weights
    if path == 'none':
        return {'backbone_init': 'random'}
    state, _ = load_weights(path)
    cfg = config_from_state(state)
    if variant_name(cfg) != variant:
        raise SystemExit(f'{path} is a {variant_name(cfg)} backbone {cfg["embed_dims"]}, not {variant}')
    loaded = load_backbone(body, state)
    return {'backbone_init': path, 'dropped': loaded['dropped'], 'kept_initial': loaded['kept_initial']}
