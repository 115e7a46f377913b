"""Run a LIT model on an image and write the rendered result, with the upstream inferencers.

    python demo/image_demo.py IMG CONFIG CHECKPOINT [--out-dir outputs] [--device cpu] [--score-thr 0.3]

CONFIG is any mmlit config (or your own using ``mmlit.LIT``); its ``default_scope`` picks the task:
``mmdet`` (detection, instance segmentation: mmdet's ``DetInferencer``), ``mmseg`` (semantic
segmentation: ``MMSegInferencer``) or ``mmpretrain`` (classification: ``ImageClassificationInferencer``).
CHECKPOINT is a checkpoint of that model: trained with ``tools/train.py`` or converted from the official
release with ``tools/model_converters/lit2mmlit.py``. The rendered image goes to ``OUT_DIR/vis/``, the
predictions to ``OUT_DIR/preds/`` (detection, segmentation) or are printed (classification).
"""
import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tools'))  # mmlit_tools

from mmlit_tools.analysis import drop_pretrained
from mmlit_tools.launch import check_checkpoints, run_tool

TASKS = ('mmdet', 'mmseg', 'mmpretrain')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--out-dir', default='outputs', help='where the rendered image is written')
    parser.add_argument('--device', default=None, help="'cpu', 'cuda:0', ... (default: cuda if available)")
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection score threshold')
    return parser.parse_args()


def load_config(path: str) -> Config:
    """The config, with its backbone's ImageNet ``init_cfg`` dropped: the weights come from CHECKPOINT."""
    cfg = Config.fromfile(path)
    drop_pretrained(cfg.model)
    return cfg


def run(img: str, config: str, checkpoint: str, out_dir: str, device=None, score_thr: float = 0.3) -> str:
    """Infer ``img`` and return the path of the rendered image."""
    if not osp.isfile(img):
        raise SystemExit(f'No image at {img}')
    cfg = load_config(config)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise SystemExit(f"{config} has default_scope={scope!r}; the demo runs configs whose default_scope is "
                         f"one of {TASKS} (mmlit's configs set it).")
    vis_dir = osp.join(out_dir, 'vis')
    name = osp.basename(img)
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, show_progress=False)
        inferencer(img, out_dir=out_dir, pred_score_thr=score_thr, no_save_pred=False)
    elif scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device=device)
        inferencer(img, out_dir=out_dir, img_out_dir='vis', pred_out_dir='preds')
    else:
        from mmpretrain.apis import ImageClassificationInferencer
        inferencer = ImageClassificationInferencer(model=cfg, pretrained=checkpoint, device=device)
        os.makedirs(vis_dir, exist_ok=True)
        result = inferencer(img, show_dir=vis_dir)[0]
        print(f"{name}: {result['pred_class']} (score {result['pred_score']:.3f})")
        name = osp.splitext(name)[0] + '.png'
    out = osp.join(vis_dir, name)
    if not osp.isfile(out):
        raise RuntimeError(f'The {scope} inferencer wrote no image at {out}; files there: '
                           f'{os.listdir(vis_dir) if osp.isdir(vis_dir) else []}')
    return out


@run_tool
def main():
    args = parse_args()
    check_checkpoints(args.checkpoint)
    out = run(args.img, args.config, args.checkpoint, args.out_dir, args.device, args.score_thr)
    print(f'Rendered result: {osp.abspath(out)}')


if __name__ == '__main__':
    main()
