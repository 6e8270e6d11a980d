"""The CIFAR crop-and-flip augmentation: exact flips, bounded shifts, per-sample draws, jit / vmap."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gfa_jax import augmentation

PADDING = augmentation.CROP_PADDING


def _images(batch=16, height=8, width=8, channels=3):
    # 1..255: distinct from the zero padding, so every shift is identifiable.
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.integers(1, 256, (batch, height, width, channels), dtype=np.uint8))


def _shifted(image, dy, dx):
    """``image`` with its content moved by (dy, dx) pixels, zeros where nothing moved in."""
    padded = np.pad(image, ((PADDING, PADDING), (PADDING, PADDING), (0, 0)))
    height, width = image.shape[:2]
    return padded[PADDING - dy:PADDING - dy + height, PADDING - dx:PADDING - dx + width]


def _shift_of(augmented, image):
    """The (dy, dx) with ``augmented == _shifted(image, dy, dx)``, or None."""
    for dy in range(-PADDING, PADDING + 1):
        for dx in range(-PADDING, PADDING + 1):
            if np.array_equal(augmented, _shifted(image, dy, dx)):
                return dy, dx
    return None


def test_augment_keeps_shape_and_dtype_under_jit():
    images = _images()
    out = jax.jit(augmentation.augment)(jax.random.key(0), images)
    assert out.shape == images.shape and out.dtype == jnp.uint8
    floats = images.astype(jnp.float32) / 127.5 - 1
    assert jax.jit(augmentation.augment)(jax.random.key(0), floats).dtype == jnp.float32


def test_flip_is_exactly_a_left_right_mirror_per_sample():
    images = _images(batch=64)
    out = np.asarray(augmentation.random_flip(jax.random.key(3), images))
    mirrored = np.asarray(images[:, :, ::-1])
    flipped = np.array([np.array_equal(o, m) for o, m in zip(out, mirrored)])
    kept = np.array([np.array_equal(o, x) for o, x in zip(out, np.asarray(images))])
    assert np.all(flipped ^ kept)
    assert 16 < flipped.sum() < 48  # about half of 64


def test_crop_moves_content_by_at_most_four_pixels_with_zero_padding():
    images = _images(batch=32)
    out = np.asarray(augmentation.random_crop(jax.random.key(1), images))
    shifts = [_shift_of(o, x) for o, x in zip(out, np.asarray(images))]
    assert None not in shifts
    assert len(set(shifts)) > 10  # each sample its own offset
    assert any(dy or dx for dy, dx in shifts) and np.any(out == 0)  # padding shows as 0


def test_augment_is_a_crop_of_the_image_or_of_its_mirror():
    images = _images(batch=32)
    out = np.asarray(augmentation.augment(jax.random.key(2), images))
    for o, x in zip(out, np.asarray(images)):
        assert _shift_of(o, x) is not None or _shift_of(o, x[:, ::-1]) is not None


def test_same_key_same_output_and_other_keys_differ():
    images = _images()
    first = augmentation.augment(jax.random.key(5), images)
    np.testing.assert_array_equal(first, augmentation.augment(jax.random.key(5), images))
    assert not np.array_equal(first, augmentation.augment(jax.random.key(6), images))


def test_vmap_over_keys_matches_separate_calls():
    images = _images(batch=4)
    keys = jax.random.split(jax.random.key(7), 3)
    stacked = jax.jit(jax.vmap(augmentation.augment, in_axes=(0, None)))(keys, images)
    assert stacked.shape == (3, *images.shape)
    for key, out in zip(keys, stacked):
        np.testing.assert_array_equal(out, augmentation.augment(key, images))


def test_registry_names():
    assert augmentation.get_augmentation("none") is None
    assert augmentation.get_augmentation("crop_flip") is augmentation.augment
    with pytest.raises(ValueError, match="crop_flip"):
        augmentation.get_augmentation("mixup")
