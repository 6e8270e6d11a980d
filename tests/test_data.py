"""Tests for gfa_jax.data: every source on small data written to tmp_path; nothing downloads."""
import gzip
import logging
import os
import pathlib
import tarfile

import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from fake_data import write_idx
from PIL import Image

from gfa_jax import data

SHARED_DATA = os.environ.get("GFA_JAX_SHARED_DATA")


def write_idx_split(directory: pathlib.Path, prefix: str, num: int, seed: int,
                    suffix: str = ".gz") -> tuple[np.ndarray, np.ndarray]:
    """Writes random `<prefix>-{images,labels}` IDX files; returns (images [N,28,28], labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (num, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, num, dtype=np.uint8)
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


def write_image(path: pathlib.Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze()).save(path)


def make_cifar_folder(root: pathlib.Path) -> dict[str, np.ndarray]:
    """A tiny CIFAR-10 image folder: PNGs (lossless) and one JPEG; returns the PNG pixels."""
    rng = np.random.default_rng(0)
    pixels = {key: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
              for key in ("airplane0", "airplane1", "truck0", "cat_test")}
    write_image(root / "train/airplane/0000.png", pixels["airplane0"])
    write_image(root / "train/airplane/0001.png", pixels["airplane1"])
    write_image(root / "train/truck/0000.png", pixels["truck0"])
    write_image(root / "train/cat/0000.jpg", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    write_image(root / "test/cat/0000.png", pixels["cat_test"])
    return pixels


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Points the extraction / .npz cache at a fresh directory."""
    directory = tmp_path / "cache"
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(directory))
    return directory


def test_dataset_facts_are_consistent():
    for facts in data.DATASETS.values():
        assert len(facts["class_names"]) == facts["num_classes"]
    assert list(data.DATASETS["cifar10"]["class_names"]) == sorted(
        data.DATASETS["cifar10"]["class_names"])
    assert list(data.DATASETS["cifar100"]["class_names"]) == sorted(
        data.DATASETS["cifar100"]["class_names"])


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_idx_loads_exact_contents(tmp_path, suffix):
    train_images, train_labels = write_idx_split(tmp_path, "train", 12, seed=1, suffix=suffix)
    test_images, test_labels = write_idx_split(tmp_path, "t10k", 7, seed=2, suffix=suffix)

    dataset = data.load_dataset("fashion_mnist", source="idx", data_dir=str(tmp_path))

    np.testing.assert_array_equal(dataset.train_images, train_images[..., None])
    np.testing.assert_array_equal(dataset.train_labels, train_labels)
    np.testing.assert_array_equal(dataset.test_images, test_images[..., None])
    np.testing.assert_array_equal(dataset.test_labels, test_labels)
    assert dataset.train_images.dtype == np.uint8 and dataset.train_labels.dtype == np.int32
    assert dataset.num_classes == 10
    assert dataset.source == f"idx:{tmp_path}"


def test_auto_recognises_idx_directory(tmp_path):
    write_idx_split(tmp_path, "train", 5, seed=1)
    write_idx_split(tmp_path, "t10k", 5, seed=2)
    assert data.load_dataset("mnist", data_dir=str(tmp_path)).source == f"idx:{tmp_path}"


def test_idx_bad_magic_is_rejected(tmp_path):
    write_idx_split(tmp_path, "t10k", 5, seed=2)
    bad_header = b"\x00\x00\x0d\x03" + bytes(40)  # Type 0x0d (float32), not 0x08 (uint8).
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bad_header))
    with pytest.raises(ValueError, match="magic number 00000d03"):
        data.load_dataset("mnist", source="idx", data_dir=str(tmp_path))


def test_idx_truncated_file_is_rejected(tmp_path):
    images, _ = write_idx_split(tmp_path, "t10k", 5, seed=2, suffix="")
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(path, expected_ndim=3)


def test_mnist_t10k_only_is_split_80_20(tmp_path, caplog):
    images, labels = write_idx_split(tmp_path, "t10k", 50, seed=3)

    with caplog.at_level(logging.WARNING, logger="gfa_jax.data"):
        dataset = data.load_dataset("mnist", source="idx", data_dir=str(tmp_path))

    assert dataset.source == f"idx-t10k-split:{tmp_path}"
    np.testing.assert_array_equal(dataset.train_images[..., 0], images[:40])
    np.testing.assert_array_equal(dataset.test_images[..., 0], images[40:])
    np.testing.assert_array_equal(dataset.test_labels, labels[40:])
    assert "splitting the 50 t10k test images" in caplog.text


def test_fashion_mnist_without_train_files_fails(tmp_path):
    write_idx_split(tmp_path, "t10k", 5, seed=2)
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load_dataset("fashion_mnist", source="idx", data_dir=str(tmp_path))
    assert str(tmp_path / "train-images-idx3-ubyte") in str(error.value)
    assert "apt-get install dataset-fashion-mnist" in str(error.value)


