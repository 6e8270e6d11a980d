"""Writers of small fake datasets in the real on-disk formats."""
import gzip
import pathlib
import struct

import numpy as np


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    """Writes a uint8 array as an IDX file, gzipped if `path` ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
