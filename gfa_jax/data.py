"""In-memory image classification datasets (MNIST, Fashion-MNIST, CIFAR-10/100) as uint8 arrays.

Every dataset is small enough to hold in memory, so `load_dataset` returns whole splits as numpy
arrays and leaves batching, shuffling and device placement to the training loop. Three sources
are supported, because the machines this runs on differ in what they can reach:

* ``"idx"``: the original IDX files of (Fashion-)MNIST, gzipped or not. Debian's
  ``dataset-fashion-mnist`` package installs Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``,
  which is found without configuration. MNIST directories that hold only the test set
  (``t10k-*``) are split deterministically: the first 80% (8,000 of 10,000) of the test images
  become the training split and the last 20% (2,000) the test split; the returned
  ``ImageDataset.source`` then starts with ``"idx-t10k-split:"`` so results can say so.
* ``"image_folder"``: ``<root>/{train,test}/<class name>/*.{jpg,jpeg,png}``, given as a directory
  or a ``.tar.gz`` archive of one (extracted once into the cache directory). Class folders are
  named as in ``DATASETS[name]["class_names"]`` ("/" replaced by "_"). Decoded arrays are
  cached as ``.npz`` in the cache directory (``~/.cache/gfa_jax``, or ``$GFA_JAX_CACHE``).
* ``"tfds"``: tensorflow-datasets' random-access ``tfds.data_source`` (works without TensorFlow).

``"auto"`` (the default) picks a local source when one exists and falls back to tfds.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import hashlib
import logging
import os
import pathlib
import shutil
import struct
import tarfile
import tempfile

import numpy as np
from PIL import Image

from gfa_jax import console

logger = logging.getLogger(__name__)

_CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                    "dog", "frog", "horse", "ship", "truck")
_CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm")
_FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# Per-dataset facts. "class_names" are in label order; "image_shape" is (H, W, C).
DATASETS = {
    "mnist": dict(num_classes=10, image_shape=(28, 28, 1),
                  class_names=tuple(str(digit) for digit in range(10)), tfds_name="mnist"),
    "fashion_mnist": dict(num_classes=10, image_shape=(28, 28, 1),
                          class_names=_FASHION_MNIST_CLASSES, tfds_name="fashion_mnist"),
    "cifar10": dict(num_classes=10, image_shape=(32, 32, 3),
                    class_names=_CIFAR10_CLASSES, tfds_name="cifar10"),
    "cifar100": dict(num_classes=100, image_shape=(32, 32, 3),
                     class_names=_CIFAR100_CLASSES, tfds_name="cifar100"),
}

SOURCES = ("auto", "idx", "image_folder", "tfds")

# Where distribution packages install IDX files; looked at when no data_dir is given.
DEFAULT_IDX_DIRS = {"fashion_mnist": pathlib.Path("/usr/share/datasets/fashion-mnist")}

# Datasets whose IDX test set may stand in for both splits when the training files are absent.
T10K_SPLIT_DATASETS = ("mnist",)
T10K_TRAIN_FRACTION = 0.8  # 8,000 of MNIST's 10,000 test images train, the last 2,000 test.

SUBSET_SEED = 0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
CACHE_DIR_ENV = "GFA_JAX_CACHE"

_IDX_UBYTE = 0x08
_IDX_FILES = {  # (split, kind) -> file name without the optional ".gz"
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_DECODE_CHUNK = 1000  # Images per thread-pool task: amortises task overhead on tiny images.


class DatasetNotFoundError(FileNotFoundError):
    """The requested dataset is not available from the tried source(s)."""


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Both splits of a dataset, fully in memory."""
    name: str
    train_images: np.ndarray  # uint8 [N, H, W, C]
    train_labels: np.ndarray  # int32 [N]
    test_images: np.ndarray  # uint8 [M, H, W, C]
    test_labels: np.ndarray  # int32 [M]
    num_classes: int
    source: str  # Which source actually loaded it, e.g. "idx:/usr/share/datasets/fashion-mnist".


