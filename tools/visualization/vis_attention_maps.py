"""Draw the attention maps of LIT's self-attention blocks for one query pixel (the LIT paper's figure).

    python tools/visualization/vis_attention_maps.py IMG TARGET [CHECKPOINT] --out attention.png \\
        [--query 112,112] [--shape 224 224] [--tile 112]

TARGET is a config (its LIT backbone) or an arch name (ti, s, m, b); CHECKPOINT an mmlit checkpoint of
that model or an official LIT checkpoint. Writes a grid with one row per attention block (stages 3-4) and
one tile per head: the attention the query token gives to every token, upsampled over the image.
"""
import argparse
import os.path as osp

import mmcv

from mmlit.visualization import collect_attention_maps, draw_attention_grid, load_backbone, load_image


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('target', help='config file or LIT arch name')
    parser.add_argument('checkpoint', nargs='?', help='mmlit or official checkpoint (random weights if left out)')
    parser.add_argument('--out', default='attention_maps.png', help='PNG to write')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input size the image is resized to')
    parser.add_argument('--query', help='query pixel Y,X of the resized image (default: the centre)')
    parser.add_argument('--tile', type=int, default=112, help='height of one tile in pixels')
    return parser.parse_args()


def main():
    args = parse_args()
    H, W = args.shape
    if args.query:
        try:
            query = tuple(float(v) for v in args.query.split(','))
            assert len(query) == 2
        except (ValueError, AssertionError):
            raise SystemExit(f'--query takes a pixel as Y,X (e.g. 112,80), got {args.query!r}') from None
        if not (0 <= query[0] < H and 0 <= query[1] < W):
            raise SystemExit(f'--query {args.query} lies outside the {H}x{W} image (--shape).')
    else:
        query = (H / 2, W / 2)
    backbone = load_backbone(args.target, args.checkpoint)
    image, inputs = load_image(args.img, args.shape)
    try:
        records = collect_attention_maps(backbone, inputs, query)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    canvas = draw_attention_grid(image, records, query, args.tile)
    mmcv.imwrite(canvas[..., ::-1], args.out)  # RGB -> BGR for OpenCV
    print(f'{len(records)} attention blocks: {osp.abspath(args.out)}')


if __name__ == '__main__':
    main()