def test_image_folder_labels_pixels_and_cache(tmp_path, cache_dir, monkeypatch):
    pixels = make_cifar_folder(tmp_path / "cifar")

    dataset = data.load_dataset("cifar10", data_dir=str(tmp_path / "cifar"))

    assert dataset.source == f"image_folder:{tmp_path / 'cifar'}"
    assert dataset.train_images.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(dataset.train_labels, [0, 0, 3, 9])  # airplane x2, cat, truck
    np.testing.assert_array_equal(dataset.train_images[0], pixels["airplane0"])
    np.testing.assert_array_equal(dataset.train_images[1], pixels["airplane1"])
    np.testing.assert_array_equal(dataset.train_images[3], pixels["truck0"])
    np.testing.assert_array_equal(dataset.test_images[0], pixels["cat_test"])
    np.testing.assert_array_equal(dataset.test_labels, [3])

    (cache_file,) = cache_dir.glob("*.cifar10.npz")
    mtime = cache_file.stat().st_mtime_ns
    monkeypatch.setattr(data, "_decode_images", lambda *args: pytest.fail("cache not used"))
    cached = data.load_dataset("cifar10", source="image_folder", data_dir=str(tmp_path / "cifar"))
    np.testing.assert_array_equal(cached.train_images, dataset.train_images)
    assert cache_file.stat().st_mtime_ns == mtime


def test_image_folder_cache_is_rebuilt_when_files_change(tmp_path, cache_dir):
    make_cifar_folder(tmp_path / "cifar")
    assert len(data.load_dataset("cifar10", data_dir=str(tmp_path / "cifar")).test_labels) == 1
    write_image(tmp_path / "cifar/test/ship/0000.png", np.zeros((32, 32, 3), np.uint8))
    reloaded = data.load_dataset("cifar10", data_dir=str(tmp_path / "cifar"))
    np.testing.assert_array_equal(reloaded.test_labels, [3, 8])


def test_image_folder_from_tar_gz(tmp_path, cache_dir, monkeypatch):
    make_cifar_folder(tmp_path / "tiny-cifar")
    archive = tmp_path / "tiny-cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tiny-cifar", arcname="tiny-cifar")
    from_folder = data.load_dataset("cifar10", data_dir=str(tmp_path / "tiny-cifar"))

    from_archive = data.load_dataset("cifar10", data_dir=str(archive))

    assert from_archive.source == f"image_folder:{archive}"
    assert (cache_dir / "tiny-cifar/tiny-cifar/train/airplane/0000.png").is_file()
    assert not list(cache_dir.glob(".tiny-cifar-*"))  # No leftover staging directory.
    np.testing.assert_array_equal(from_archive.train_images, from_folder.train_images)
    np.testing.assert_array_equal(from_archive.train_labels, from_folder.train_labels)
    monkeypatch.setattr(data, "_extract_archive", lambda *args: pytest.fail("re-extracted"))
    monkeypatch.setattr(data, "_decode_images", lambda *args: pytest.fail("cache not used"))
    data.load_dataset("cifar10", source="image_folder", data_dir=str(archive))


def test_image_folder_grayscale_gets_channel_axis(tmp_path, cache_dir):
    digit = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    write_image(tmp_path / "digits/train/7/a.png", digit)
    write_image(tmp_path / "digits/test/3/b.png", digit)
    dataset = data.load_dataset("mnist", source="image_folder", data_dir=str(tmp_path / "digits"))
    assert dataset.train_images.shape == (1, 28, 28, 1)
    np.testing.assert_array_equal(dataset.train_images[0, ..., 0], digit)
    np.testing.assert_array_equal(dataset.train_labels, [7])


def test_image_folder_unknown_class_is_rejected(tmp_path, cache_dir):
    make_cifar_folder(tmp_path / "cifar")
    write_image(tmp_path / "cifar/train/unicorn/0000.png", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="'unicorn' is not a cifar10 class"):
        data.load_dataset("cifar10", data_dir=str(tmp_path / "cifar"))


def test_image_folder_wrong_image_size_is_rejected(tmp_path, cache_dir):
    make_cifar_folder(tmp_path / "cifar")
    write_image(tmp_path / "cifar/train/dog/big.png", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"image shape \(64, 64, 3\), expected \(32, 32, 3\)"):
        data.load_dataset("cifar10", data_dir=str(tmp_path / "cifar"))