def load_dataset(name: str, *, source: str = "auto", data_dir: str | None = None,
                 train_size: int = 0, test_size: int = 0, download: bool = False) -> ImageDataset:
    """Loads dataset `name` fully into memory.

    Args:
      name: one of `DATASETS`.
      source: one of `SOURCES` (see the module docstring). "auto" uses `data_dir` if given
        (IDX files, an image folder or its .tar.gz, else a tfds data_dir), otherwise a
        distribution-installed IDX directory if present, otherwise tfds.
      data_dir: directory or archive to read; None means the source's default location.
      train_size, test_size: if > 0, keep only that many examples: the first n of a permutation
        with the fixed seed `SUBSET_SEED`, in their original order. Subsets are therefore
        deterministic, nested (a smaller subset is part of a larger one) and roughly class-balanced.
      download: let tfds download and prepare the dataset (needs internet).

    Raises:
      ValueError: unknown name or source, or a malformed file.
      DatasetNotFoundError: the data is missing; the message lists the paths tried and how to
        get the data.
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid names: {', '.join(DATASETS)}.")
    if source not in SOURCES:
        raise ValueError(f"Unknown data source {source!r}; valid sources: {', '.join(SOURCES)}.")
    loaders = {"auto": _load_auto, "idx": _load_idx, "image_folder": _load_image_folder,
               "tfds": _load_tfds}
    try:
        dataset = loaders[source](name, data_dir, download)
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(_missing_data_message(name, str(error))) from error
    return dataclasses.replace(
        dataset,
        train_images=_subset(dataset.train_images, train_size),
        train_labels=_subset(dataset.train_labels, train_size),
        test_images=_subset(dataset.test_images, test_size),
        test_labels=_subset(dataset.test_labels, test_size))


# The input box of every model gfa-jax trains (the papers rescale images to [-1, 1]); attacks on
# them are called with ``bounds=MODEL_INPUT_BOUNDS``.
MODEL_INPUT_BOUNDS = (-1.0, 1.0)


def to_model_range(images):
    """Maps uint8 pixels to float32 in [-1, 1] (0 -> -1, 255 -> 1); numpy stays numpy, jax jax."""
    return images.astype(np.float32) / 127.5 - 1.0


def _subset(array: np.ndarray, size: int) -> np.ndarray:
    """First `size` rows of a fixed-seed permutation, kept in original order; all rows if 0."""
    if size <= 0 or size >= len(array):
        return array
    indices = np.random.default_rng(SUBSET_SEED).permutation(len(array))[:size]
    return array[np.sort(indices)]


def _missing_data_message(name: str, tried: str) -> str:
    """Error text naming the dataset, what was tried, and how to obtain the data."""
    hints = {
        "fashion_mnist": ["apt-get install dataset-fashion-mnist (installs the IDX files in "
                          f"{DEFAULT_IDX_DIRS['fashion_mnist']}), or pass data_dir=<directory "
                          "with train-/t10k-*-idx*-ubyte[.gz]>"],
        "mnist": ["pass data_dir=<directory with the IDX files train-/t10k-*-idx*-ubyte[.gz]>; "
                  "a directory with only the t10k-* test files also works (split 8,000/2,000)"],
        "cifar10": ["pass data_dir=<cifar10-jpg.tar.gz> or the folder made by "
                    "`tar xzf cifar10-jpg.tar.gz` (layout <root>/{train,test}/<class>/*.jpg)"],
        "cifar100": ["pass data_dir=<folder or .tar.gz laid out as "
                     "<root>/{train,test}/<class>/*.{jpg,png}>"],
    }[name]
    hints.append("with internet: load_dataset(..., source='tfds', download=True), "
                 "i.e. --config.data.download=True")
    return (f"Dataset {name!r} not found. Tried:\n  {tried}\n"
            "How to get it:\n" + "\n".join(f"  - {hint}" for hint in hints))


# ----------------------------------------------------------------------------------------------
# auto


def _load_auto(name: str, data_dir: str | None, download: bool) -> ImageDataset:
    """Tries the local sources that exist, then tfds; fails with every attempt listed."""
    failures = []
    for loader in _auto_loaders(name, data_dir):
        try:
            return loader(name, data_dir, download)
        except DatasetNotFoundError as error:
            failures.append(str(error))
    raise DatasetNotFoundError("\n  ".join(failures))


def _auto_loaders(name: str, data_dir: str | None) -> list:
    """The loaders "auto" tries, in order, judged from what `data_dir` contains."""
    if data_dir is None:
        return [_load_idx, _load_tfds] if name in DEFAULT_IDX_DIRS else [_load_tfds]
    path = pathlib.Path(data_dir)
    if not path.exists():
        raise DatasetNotFoundError(f"auto: data_dir {path} does not exist")
    if _is_archive(path):
        return [_load_image_folder]
    if path.is_dir() and any(path.glob("*-idx[13]-ubyte*")):
        return [_load_idx]
    if path.is_dir() and _find_split_root(path) is not None:
        return [_load_image_folder]
    return [_load_tfds]


# ----------------------------------------------------------------------------------------------
# IDX files


def _load_idx(name: str, data_dir: str | None, download: bool) -> ImageDataset:
    """Loads (Fashion-)MNIST from IDX files; MNIST may fall back to splitting the test set."""
    del download  # Local files only.
    if name not in ("mnist", "fashion_mnist"):
        raise ValueError(f"The idx source only holds mnist and fashion_mnist, not {name!r}.")
    if data_dir is None and name not in DEFAULT_IDX_DIRS:
        raise DatasetNotFoundError(f"idx: no default directory for {name!r}; pass data_dir")
    directory = pathlib.Path(data_dir) if data_dir is not None else DEFAULT_IDX_DIRS[name]
    files = {key: _find_idx_file(directory, stem) for key, stem in _IDX_FILES.items()}
    missing = [f"{directory / stem}[.gz]" for key, stem in _IDX_FILES.items() if files[key] is None]

    if files["test", "images"] is None or files["test", "labels"] is None:
        raise DatasetNotFoundError(f"idx: missing {', '.join(missing)}")
    test_images, test_labels = _read_idx_split(files["test", "images"], files["test", "labels"])
    if files["train", "images"] is not None and files["train", "labels"] is not None:
        train_images, train_labels = _read_idx_split(files["train", "images"],
                                                     files["train", "labels"])
        return _dataset(name, train_images, train_labels, test_images, test_labels,
                        source=f"idx:{directory}")
    if name not in T10K_SPLIT_DATASETS:
        raise DatasetNotFoundError(f"idx: missing {', '.join(missing)}")

    num_train = round(len(test_images) * T10K_TRAIN_FRACTION)
    logger.warning(
        "%s: no training files in %s; splitting the %d t10k test images: the first %d train, "
        "the last %d test. Report results as on this split.",
        name, directory, len(test_images), num_train, len(test_images) - num_train)
    return _dataset(name, test_images[:num_train], test_labels[:num_train],
                    test_images[num_train:], test_labels[num_train:],
                    source=f"idx-t10k-split:{directory}")


def _find_idx_file(directory: pathlib.Path, stem: str) -> pathlib.Path | None:
    """`directory/stem` or `directory/stem.gz`, whichever exists."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx_split(images_path: pathlib.Path,
                    labels_path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads one split's image and label IDX files and checks they agree."""
    images = read_idx(images_path, expected_ndim=3)[..., np.newaxis]
    labels = read_idx(labels_path, expected_ndim=1)
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} "
                         f"holds {len(labels)} labels.")
    return images, labels.astype(np.int32)


