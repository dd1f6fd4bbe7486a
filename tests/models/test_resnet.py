"""MXNet's ResNet: every depth table, both stems, MXNet's parameter names and initialisation."""

import copy
import json
import math

import pytest
import torch
from torch import nn

from roost.models.recipes import LARGE_IMAGE_DEPTHS, SMALL_IMAGE_DEPTHS, resnet_spec
from roost.models.resnet import ResNet, mxnet_param_shapes

FIXTURE_MODELS = [
    ("resnet20_3x28x28", 20, (3, 28, 28), "fc1"),
    ("resnet20_3x28x28_fc_head", 20, (3, 28, 28), "fc"),
    ("resnet164_3x28x28_bottleneck", 164, (3, 28, 28), "fc1"),
    ("resnet18_3x64x64", 18, (3, 64, 64), "fc1"),
]


@pytest.mark.parametrize("name,layers,shape,head", FIXTURE_MODELS)
def test_parameter_names_and_shapes_equal_mxnet(mxnet_fixtures, name, layers, shape, head):
    manifest = json.loads((mxnet_fixtures / "model" / name / "params_manifest.json").read_text())
    assert mxnet_param_shapes(ResNet(4, layers, shape, head=head)) == manifest


def _weighted_layers(model: ResNet) -> int:
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and not n.endswith(".sc")]
    return len(convs) + 1  # + the fully connected head


@pytest.mark.parametrize("layers", LARGE_IMAGE_DEPTHS + (269,))
def test_large_image_depths(layers):
    spec = resnet_spec(layers, 224)
    assert not spec.small_stem and len(spec.units) == 4 and spec.bottleneck == (layers >= 50)
    model = ResNet(10, layers, (3, 224, 224))
    assert _weighted_layers(model) == layers
    # every parameter has an MXNet name, and the names are unique
    assert len(mxnet_param_shapes(model)) == len([k for k in model.state_dict() if "num_batches" not in k])


@pytest.mark.parametrize("layers", SMALL_IMAGE_DEPTHS + (8, 14, 164))
def test_small_image_depths(layers):
    model = ResNet(10, layers, (3, 28, 28))
    assert model.spec.small_stem and len(model.spec.units) == 3
    assert _weighted_layers(model) == layers
    assert model.spec.bottleneck == (layers >= 164)


def test_stem_and_table_thresholds():
    # 29..32: the ImageNet table with the 3x3 stem (MXNet's two different thresholds)
    spec = resnet_spec(18, 32)
    assert spec.small_stem and spec.units == (2, 2, 2, 2)
    assert not resnet_spec(18, 33).small_stem
    with pytest.raises(ValueError, match="num_layers=20 has no network for images of height 32"):
        resnet_spec(20, 32)
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet_spec(17, 28)
    # SageMaker takes num_layers=18 with 3,28,28: the ImageNet table with the small stem, as for 29..32
    small = resnet_spec(18, 28)
    assert small.small_stem and small.units == (2, 2, 2, 2) and small.imagenet_depth_on_small_images
    assert resnet_spec(50, 28).units == (8, 8, 8) and not resnet_spec(50, 28).imagenet_depth_on_small_images


@pytest.mark.parametrize("layers,shape", [(20, (3, 28, 28)), (18, (3, 64, 64)), (18, (1, 40, 56)), (50, (3, 64, 48))])
def test_forward_shapes(layers, shape):
    model = ResNet(7, layers, shape).eval()
    with torch.no_grad():
        out = model(torch.rand(2, *shape) * 255)
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_parameter_count_by_hand():
    # ResNet-20, 10 classes, worked out from MXNet's tables: bn_data 6, conv0 432,
    # stage1 14,272, stage2 51,552, stage3 205,504, bn1 128, fc1 650
    assert sum(p.numel() for p in ResNet(10, 20, (3, 28, 28)).parameters()) == 272_544


def test_bn_data_gamma_is_fixed_and_init_is_mxnet_xavier():
    torch.manual_seed(0)
    model = ResNet(10, 18, (3, 224, 224))
    assert not model.bn_data.weight.requires_grad and torch.all(model.bn_data.weight == 1)
    w = model.stage4_unit2.conv2.weight
    fan_in = w[0].numel()
    assert abs(w.std().item() - math.sqrt(2 / fan_in)) < 0.02 * math.sqrt(2 / fan_in) * 10
    assert model.bn1.eps == 2e-5 and model.bn1.momentum == pytest.approx(0.1)


@pytest.mark.parametrize(("layers", "shape"), [(20, (1, 28, 28)), (18, (3, 32, 32)), (50, (3, 224, 224))])
def test_every_layer_starts_as_mxnets_initialiser_would(layers, shape):
    """Xavier(rnd_type='gaussian', factor_type='in', magnitude=2) for every conv and FC weight - N(0, 2/fan_in),
    fan_in = input channels x kernel area - and MXNet's defaults for the rest: biases and BN shifts 0, BN
    scales 1, moving means 0 and variances 1 (benchmarks/README.md, parity findings)."""
    torch.manual_seed(0)
    model = ResNet(10, layers, shape)
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            w = module.weight.detach()
            expected = math.sqrt(2 / w[0].numel())
            tolerance = 4 / math.sqrt(2 * w.numel())  # four standard errors of a sample std
            assert abs(w.std().item() / expected - 1) < tolerance, name
            assert abs(w.mean().item()) < 4 * expected / math.sqrt(w.numel()), name
            assert module.bias is None or torch.all(module.bias == 0), name
        elif isinstance(module, torch.nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
            assert torch.all(module.running_mean == 0) and torch.all(module.running_var == 1), name


@pytest.mark.parametrize("shape", [(3, 28, 28), (1, 28, 28), (3, 64, 64), (3, 61, 47)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_training_stem_folds_bn_data_into_conv0_exactly(shape, channels_last):
    """The folded stem (no gradient for conv0's input) is conv0(bn_data(x)): the same output, the same gradients
    for conv0's weights and bn_data's shift, the same running statistics; in float64 equal to rounding."""
    torch.manual_seed(0)
    folded = ResNet(4, 18 if shape[1] > 28 else 20, shape).double()
    with torch.no_grad():
        folded.bn_data.bias.uniform_(-2, 2)  # a shift of 0 would hide a wrong border
    plain = copy.deepcopy(folded)
    x = torch.rand(5, *shape, dtype=torch.float64) * 255
    if channels_last:
        folded, plain = folded.to(memory_format=torch.channels_last), plain.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    expected = plain.conv0(plain.bn_data(x))
    grad = torch.randn_like(expected)
    expected.backward(grad)
    out = folded.stem(x)
    out.backward(grad)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    for name in ("conv0.weight", "bn_data.bias"):
        got, want = folded.get_parameter(name).grad, plain.get_parameter(name).grad
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(folded.bn_data, name), getattr(plain.bn_data, name), rtol=1e-10, atol=0)
    assert folded.bn_data.num_batches_tracked == plain.bn_data.num_batches_tracked == 1
    assert folded.bn_data.weight.grad is None and plain.bn_data.weight.grad is None  # fix_gamma
    folded.eval()
    with torch.no_grad():
        torch.testing.assert_close(folded.stem(x), folded.conv0(folded.bn_data(x)))  # evaluation: the plain path
