"""A small synthetic dataset that mmlit generates itself: images of simple shapes.

Every image shows 1-3 filled shapes (circle, square, triangle) of random size, colour and position on a
noisy background. One generation writes, deterministically for a seed:

- ``images/{train,val}/NNNNNN.png``
- ``annotations/instances_{train,val}.json``: COCO instance annotations (boxes, RLE masks) for
  MMDetection's ``CocoDataset``;
- ``seg_maps/{train,val}/NNNNNN.png``: semantic masks (0 background, 1 circle, 2 square, 3 triangle)
  for MMSegmentation's ``BaseSegDataset``;
- ``meta/{train,val}.txt``: ``images/<split>/NNNNNN.png <label>`` lines, the label being the largest
  shape's class, for MMPretrain's ``CustomDataset``.

Later shapes occlude earlier ones; every instance mask is what remains visible.
"""
import json
import os
import os.path as osp
from typing import Dict, Tuple

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background', ) + CLASSES
_VERSION = 1  # bump when the generated content changes


def _draw_shape(kind: str, center: Tuple[float, float], size: float, angle: float,
                shape: Tuple[int, int]) -> np.ndarray:
    """Rasterise one filled shape as a boolean mask.

    Args:
        kind (str): ``'circle'`` or ``'square'``; anything else is drawn as a triangle.
        center (tuple[float]): (x, y) centre, in pixels.
        size (float): Diameter of the circle, or of the circle through the polygon's vertices, in pixels.
        angle (float): Direction of the polygon's first vertex from the centre, in radians (unused for a
            circle).
        shape (tuple[int]): (H, W) of the mask.

    Returns:
        np.ndarray: (H, W) bool mask, True inside the shape.
    """
    mask = Image.new('L', (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = center
    r = size / 2
    if kind == 'circle':
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1)
    else:
        n = 4 if kind == 'square' else 3
        angles = angle + np.arange(n) * 2 * np.pi / n
        draw.polygon([(cx + r * np.cos(a), cy + r * np.sin(a)) for a in angles], fill=1)
    return np.asarray(mask, dtype=bool)


def _make_image(rng: np.random.RandomState, img_size: int):
    """Draw one random image: 1-3 shapes, each of one random colour, on a noisy background.

    Each shape's size is 20-45% of the image side, and it lies wholly inside the image. Shapes are
    drawn in order, so later ones occlude earlier ones.

    Args:
        rng (np.random.RandomState): The generator all randomness comes from.
        img_size (int): Side of the square image, in pixels.

    Returns:
        tuple: The (img_size, img_size, 3) uint8 RGB image, and a list of ``(label, mask)`` pairs in
        drawing order, one per shape with at least 16 visible pixels: ``label`` an index into
        :data:`CLASSES`, ``mask`` the (H, W) bool mask of its visible part.
    """
    H = W = img_size
    image = (rng.rand(H, W, 3) * 40 + rng.randint(60, 160, size=3)).astype(np.float32)
    visible = []
    occupancy = np.zeros((H, W), dtype=np.int32)  # index + 1 of the shape on top
    for index in range(rng.randint(1, 4)):
        label = rng.randint(len(CLASSES))
        size = rng.uniform(0.2, 0.45) * img_size
        center = rng.uniform(size / 2, img_size - size / 2, size=2)
        mask = _draw_shape(CLASSES[label], tuple(center), size, rng.uniform(0, np.pi), (H, W))
        image[mask] = rng.randint(0, 256, size=3)
        occupancy[mask] = index + 1
        visible.append(label)
    instances = []
    for index, label in enumerate(visible):
        mask = occupancy == index + 1
        if mask.sum() >= 16:
            instances.append((label, mask))
    return np.clip(image, 0, 255).astype(np.uint8), instances


def _coco_annotation(mask: np.ndarray, label: int, image_id: int, ann_id: int) -> dict:
    """The COCO annotation of one instance.

    Args:
        mask (np.ndarray): (H, W) bool mask of the instance's visible pixels; not empty.
        label (int): Index into :data:`CLASSES`; the category id is ``label + 1``.
        image_id (int): Id of the image.
        ann_id (int): Id of the annotation.

    Returns:
        dict: The annotation: the mask as a compressed RLE (``counts`` decoded to a str, so it is
        JSON-ready), the area in pixels, the tight box ``[x, y, w, h]`` around the mask, ``iscrowd=0``.
    """
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    return dict(id=ann_id, image_id=image_id, category_id=label + 1, segmentation=rle,
                area=float(mask.sum()), bbox=[float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                iscrowd=0)


def generate_toy_shapes(root: str,
                        num_train: int = 96,
                        num_val: int = 24,
                        img_size: int = 128,
                        seed: int = 0) -> Dict[str, int]:
    """Write the dataset under ``root`` (see the module doc). Returns the number of images per split."""
    for sub in ('images/train', 'images/val', 'seg_maps/train', 'seg_maps/val', 'annotations', 'meta'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    rng = np.random.RandomState(seed)
    counts = {}
    for split, num in (('train', num_train), ('val', num_val)):
        images, annotations, lines = [], [], []
        for i in range(num):
            image, instances = _make_image(rng, img_size)
            name = f'{i:06d}.png'
            Image.fromarray(image).save(osp.join(root, 'images', split, name))
            seg = np.zeros(image.shape[:2], dtype=np.uint8)
            for label, mask in instances:
                seg[mask] = label + 1
                annotations.append(_coco_annotation(mask, label, i, len(annotations) + 1))
            Image.fromarray(seg).save(osp.join(root, 'seg_maps', split, name))
            images.append(dict(id=i, file_name=name, height=img_size, width=img_size))
            largest = max(instances, key=lambda inst: inst[1].sum())[0] if instances else 0
            lines.append(f'images/{split}/{name} {largest}')
        coco = dict(images=images, annotations=annotations,
                    categories=[dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)])
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(coco, f)
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        counts[split] = num
    with open(osp.join(root, 'VERSION'), 'w') as f:
        json.dump(dict(version=_VERSION, num_train=num_train, num_val=num_val, img_size=img_size,
                       seed=seed), f)
    return counts


def ensure_toy_shapes(root: str, **kwargs) -> bool:
    """Generate the dataset under ``root`` unless the same one is already there. True if generated."""
    wanted = dict(version=_VERSION, **{k: kwargs.get(k, v) for k, v in
                                       dict(num_train=96, num_val=24, img_size=128, seed=0).items()})
    stamp = osp.join(root, 'VERSION')
    if osp.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == wanted:
                return False
    generate_toy_shapes(root, **{k: v for k, v in wanted.items() if k != 'version'})
    return True
