"""The standard CIFAR training augmentation, as pure functions that run inside the jitted train step.

``crop_flip`` (:func:`augment`) is torchvision's ``RandomCrop(32, padding=4)`` followed by ``RandomHorizontalFlip()``
(the ResNet / WRN / VGG CIFAR recipes): each image is zero-padded by 4 pixels on every side, a
window of the original size is cut at a uniformly random offset (0..8 in each direction, so the
content moves by at most 4 pixels), and the result is mirrored left-right with probability 1/2.
Every image of a batch gets its own draws.

Padding is applied to the uint8 batch before :func:`gfa_jax.data.to_model_range`, as torchvision
pads the image before ``ToTensor`` / ``Normalize``: padded pixels are 0, i.e. -1 in model units.
Chosen by ``config.data.augmentation`` (``"none"``, the default, or ``"crop_flip"``).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

CROP_PADDING = 4


def random_crop(key: Array, images: Array, padding: int = CROP_PADDING) -> Array:
    """Per image ``[B, H, W, C]``: zero-pad by ``padding`` and cut an ``H x W`` window at a uniform
    offset in ``[0, 2 * padding]`` per axis; same shape and dtype."""
    _, height, width, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * padding + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (height, width, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def random_flip(key: Array, images: Array) -> Array:
    """Mirror each image ``[B, H, W, C]`` left-right with probability 1/2."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)


def augment(key: Array, images: Array) -> Array:
    """The standard CIFAR augmentation (``crop_flip``): :func:`random_crop` with 4-pixel zero padding,
    then :func:`random_flip`, each image its own draws; ``[B, H, W, C]`` of any dtype, jittable."""
    crop_key, flip_key = jax.random.split(key)
    return random_flip(flip_key, random_crop(crop_key, images))


AUGMENTATIONS: dict[str, Callable[[Array, Array], Array] | None] = {
    "none": None,
    "crop_flip": augment,
}


def get_augmentation(name: str) -> Callable[[Array, Array], Array] | None:
    """``augment(key, images) -> images`` of ``config.data.augmentation``, or None for ``"none"``."""
    try:
        return AUGMENTATIONS[name]
    except KeyError:
        raise ValueError(f"Unknown data.augmentation {name!r}; choose one of {sorted(AUGMENTATIONS)}.") from None
