"""Optimizers and the learning-rate schedule, wired as MXNet's fit.py wires them."""

import pytest
import torch

from roost.algorithm.hyperparameters import parse_hyperparameters
from roost.algorithm.optim import MultiFactorSchedule, make_optimizer
from roost.models.resnet import ResNet


def test_lr_schedule_steps_at_epoch_boundaries():
    hp = parse_hyperparameters(
        {
            "num_classes": "2",
            "num_training_samples": "100",
            "mini_batch_size": "32",
            "learning_rate": "0.1",
            "lr_scheduler_step": "2,4",
            "lr_scheduler_factor": "0.5",
        }
    )
    sched = MultiFactorSchedule(hp)  # epoch_size = 100 // 32 = 3 (Python 2 division, as in the container)
    lrs = [sched.lr(u) for u in range(1, 15)]
    assert lrs[:6] == [0.1] * 6 and lrs[6:12] == [0.05] * 6 and lrs[12:] == [0.025] * 2


@pytest.mark.parametrize(
    "name,cls",
    [("sgd", torch.optim.SGD), ("nag", torch.optim.SGD), ("adam", torch.optim.Adam), ("rmsprop", torch.optim.RMSprop)],
)
def test_optimizer_wiring(name, cls):
    hp = parse_hyperparameters(
        {
            "num_classes": "2",
            "num_training_samples": "10",
            "mini_batch_size": "2",
            "optimizer": name,
            "momentum": "0.8",
            "weight_decay": "0.01",
            "beta_1": "0.7",
            "gamma": "0.95",
            "eps": "1e-6",
        }
    )
    opt = make_optimizer(ResNet(2, 8, (3, 16, 16)), hp)
    assert isinstance(opt, cls)
    decay, no_decay = opt.param_groups
    model = ResNet(2, 8, (3, 16, 16))
    names = {id(p): n for n, p in model.named_parameters()}
    opt = make_optimizer(model, hp)
    decay, no_decay = opt.param_groups
    decayed = {names[id(p)] for p in decay["params"]}
    # MXNet's wd_mult: *_weight and *_gamma decay (conv, fc, BN scales), biases and BN shifts do not
    assert "fc1.weight" in decayed and "bn1.weight" in decayed and "conv0.weight" in decayed
    assert not any(n.endswith("bias") for n in decayed) and "bn_data.weight" not in decayed  # fixed at 1
    assert {names[id(p)] for p in no_decay["params"]} == {n for n in names.values() if n.endswith("bias")}
    assert decay["weight_decay"] == (0.01 if name in ("sgd", "nag") else 0.0) and no_decay["weight_decay"] == 0
    if name == "nag":
        assert decay["nesterov"] and decay["momentum"] == 0.8
    if name == "adam":
        assert decay["betas"] == (0.7, 0.999) and decay["eps"] == 1e-6
    if name == "rmsprop":
        assert decay["alpha"] == 0.95


def test_the_learning_rate_steps_count_the_updates_of_one_host():
    from roost.algorithm.hyperparameters import parse_hyperparameters
    from roost.algorithm.optim import MultiFactorSchedule

    hp = parse_hyperparameters(
        {"num_classes": "2", "num_training_samples": "1000", "mini_batch_size": "32", "lr_scheduler_step": "2,4"}
    )
    assert MultiFactorSchedule(hp).steps == [31 * 2, 31 * 4]  # floor(1000 / 32) updates an epoch
    assert MultiFactorSchedule(hp, hosts=2).steps == [15 * 2, 15 * 4]  # floor(floor(1000 / 2) / 32), as fit.py
