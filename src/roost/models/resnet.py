"""The pre-activation ResNet of SageMaker's image-classification algorithm.

A PyTorch rendering of MXNet's ``example/image-classification/symbols/resnet.py``
(He et al. 2016, "Identity Mappings in Deep Residual Networks"), which the
algorithm trains. Depth rules, stem switch, units, filters, BatchNorm settings
and initialisation are MXNet's, and every parameter's module path maps one to
one onto MXNet's parameter name (``stage1_unit1.bn1.weight`` <->
``arg:stage1_unit1_bn1_gamma``) so that SageMaker artifacts can be imported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from roost.errors import UserError
from roost.models.recipes import resnet_spec

# MXNet BatchNorm: eps 2e-5; running = 0.9 * running + 0.1 * batch
BN_EPS = 2e-5
BN_MOMENTUM = 0.1


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class ResidualUnit(nn.Module):
    """Pre-activation unit; the projection shortcut ``sc`` reads the first ReLU's output."""

    def __init__(self, cin: int, cout: int, stride: int, dim_match: bool, bottleneck: bool) -> None:
        super().__init__()
        self.bottleneck = bottleneck
        self.bn1 = _bn(cin)
        if bottleneck:
            mid = int(cout * 0.25)
            self.conv1 = _conv(cin, mid, 1)
            self.bn2 = _bn(mid)
            self.conv2 = _conv(mid, mid, 3, stride)
            self.bn3 = _bn(mid)
            self.conv3 = _conv(mid, cout, 1)
        else:
            self.conv1 = _conv(cin, cout, 3, stride)
            self.bn2 = _bn(cout)
            self.conv2 = _conv(cout, cout, 3)
        self.sc = None if dim_match else _conv(cin, cout, 1, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act1 = self.relu(self.bn1(x))
        shortcut = x if self.sc is None else self.sc(act1)
        out = self.conv1(act1)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.bottleneck:
            out = self.conv3(self.relu(self.bn3(out)))
        return out + shortcut


class ResNet(nn.Module):
    """``bn_data`` -> stem -> stages -> ``bn1`` -> ReLU -> global average pool -> ``fc1`` (logits).

    Inputs are raw pixels (0..255, RGB, NCHW): the ``bn_data`` BatchNorm with
    its gamma fixed at 1 does the normalisation, as in MXNet.
    """

    def __init__(self, num_classes: int, num_layers: int, image_shape: Sequence[int], head: str = "fc1") -> None:
        super().__init__()
        channels, height, _ = image_shape
        spec = resnet_spec(num_layers, height)
        self.spec = spec
        self.head_name = head
        self.bn_data = _bn(channels)
        # fix_gamma=True: the scale stays 1 (MXNet keeps the parameter but never trains it)
        self.bn_data.weight.requires_grad_(False)
        f = spec.filters
        if spec.small_stem:
            self.conv0 = _conv(channels, f[0], 3)
        else:
            self.conv0 = nn.Conv2d(channels, f[0], 7, stride=2, padding=3, bias=False)
            self.bn0 = _bn(f[0])
            self.pooling0 = nn.MaxPool2d(3, stride=2, padding=1)
        self.unit_names: list[str] = []
        cin = f[0]
        for i, n_units in enumerate(spec.units):
            for u in range(n_units):
                name = f"stage{i + 1}_unit{u + 1}"
                stride = 1 if (i == 0 or u > 0) else 2
                setattr(self, name, ResidualUnit(cin, f[i + 1], stride, dim_match=u > 0, bottleneck=spec.bottleneck))
                self.unit_names.append(name)
                cin = f[i + 1]
        self.bn1 = _bn(cin)
        self.relu = nn.ReLU(inplace=True)
        setattr(self, head, nn.Linear(cin, num_classes))
        self.reset_parameters()

    @property
    def head(self) -> nn.Linear:
        return getattr(self, self.head_name)

    def reset_parameters(self) -> None:
        """MXNet's ``Xavier(rnd_type='gaussian', factor_type='in', magnitude=2)``; BN gamma 1, beta 0."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """``conv0(bn_data(x))``; in training, with bn_data folded into conv0.

        The pixels need no gradient, so the only use of conv0's input gradient (the whole image's, the slowest
        convolution pass of a ResNet-18 step at 224) is bn_data's shift. bn_data is per channel ``scale * x +
        shift`` and conv0 is linear, so ``conv0(scale * x + shift) = conv0 with its weights scaled (x) + conv0(the
        shift at every pixel)``; the second term is a small map, constant but for the zero-padded border, and
        carries the shift's gradient by itself. The batch statistics and running averages are bn_data's own.
        """
        bn = self.bn_data
        running_mean, running_var, momentum = bn.running_mean, bn.running_var, bn.momentum
        folded = self.training and torch.is_grad_enabled() and not bn.weight.requires_grad
        if not folded or momentum is None or running_mean is None or running_var is None:
            return self.conv0(bn(x))
        with torch.no_grad():
            var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
            n = x.numel() // x.shape[1]
            running_mean.lerp_(mean, momentum)
            running_var.lerp_(var * (n / max(n - 1, 1)), momentum)  # unbiased, as F.batch_norm keeps it
            if bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
            scale = bn.weight * torch.rsqrt(var + bn.eps)
        conv = self.conv0
        scaled = F.conv2d(x, conv.weight * scale[None, :, None, None], None, conv.stride, conv.padding)
        return _AddToEveryImage.apply(scaled, shift_through_conv(bn.bias - mean * scale, conv, x.shape[-2:]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        if not self.spec.small_stem:
            x = self.pooling0(self.relu(self.bn0(x)))
        for name in self.unit_names:
            x = getattr(self, name)(x)
        x = self.relu(self.bn1(x))
        return torch.flatten(torch.mean(x, dim=(2, 3)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _AddToEveryImage(torch.autograd.Function):
    """``batch + per_image`` for a (C, H, W) map, its gradient summed over the batch in the batch's memory order
    (autograd's own sum over dim 0 of a channels-last batch is 20x slower)."""

    @staticmethod
    def forward(ctx, batch: torch.Tensor, per_image: torch.Tensor) -> torch.Tensor:
        return batch + per_image.unsqueeze(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if grad.is_contiguous(memory_format=torch.channels_last):
            return grad, grad.permute(0, 2, 3, 1).sum(0).permute(2, 0, 1)
        return grad, grad.sum(0)


def shift_through_conv(shift: torch.Tensor, conv: nn.Conv2d, size: Sequence[int]) -> torch.Tensor:
    """``conv`` applied to an image of ``size`` holding ``shift[c]`` at every pixel of channel c: (out, H', W'),
    laid out channels-last in memory, as the batch it is added to.

    With zero padding an output pixel sees the shift only through the kernel taps that land inside the image,
    so per axis a (taps x outputs) mask of those taps is enough.
    """

    def inside(axis: int) -> torch.Tensor:
        padding = conv.padding
        assert not isinstance(padding, str), "conv0 pads by a number"
        k, s, p, n = conv.kernel_size[axis], conv.stride[axis], int(padding[axis]), int(size[axis])
        outputs = (n + 2 * p - k) // s + 1
        pos = torch.arange(outputs, device=shift.device) * s - p
        taps = torch.arange(k, device=shift.device)[:, None] + pos[None, :]
        return ((taps >= 0) & (taps < n)).to(conv.weight.dtype)

    per_tap = torch.einsum("ockl,c->okl", conv.weight, shift.to(conv.weight.dtype))
    return torch.einsum("okl,ki,lj->ijo", per_tap, inside(0), inside(1)).permute(2, 0, 1)


#: the classifier's names: ``fc1`` as MXNet's resnet.py builds it, ``fc`` after transfer learning (fine-tune.py)
HEAD_NAMES = ("fc1", "fc")


def find_head(names: Iterable[str]) -> str | None:
    """The head that a state dict (``fc.weight``) or MXNet parameters (``arg:fc_weight``) hold, if any."""
    names = set(names)
    for head in ("fc", "fc1"):
        if f"{head}.weight" in names or f"arg:{head}_weight" in names:
            return head
    return None


class WeightsMismatch(UserError):
    """Weights that do not fit the network they are loaded into."""


def mxnet_name(torch_name: str) -> str:
    """``stage1_unit1.bn1.running_mean`` -> ``aux:stage1_unit1_bn1_moving_mean`` (MXNet's parameter names)."""
    module, _, leaf = torch_name.rpartition(".")
    prefix = module.replace(".", "_")
    is_bn = module.split(".")[-1].startswith("bn")
    if is_bn:
        kind, leaf = {
            "weight": ("arg", "gamma"),
            "bias": ("arg", "beta"),
            "running_mean": ("aux", "moving_mean"),
            "running_var": ("aux", "moving_var"),
        }[leaf]
    else:
        kind = "arg"
    return f"{kind}:{prefix}_{leaf}"


def mxnet_param_shapes(model: ResNet) -> dict[str, list[int]]:
    """Every MXNet ``arg:``/``aux:`` name with its shape, from the model's state dict."""
    return {
        mxnet_name(k): list(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    }


def load_mxnet_params(model: ResNet, params: dict) -> None:
    """Copy MXNet ``arg:``/``aux:`` arrays into ``model`` by name; every name must match in both directions."""
    import numpy as np

    state = model.state_dict()
    by_mxnet = {mxnet_name(k): k for k in state if not k.endswith("num_batches_tracked")}
    missing = sorted(set(by_mxnet) - set(params))
    unexpected = sorted(set(params) - set(by_mxnet))
    if missing or unexpected:
        raise WeightsMismatch(
            "MXNet parameters do not fit this network: "
            + (f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}" if unexpected else "")
        )
    new = {}
    for mx_key, key in by_mxnet.items():
        arr = np.asarray(params[mx_key], dtype=np.float32)
        if tuple(arr.shape) != tuple(state[key].shape):
            raise WeightsMismatch(f"{mx_key}: shape {tuple(arr.shape)} does not fit {tuple(state[key].shape)}")
        new[key] = torch.from_numpy(arr.copy())
    # fix_gamma=True: MXNet ignores the stored scale of bn_data and uses 1
    new["bn_data.weight"] = torch.ones_like(new["bn_data.weight"])
    model.load_state_dict(new, strict=False)
