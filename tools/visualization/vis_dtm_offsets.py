"""Draw where LIT's deformable token merging samples, over an image (the LIT paper's offset figure).

    python tools/visualization/vis_dtm_offsets.py IMG TARGET [CHECKPOINT] --out offsets.png \\
        [--points 112,112 60,150] [--shape 224 224]

TARGET is a config (its LIT backbone) or an arch name (ti, s, m, b); CHECKPOINT an mmlit checkpoint of
that model or an official LIT checkpoint. One panel per DTM: for each chosen pixel (y,x), a cross on the
output token covering it and dots on the image locations that token merges, followed through every DTM
below it (4, 16, 64 locations).
"""
import os.path as osp
import sys

import mmcv

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # tools/: mmlit_tools

from mmlit.visualization import collect_dtm_offsets, draw_sampling_locations
from mmlit_tools.analysis import load_backbone
from mmlit_tools.inputs import load_image, parse_pixel, tool_parser
from mmlit_tools.launch import run_tool


def parse_args():
    parser = tool_parser(__doc__.split('\n\n')[0], 'dtm_offsets.png')
    parser.add_argument('--points', nargs='+', help='pixels Y,X of the resized image to follow '
                        '(default: the centre and two off-centre points)')
    parser.add_argument('--scale', type=int, default=2, help='upscaling of the drawn image')
    return parser.parse_args()


@run_tool
def main():
    args = parse_args()
    H, W = args.shape
    points = [parse_pixel(p, args.shape, '--points') for p in args.points] if args.points else [
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