def read_idx(path: pathlib.Path, expected_ndim: int) -> np.ndarray:
    """Parses an IDX file of unsigned bytes (gzipped if the name ends in .gz).

    Format: two zero bytes, a type byte (0x08 = uint8), a byte with the number of dimensions,
    one big-endian uint32 per dimension, then the data in C order.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise ValueError(f"{path}: cannot read ({error}).") from error
    header_size = 4 + 4 * expected_ndim
    magic = raw[:4]
    if len(raw) < header_size or magic != bytes([0, 0, _IDX_UBYTE, expected_ndim]):
        raise ValueError(
            f"{path} is not an IDX file of {expected_ndim}-d unsigned bytes: magic number "
            f"{magic.hex()}, expected {bytes([0, 0, _IDX_UBYTE, expected_ndim]).hex()}.")
    shape = struct.unpack(f">{expected_ndim}I", raw[4:header_size])
    data = np.frombuffer(raw, dtype=np.uint8, offset=header_size)
    if data.size != np.prod(shape):
        raise ValueError(f"{path}: header announces shape {shape} ({np.prod(shape)} bytes) but "
                         f"{data.size} data bytes follow; the file is truncated or corrupt.")
    return data.reshape(shape).copy()  # Copy: frombuffer arrays are read-only.


# ----------------------------------------------------------------------------------------------
# image folders and archives


def _load_image_folder(name: str, data_dir: str | None, download: bool) -> ImageDataset:
    """Loads `<root>/{train,test}/<class>/*` from a folder or .tar.gz, via an .npz cache.

    The cache is keyed by a fingerprint of the archive file, or of every file in the folder, so
    it is rebuilt when they change. Decoding runs on threads, not processes: forking a process
    that may already hold JAX state is unsafe, and PIL releases the GIL while decoding.
    """
    del download  # Local files only.
    if data_dir is None:
        raise DatasetNotFoundError("image_folder: no data_dir given (a folder or .tar.gz)")
    given = pathlib.Path(data_dir)
    if not given.exists():
        raise DatasetNotFoundError(f"image_folder: {given} does not exist")
    is_archive = _is_archive(given)
    fingerprint = _fingerprint([given] if is_archive else sorted(given.rglob("*")))
    cache_file = _cache_dir() / f"{_cache_label(given)}.{name}.npz"
    arrays = _read_cache(cache_file, fingerprint)
    if arrays is None:
        arrays = _decode_image_folder(name, _extract_archive(given) if is_archive else given)
        _write_cache(cache_file, arrays, fingerprint)
    return _dataset(name, arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                    arrays["test_labels"], source=f"image_folder:{given}")


def _decode_image_folder(name: str, folder: pathlib.Path) -> dict[str, np.ndarray]:
    """Decodes both splits under `folder` into {"<split>_images", "<split>_labels"} arrays."""
    root = _find_split_root(folder)
    if root is None:
        raise DatasetNotFoundError(f"image_folder: no folder with train/ and test/ in {folder}")
    arrays = {}
    for split in ("train", "test"):
        labelled_paths = _list_images(name, root / split)
        arrays[f"{split}_images"] = _decode_images([path for path, _ in labelled_paths],
                                                   DATASETS[name]["image_shape"])
        arrays[f"{split}_labels"] = np.array([label for _, label in labelled_paths], np.int32)
    return arrays


def _is_archive(path: pathlib.Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: pathlib.Path) -> str:
    """`cifar10-jpg.tar.gz` -> `cifar10-jpg`."""
    return next(path.name[:-len(suffix)] for suffix in ARCHIVE_SUFFIXES
                if path.name.endswith(suffix))


def _cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get(CACHE_DIR_ENV, "~/.cache/gfa_jax")).expanduser()


def _cache_label(given: pathlib.Path) -> str:
    """Cache file prefix: the archive stem, or folder name plus a hash of its absolute path."""
    if _is_archive(given):
        return _archive_stem(given)
    path_hash = hashlib.sha1(str(given.resolve()).encode()).hexdigest()[:8]
    return f"{given.resolve().name}-{path_hash}"


def _extract_archive(archive: pathlib.Path) -> pathlib.Path:
    """Extracts `archive` once into `<cache dir>/<archive stem>`; returns that directory.

    Extraction goes to a temporary sibling that is renamed into place, so an interrupted or
    concurrent extraction never leaves a half-filled directory behind under the final name.
    """
    target = _cache_dir() / _archive_stem(archive)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        logger.info("Extracting %s to %s", archive, target)
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in console.progress(members, desc=f"extracting {archive.name}", unit="file"):
                tar.extract(member, staging, filter="data")
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # A concurrent extraction winning the rename is fine.
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _find_split_root(folder: pathlib.Path, max_depth: int = 2) -> pathlib.Path | None:
    """The shallowest directory at most `max_depth` below `folder` holding train/ and test/."""
    level = [folder]
    for _ in range(max_depth + 1):
        for directory in level:
            if (directory / "train").is_dir() and (directory / "test").is_dir():
                return directory
        level = sorted(child for directory in level for child in directory.iterdir()
                       if child.is_dir())
    return None


def class_folder_name(class_name: str) -> str:
    """Folder name of a class: its name with "/" (not allowed in names) replaced by "_"."""
    return class_name.replace("/", "_")


def _list_images(name: str, split_dir: pathlib.Path) -> list[tuple[pathlib.Path, int]]:
    """(path, label) of every image under `split_dir/<class>/`, sorted by label then file name.

    Hidden entries are skipped; any other class folder must be named by `class_folder_name`.
    """
    labels_by_folder = {class_folder_name(class_name): label
                        for label, class_name in enumerate(DATASETS[name]["class_names"])}
    labelled_paths = []
    for class_dir in sorted(child for child in split_dir.iterdir()
                            if child.is_dir() and not child.name.startswith(".")):
        if class_dir.name not in labels_by_folder:
            raise ValueError(f"{class_dir}: {class_dir.name!r} is not a {name} class; valid "
                             f"folder names: {', '.join(labels_by_folder)}.")
        label = labels_by_folder[class_dir.name]
        labelled_paths += [(path, label) for path in sorted(class_dir.iterdir())
                           if path.suffix.lower() in IMAGE_SUFFIXES
                           and not path.name.startswith(".")]  # e.g. macOS "._x.jpg" files
    if not labelled_paths:
        raise DatasetNotFoundError(f"image_folder: no images under {split_dir}/<class>/")
    return sorted(labelled_paths, key=lambda labelled: labelled[1])  # Stable: keeps name order.


def _fingerprint(paths: list[pathlib.Path]) -> str:
    """Hash of every path with its size and mtime: changes whenever one of the files does."""
    digest = hashlib.sha1()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(cache_file: pathlib.Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if `cache_file` exists and was made from the same files, else None."""
    if not cache_file.is_file():
        return None
    with np.load(cache_file) as cached:
        if str(cached["fingerprint"]) != fingerprint:
            logger.info("%s is stale (the image files changed); decoding again.", cache_file)
            return None
        return {key: cached[key] for key in cached.files if key != "fingerprint"}


