"""Draw where LIT's deformable token merging samples, over an image (the LIT paper's offset figure).

    python tools/visualization/vis_dtm_offsets.py IMG TARGET [CHECKPOINT] --out offsets.png \\
        [--points 112,112 60,150] [--shape 224 224]

TARGET is a config (its LIT backbone) or an arch name (ti, s, m, b); CHECKPOINT an mmlit checkpoint of
that model or an official LIT checkpoint. One panel per DTM: for each chosen pixel (y,x), a cross on the
output token covering it and dots on the image locations that token merges, followed through every DTM
below it (4, 16, 64 locations).
"""
import argparse
import os.path as osp

import mmcv

from mmlit.visualization import collect_dtm_offsets, draw_sampling_locations, load_backbone, load_image


def parse_points(values, shape):
    points = []
    for value in values:
        try:
            y, x = (float(v) for v in value.split(','))
        except ValueError:
            raise SystemExit(f'--points takes pixels as Y,X (e.g. 112,80), got {value!r}') from None
        if not (0 <= y < shape[0] and 0 <= x < shape[1]):
            raise SystemExit(f'Point {value} lies outside the {shape[0]}x{shape[1]} image (--shape).')
        points.append((y, x))
    return points


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('target', help='config file or LIT arch name')
    parser.add_argument('checkpoint', nargs='?', help='mmlit or official checkpoint (random weights if left out)')
    parser.add_argument('--out', default='dtm_offsets.png', help='PNG to write')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input size the image is resized to')
    parser.add_argument('--points', nargs='+', help='pixels Y,X of the resized image to follow '
                        '(default: the centre and two off-centre points)')
    parser.add_argument('--scale', type=int, default=2, help='upscaling of the drawn image')
    return parser.parse_args()


def main():
    args = parse_args()
    H, W = args.shape
    points = parse_points(args.points, args.shape) if args.points else [
        (H / 2, W / 2), (H / 4, W / 4), (3 * H / 4, 2 * W / 3)]
    backbone = load_backbone(args.target, args.checkpoint)
    image, inputs = load_image(args.img, args.shape)
    offsets = collect_dtm_offsets(backbone, inputs)
    if not offsets:
        raise SystemExit('This backbone has no deformable token merging.')
    canvas = draw_sampling_locations(image, offsets, points, backbone.patch_size, args.scale)
    mmcv.imwrite(canvas[..., ::-1], args.out)  # RGB -> BGR for OpenCV
    print(f'{len(offsets)} DTM panels, {len(points)} points: {osp.abspath(args.out)}')


if __name__ == '__main__':
    main()
