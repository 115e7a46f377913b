"""Evaluate a checkpoint of a detector, segmentor or classifier (the config's ``default_scope`` says which).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
                                           [--amp] [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

``--amp`` evaluates in reduced precision: on CPU, mmlit's bf16 mode (the backbone and neck under bfloat16
autocast, the heads in float32: :func:`mmlit_tools.amp.autocast_features`; the README, Speed, states its
accuracy against fp32); on CUDA, MMEngine's float16 ``TestLoop(fp16=True)``.
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmlit_tools.amp import autocast_features
from mmlit_tools.launch import check_checkpoints, check_datasets, check_model_fits, load_config, run_tool, setup_env


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model with a LIT backbone')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the file containing evaluation metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show-dir', help='directory where painted images will be saved')
    parser.add_argument('--amp', action='store_true',
                        help='reduced precision: bf16 backbone and neck on CPU, fp16 on CUDA')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def enable_visualization(cfg: Config, show_dir: str) -> None:
    """Turn on the task's visualization hook, writing painted predictions under ``show_dir``."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise SystemExit('--show-dir needs a `visualization` hook in default_hooks')
    hook = hooks.visualization
    hook.draw = True
    if cfg.default_scope == 'mmpretrain':
        hook.enable = True
        hook.out_dir = show_dir
    else:
        hook.test_out_dir = show_dir
        hook.interval = hook.get('interval', 1)


@run_tool
def main():
    args = parse_args()
    checkpoint, = check_checkpoints(args.checkpoint)
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, osp.abspath(args.show_dir))
    if args.amp and torch.cuda.is_available():
        cfg.test_cfg = dict(cfg.get('test_cfg') or dict(type='TestLoop'), fp16=True)

    setup_env(cfg)
    check_datasets(cfg, args.config, ('test_dataloader', ))

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    check_model_fits(runner.model, checkpoint, args.checkpoint)
    if args.amp and not torch.cuda.is_available():
        autocast_features(runner.model)
        runner.logger.info('--amp: backbone and neck under bfloat16 autocast, heads in float32')
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('--out must be a .pkl or .pickle file')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