def _write_cache(cache_file: pathlib.Path, arrays: dict[str, np.ndarray], fingerprint: str):
    """Writes the .npz through a temporary file and os.replace, so readers never see half of it."""
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{cache_file.name}-", dir=cache_file.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, fingerprint=np.array(fingerprint), **arrays)
        os.replace(temporary, cache_file)
    except BaseException:
        os.unlink(temporary)
        raise


def _decode_images(paths: list[pathlib.Path], image_shape: tuple[int, int, int]) -> np.ndarray:
    """Decodes image files into one uint8 [N, H, W, C] array, in chunks on a thread pool."""
    chunks = [paths[start:start + _DECODE_CHUNK] for start in range(0, len(paths), _DECODE_CHUNK)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        decoded = list(console.progress(pool.map(lambda chunk: _decode_chunk(chunk, image_shape), chunks),
                                        desc="decoding images", unit="chunk", total=len(chunks)))
    return np.concatenate(decoded)


def _decode_chunk(paths: list[pathlib.Path], image_shape: tuple[int, int, int]) -> np.ndarray:
    """Decodes `paths` with PIL, converted to grayscale or RGB as `image_shape` asks."""
    mode = "L" if image_shape[-1] == 1 else "RGB"
    images = np.empty((len(paths), *image_shape), np.uint8)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert(mode)).reshape(image.height, image.width, -1)
        if pixels.shape != image_shape:
            raise ValueError(f"{path}: image shape {pixels.shape}, expected {image_shape}.")
        images[index] = pixels
    return images