@pytest.mark.parametrize("name, image_shape, num_classes", [
    ("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10), ("cifar100", (32, 32, 3), 100)])
def test_tfds_mock_data(name, image_shape, num_classes):
    with tfds.testing.mock_data(num_examples=6):
        dataset = data.load_dataset(name, source="tfds")
    assert dataset.train_images.shape == (6, *image_shape)
    assert dataset.test_images.shape == (6, *image_shape)
    assert dataset.train_images.dtype == np.uint8 and dataset.test_labels.dtype == np.int32
    assert dataset.num_classes == num_classes
    assert dataset.source == f"tfds:{name}"


def test_tfds_missing_dataset_explains_how_to_get_it(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load_dataset("cifar10", source="tfds", data_dir=str(tmp_path))
    message = str(error.value)
    assert str(tmp_path / "cifar10") in message
    assert "download=True" in message and "tar xzf cifar10-jpg.tar.gz" in message


def test_missing_data_dir_names_path_and_hint(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load_dataset("fashion_mnist", data_dir=str(missing))
    assert str(missing) in str(error.value)
    assert "apt-get install dataset-fashion-mnist" in str(error.value)


def test_auto_without_debian_files_lists_every_attempt(tmp_path, monkeypatch):
    monkeypatch.setitem(data.DEFAULT_IDX_DIRS, "fashion_mnist", tmp_path / "not-installed")
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.load_dataset("fashion_mnist")
    message = str(error.value)
    assert str(tmp_path / "not-installed" / "t10k-images-idx3-ubyte") in message
    assert "tfds: 'fashion_mnist'" in message and "download=True" in message


@pytest.mark.parametrize("kwargs, valid", [(dict(name="svhn"), "cifar100"),
                                           (dict(name="mnist", source="web"), "image_folder")])
def test_unknown_name_or_source_lists_valid_ones(kwargs, valid):
    with pytest.raises(ValueError, match=valid):
        data.load_dataset(**kwargs)


def test_subsets_are_deterministic_and_nested(tmp_path):
    write_idx_split(tmp_path, "train", 100, seed=1)
    write_idx_split(tmp_path, "t10k", 30, seed=2)
    full = data.load_dataset("mnist", data_dir=str(tmp_path))
    small = data.load_dataset("mnist", data_dir=str(tmp_path), train_size=10, test_size=5)
    larger = data.load_dataset("mnist", data_dir=str(tmp_path), train_size=20, test_size=500)

    assert small.train_images.shape == (10, 28, 28, 1) and len(small.test_labels) == 5
    assert len(larger.test_labels) == 30  # Asking for more than there is keeps everything.
    rows = {image.tobytes(): label for image, label in zip(full.train_images, full.train_labels)}
    small_rows = {image.tobytes() for image in small.train_images}
    assert small_rows <= {image.tobytes() for image in larger.train_images}
    assert all(rows[image.tobytes()] == label
               for image, label in zip(small.train_images, small.train_labels))
    again = data.load_dataset("mnist", data_dir=str(tmp_path), train_size=10, test_size=5)
    np.testing.assert_array_equal(again.train_images, small.train_images)


@pytest.mark.parametrize("as_array", [np.asarray, jnp.asarray])
def test_to_model_range(as_array):
    scaled = data.to_model_range(as_array(np.array([0, 255, 127], np.uint8)))
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(np.asarray(scaled), [-1.0, 1.0, 127 / 127.5 - 1], atol=1e-6)


@pytest.mark.skipif(not data.DEFAULT_IDX_DIRS["fashion_mnist"].is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_default_path():
    dataset = data.load_dataset("fashion_mnist", source="auto", train_size=1000, test_size=500)
    assert dataset.source == f"idx:{data.DEFAULT_IDX_DIRS['fashion_mnist']}"
    assert dataset.train_images.shape == (1000, 28, 28, 1)
    assert dataset.test_images.shape == (500, 28, 28, 1)
    assert len(np.unique(dataset.train_labels)) == 10


@pytest.mark.skipif(not SHARED_DATA, reason="GFA_JAX_SHARED_DATA is not set")
def test_shared_mnist_t10k():
    dataset = data.load_dataset("mnist", data_dir=os.path.join(SHARED_DATA, "mnist-t10k"))
    assert dataset.source.startswith("idx-t10k-split:")
    assert dataset.train_images.shape == (8000, 28, 28, 1)
    assert dataset.test_images.shape == (2000, 28, 28, 1)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA, reason="GFA_JAX_SHARED_DATA is not set")
def test_shared_cifar10_archive():
    """Uses the real cache directory: the first run extracts and decodes (about a minute)."""
    dataset = data.load_dataset("cifar10", data_dir=os.path.join(SHARED_DATA, "cifar10-jpg.tar.gz"))
    assert dataset.train_images.shape == (50000, 32, 32, 3)
    assert dataset.test_images.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(dataset.test_labels), [1000] * 10)
