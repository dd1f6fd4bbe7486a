"""SageMaker's ResNet recipes: which depths exist at which image height, and the units and filters of each.

Kept apart from the network (``roost.models.resnet``) because the hyperparameter schema checks a depth
against an image shape wherever a request arrives, and the server and the CLI should not import PyTorch
to do it.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.errors import UserError

IMAGENET_UNITS = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
    152: [3, 8, 36, 3],
    200: [3, 24, 36, 3],
    269: [3, 30, 48, 8],
}
#: depths SageMaker documents for large images (transfer learning exists for these)
LARGE_IMAGE_DEPTHS = (18, 34, 50, 101, 152, 200)
#: depths SageMaker documents for small images (height <= 28)
SMALL_IMAGE_DEPTHS = (20, 32, 44, 56, 110)


@dataclass(frozen=True)
class ResNetSpec:
    num_layers: int
    units: tuple[int, ...]
    filters: tuple[int, ...]  # stem, then one per stage
    bottleneck: bool
    small_stem: bool  # 3x3 stride-1 stem (height <= 32) instead of 7x7/2 + max pool
    #: an ImageNet depth at a height MXNet's resnet.py has no recipe for (<= 28): see resnet_spec
    imagenet_depth_on_small_images: bool = False


class UnsupportedDepth(UserError):
    """A depth MXNet's resnet.py has no recipe for at this image height."""


def resnet_spec(num_layers: int, height: int) -> ResNetSpec:
    """MXNet's ``get_symbol`` depth table; :class:`UnsupportedDepth` for a depth it has no recipe for.

    MXNet refuses an ImageNet depth such as 18 for images of height <= 28, but SageMaker accepts
    ``num_layers=18, image_shape=3,28,28`` (its own examples pair them). Roost builds the network the same
    code builds for heights 29..32: the ImageNet depth table with the small-image 3x3 stem. The small-image
    depths (6n+2 below 164, 9n+2 from 164, e.g. 20, 50, 152, 200) keep their own recipe.
    """
    # get_symbol picks the table with height <= 28, resnet() the stem with
    # height <= 32: for 29..32 the ImageNet table meets the 3x3 stem.
    units: tuple[int, ...]
    filters: tuple[int, ...]
    small_recipe = (num_layers - 2) % 9 == 0 and num_layers >= 164 or (num_layers - 2) % 6 == 0 and num_layers < 164
    if height <= 28 and not small_recipe and num_layers in IMAGENET_UNITS:
        spec = resnet_spec(num_layers, 32)
        return ResNetSpec(
            spec.num_layers,
            spec.units,
            spec.filters,
            spec.bottleneck,
            small_stem=True,
            imagenet_depth_on_small_images=True,
        )
    if height <= 28:
        if (num_layers - 2) % 9 == 0 and num_layers >= 164:
            per, filters, bottleneck = (num_layers - 2) // 9, (16, 64, 128, 256), True
        elif (num_layers - 2) % 6 == 0 and num_layers < 164:
            per, filters, bottleneck = (num_layers - 2) // 6, (16, 16, 32, 64), False
        else:
            raise UnsupportedDepth(
                f"num_layers={num_layers} has no network for images of height {height} (<= 28): use 6n+2 below 164 "
                f"(e.g. {', '.join(map(str, SMALL_IMAGE_DEPTHS))}), 9n+2 from 164 (e.g. 164, 1001), or an "
                f"ImageNet depth ({', '.join(map(str, IMAGENET_UNITS))})"
            )
        if per < 1:
            raise UnsupportedDepth(
                f"num_layers={num_layers} is too shallow: the smallest network for height <= 28 is 8"
            )
        units = (per, per, per)
    else:
        if num_layers not in IMAGENET_UNITS:
            raise UnsupportedDepth(
                f"num_layers={num_layers} has no network for images of height {height} (> 28): "
                f"use one of {', '.join(map(str, IMAGENET_UNITS))}"
            )
        units = tuple(IMAGENET_UNITS[num_layers])
        bottleneck = num_layers >= 50
        filters = (64, 256, 512, 1024, 2048) if bottleneck else (64, 64, 128, 256, 512)
    return ResNetSpec(num_layers, units, filters, bottleneck, small_stem=height <= 32)
