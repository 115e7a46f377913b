"""Draw the attention maps of LIT's and LITv2's self-attention blocks for one query pixel.

    python tools/visualization/vis_attention_maps.py IMG TARGET [CHECKPOINT] --out attention.png \\
        [--query 112,112] [--shape 224 224] [--tile 112]

TARGET is a config (its LIT or LITv2 backbone) or an arch name (ti, s, m, b; litv2-s, litv2-m, litv2-b);
CHECKPOINT an mmlit checkpoint of that model or an official one. Writes a grid with one row per attention
block (stages 3-4) and one tile per head: the attention the query token gives to every token, upsampled
over the image. For LITv2's HiLo attention the Hi-Fi heads come first (attention within the query's
window), then the Lo-Fi heads (attention to the pooled windows, each spread over its window).
"""
import os.path as osp
import sys

import mmcv

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools

from mmlit.visualization import collect_attention_maps, draw_attention_grid
from mmlit_tools.analysis import load_backbone
from mmlit_tools.inputs import load_image, parse_pixel, tool_parser
from mmlit_tools.launch import run_tool


def parse_args():
    parser = tool_parser(__doc__.split('\n\n')[0], 'attention_maps.png')
    parser.add_argument('--query', help='query pixel Y,X of the resized image (default: the centre)')
    parser.add_argument('--tile', type=int, default=112, help='height of one tile in pixels')
    return parser.parse_args()


@run_tool
def main():
    args = parse_args()
    H, W = args.shape
    query = parse_pixel(args.query, args.shape, '--query') if args.query else (H / 2, W / 2)
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
