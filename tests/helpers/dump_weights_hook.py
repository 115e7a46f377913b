"""A hook for the launcher tests: every rank writes its final weights to ``work_dir/weights_rank{r}.pth``."""
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
        torch.save(model.state_dict(), osp.join(runner.work_dir, f'weights_rank{get_rank()}.pth'))
