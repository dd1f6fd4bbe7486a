"""SageMaker's optimizers and learning-rate schedule, as MXNet's ``fit.py`` wires them (docs/sagemaker.md,
"Optimizers and the learning-rate schedule")."""

from __future__ import annotations

import logging

import torch
from torch import nn

from roost.algorithm.hyperparameters import HyperParameters

log = logging.getLogger("roost.algorithm")


def make_optimizer(model: nn.Module, hp: HyperParameters) -> torch.optim.Optimizer:
    """SageMaker's optimizer names and arguments.

    As MXNet's default ``wd_mult`` has it (every parameter named ``*_weight`` or ``*_gamma``), weight decay
    applies to conv and fully connected weights and to batch-norm scales, not to biases and shifts; and, as
    SageMaker documents, only for sgd and nag. (``bn_data``'s scale is fixed at 1 and never trained.)
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (decay if name == "weight" else no_decay).append(p)  # conv/fc weights, BN gamma; not bias, BN beta
    wd = hp.weight_decay if hp.optimizer in ("sgd", "nag") else 0.0
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    lr = hp.learning_rate
    if hp.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=hp.momentum)
    if hp.optimizer == "nag":
        return torch.optim.SGD(groups, lr=lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
    if hp.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(hp.beta_1, hp.beta_2), eps=hp.eps)
    return torch.optim.RMSprop(groups, lr=lr, alpha=hp.gamma, eps=hp.eps)


class MultiFactorSchedule:
    """MXNet's ``MultiFactorScheduler`` over update counts, steps from epochs as ``fit.py`` computes them.

    The container runs Python 2, so ``epoch_size`` is ``floor(floor(num_training_samples / hosts) /
    mini_batch_size)``: the updates of one host, as ``fit.py`` counts them per worker.
    """

    def __init__(self, hp: HyperParameters, hosts: int = 1) -> None:
        self.base = hp.learning_rate
        self.factor = hp.lr_scheduler_factor
        epoch_size = max(1, hp.num_training_samples // max(1, hosts) // hp.mini_batch_size)
        self.steps = [epoch_size * e for e in (hp.lr_scheduler_step or ())]
        self.index = 0

    def lr(self, num_update: int) -> float:
        """Learning rate for the ``num_update``-th update (1-based); logs each change like MXNet."""
        while self.index < len(self.steps) and num_update > self.steps[self.index]:
            self.index += 1
            log.info("Update[%d]: Change learning rate to %0.5e", num_update, self.current)
        return self.current

    @property
    def current(self) -> float:
        return self.base * self.factor**self.index