# ----------------------------------------------------------------------------------------------
# tensorflow-datasets


def _load_tfds(name: str, data_dir: str | None, download: bool) -> ImageDataset:
    """Reads both splits through `tfds.data_source` (random access; no TensorFlow needed)."""
    import tensorflow_datasets as tfds  # Imported here: slow, and only this source needs it.

    tfds_name = DATASETS[name]["tfds_name"]
    location = os.path.join(data_dir or tfds.core.constants.DATA_DIR, tfds_name)
    splits = {}
    for split in ("train", "test"):
        try:
            records = tfds.data_source(tfds_name, split=split, data_dir=data_dir,
                                       download=download)
        except Exception as error:  # tfds raises many types; all mean "not usable here".
            state = "download failed" if download else "not prepared and download=False"
            raise DatasetNotFoundError(
                f"tfds: {tfds_name!r} split {split!r} at {location} ({state}: "
                f"{type(error).__name__}: {str(error).splitlines()[0]})") from error
        splits[split] = _read_records(records, DATASETS[name]["image_shape"])
    return _dataset(name, *splits["train"], *splits["test"],
                    source=f"tfds:{tfds_name}" + (f"@{data_dir}" if data_dir else ""))


def _read_records(records, image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Copies every {"image", "label"} record of a tfds data source into two arrays."""
    images = np.empty((len(records), *image_shape), np.uint8)
    labels = np.empty(len(records), np.int32)
    for index, record in enumerate(records):
        if record["image"].shape != image_shape:
            raise ValueError(f"tfds record {index}: image shape {record['image'].shape}, "
                             f"expected {image_shape}.")
        images[index] = record["image"]
        labels[index] = record["label"]
    return images, labels


# ----------------------------------------------------------------------------------------------
# validation


def _dataset(name: str, train_images: np.ndarray, train_labels: np.ndarray,
             test_images: np.ndarray, test_labels: np.ndarray, source: str) -> ImageDataset:
    """Builds an ImageDataset after checking shapes, dtypes and label range against DATASETS."""
    facts = DATASETS[name]
    for split, images, labels in (("train", train_images, train_labels),
                                  ("test", test_images, test_labels)):
        where = f"{name} {split} split from {source}"
        expected_shape = (len(labels), *facts["image_shape"])
        if images.dtype != np.uint8 or images.shape != expected_shape or not len(labels):
            raise ValueError(f"{where}: got {images.dtype} images of shape {images.shape} and "
                             f"{len(labels)} labels; expected uint8 {expected_shape}, N > 0.")
        if labels.min() < 0 or labels.max() >= facts["num_classes"]:
            raise ValueError(f"{where}: labels outside [0, {facts['num_classes']}).")
    return ImageDataset(name=name, train_images=train_images,
                        train_labels=train_labels.astype(np.int32), test_images=test_images,
                        test_labels=test_labels.astype(np.int32),
                        num_classes=facts["num_classes"], source=source)
