#!/usr/bin/python3
"""torchvision references/detection's --resume, done as its train.py does it, for test/detection-pth.test.ts.

    check --pth P --grads G.safetensors --out O.safetensors
        torch.load(P) (plain, as train.py); bench/torchref/maskrcnn.py's MaskRCNN loaded with
        load_state_dict(strict=True); the optimizer train.py builds from P's args
        ([p for p in model.parameters() if p.requires_grad], AdamW or SGD) and MultiStepLR(lr_steps,
        lr_gamma), then optimizer.load_state_dict and lr_scheduler.load_state_dict. Writes to O, by
        parameter name, what torch's optimizer holds for each parameter after loading (exp_avg.<name>,
        exp_avg_sq.<name> / momentum_buffer.<name>) and the parameters after one optimizer.step()
        with the gradients of G (param.<name>); prints JSON: the step counts, whether the state_dict
        order is P's, the lr of the next three epochs (lr_scheduler.step() after each).

    make --pth P --out T.pth --named N.safetensors --opt sgd|adamw --epochs-done E --steps S --lr-steps 2
        A run in torch from P's model: the optimizer and MultiStepLR as train.py builds them, E epochs
        of S steps with seeded random gradients (epoch 0 with train.py's LinearLR warm-up over
        min(1000, S - 1) iterations), lr_scheduler.step() after each epoch; saves T with torch.save as
        train.py does ({model, optimizer, lr_scheduler, args: argparse.Namespace, epoch}); writes the
        optimizer's state by parameter name to N; prints JSON with the step count and the next lr.

Call Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision 0.14).
"""
import argparse
import collections
import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'bench'))
from torchref.maskrcnn import maskrcnn_from_state  # noqa: E402
from torchref.tensorio import load_state_dict, write_safetensors  # noqa: E402

warnings.filterwarnings('ignore')


def get(args, key, default=None):
    return args.get(key, default) if isinstance(args, dict) else getattr(args, key, default)


def build(checkpoint):
    """The model, optimizer and scheduler as references/detection's train.py builds them from args."""
    a = checkpoint.get('args', {})
    model, _ = maskrcnn_from_state(checkpoint['model'], attention=get(a, 'attention', 'l2'), min_size=128, max_size=256)
    params = [p for p in model.parameters() if p.requires_grad]
    if get(a, 'opt') == 'sgd':
        opt = torch.optim.SGD(params, lr=get(a, 'lr'), momentum=get(a, 'momentum'), weight_decay=get(a, 'weight_decay'), nesterov=False)
    else:
        opt = torch.optim.AdamW(params, lr=get(a, 'lr'), weight_decay=get(a, 'weight_decay'))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(get(a, 'lr_steps')), gamma=get(a, 'lr_gamma'))
    return model, opt, sched


def named_state(model, opt):
    out, steps = {}, set()
    for name, p in model.named_parameters():
        for slot, value in opt.state[p].items():
            if slot == 'step':
                steps.add(float(value))
            elif value is not None:
                out[f'{slot}.{name}'] = value.clone()  # the step below updates the state in place
    return out, sorted(steps)


def check(args):
    ckpt = torch.load(args.pth, map_location='cpu')
    model, opt, sched = build(ckpt)
    fresh_keys = sorted(opt.param_groups[0].keys())
    opt.load_state_dict(ckpt['optimizer'])
    sched.load_state_dict(ckpt['lr_scheduler'])
    out, steps = named_state(model, opt)
    grads, _ = load_state_dict(args.grads)
    for name, p in model.named_parameters():
        p.grad = grads[name].clone()
    opt.step()
    for name, p in model.named_parameters():
        out[f'param.{name}'] = p.detach()
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]['lr'])
        sched.step()
    write_safetensors(args.out, out)
    print(json.dumps({
        'start_epoch': ckpt['epoch'] + 1, 'steps': steps, 'lrs': lrs,
        'same_order': list(model.state_dict().keys()) == list(ckpt['model'].keys()),
        'milestones_counter': type(ckpt['lr_scheduler']['milestones']) is collections.Counter,
        'group_keys': sorted(ckpt['optimizer']['param_groups'][0].keys()), 'fresh_group_keys': fresh_keys,
    }))


def make(args):
    src = torch.load(args.pth, map_location='cpu')
    a = dict(src['args'])
    a.update(opt=args.opt, lr=0.01 if args.opt == 'sgd' else 2e-4, momentum=0.9, weight_decay=1e-4,
             lr_steps=[int(s) for s in args.lr_steps.split(',')], lr_gamma=0.1, epochs=args.epochs_done + 2)
    ckpt = {'model': src['model'], 'args': a}
    model, opt, sched = build(ckpt)
    g = torch.Generator().manual_seed(0)
    for epoch in range(args.epochs_done):
        warmup = None
        if epoch == 0 and args.steps > 1:
            warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.001, total_iters=min(1000, args.steps - 1))
        for _ in range(args.steps):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g) * 1e-2
            opt.step()
            if warmup is not None:
                warmup.step()
        sched.step()
    named, steps = named_state(model, opt)
    write_safetensors(args.named, named)
    namespace = argparse.Namespace(**{**a, 'start_epoch': 0, 'resume': ''})
    torch.save({'model': model.state_dict(), 'optimizer': opt.state_dict(), 'lr_scheduler': sched.state_dict(),
                'args': namespace, 'epoch': args.epochs_done - 1}, args.out)
    print(json.dumps({'steps': steps, 'next_lr': opt.param_groups[0]['lr'], 'epochs': a['epochs']}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('mode', choices=['check', 'make'])
    ap.add_argument('--pth', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--grads')
    ap.add_argument('--named')
    ap.add_argument('--opt', default='sgd')
    ap.add_argument('--epochs-done', type=int, default=2)
    ap.add_argument('--steps', type=int, default=2)
    ap.add_argument('--lr-steps', default='2')
    args = ap.parse_args()
    torch.set_num_threads(1)
    (check if args.mode == 'check' else make)(args)


if __name__ == '__main__':
    main()
