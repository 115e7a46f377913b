"""A hook for the launcher tests: every rank writes its final weights (the parameters; BatchNorm running
statistics are per rank under DDP) to ``work_dir/weights_rank{r}.pth``."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpWeightsHook(Hook):

    def after_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save({k: v.detach() for k, v in model.named_parameters()},
                   osp.join(runner.work_dir, f'weights_rank{get_rank()}.pth'))
