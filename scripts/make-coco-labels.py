#!/usr/bin/env python3
"""Writes assets/labels/coco-91.json and assets/labels/coco-81.json: COCO's detection categories.

coco-91.json: the 91 class indices of torchvision's COCO detectors (index = COCO category id,
0 '__background__', 'N/A' for the ten ids COCO 2017 does not use), torchvision's
`models._meta._COCO_CATEGORIES`. coco-81.json: the background and the 80 used categories in id
order, the contiguous labelling of detectors trained with 81 classes (mmdetection-style).

Usage:  /usr/bin/python3 scripts/make-coco-labels.py     (Debian's python3-torchvision)
"""
import json
import os

from torchvision.models._meta import _COCO_CATEGORIES

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'assets', 'labels')


def write(name, labels):
    path = os.path.join(OUT, name)
    with open(path + '.tmp', 'w') as f:
        json.dump(labels, f, indent=0)
        f.write('\n')
    os.replace(path + '.tmp', path)
    print(f'wrote {path} ({len(labels)} labels)')


if __name__ == '__main__':
    categories = list(_COCO_CATEGORIES)
    assert len(categories) == 91 and categories[0] == '__background__'
    used = [c for c in categories[1:] if c != 'N/A']
    assert len(used) == 80
    write('coco-91.json', categories)
    write('coco-81.json', ['__background__'] + used)
