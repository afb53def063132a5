"""Writes tests/data/compressed.fits: one small tile-compressed image per algorithm and pixel type,
written by astropy (cfitsio's own codecs), read by the Rust tests.

Every integer image holds pattern(shape) below, which the Rust tests recompute, so lossless
decoding is checked value by value. Run: python3 tests/data/make_fixtures.py
"""
import os

import numpy as np
from astropy.io import fits

here = os.path.dirname(os.path.abspath(__file__))


def pattern(shape, lo, hi):
    """(sum_k idx_k * (7, 13, 31, 61)[k]) * 2654435761 mod (hi - lo) + lo, C order."""
    idx = np.indices(shape).reshape(len(shape), -1).astype(np.int64)
    weights = np.array([7, 13, 31, 61][: len(shape)], dtype=np.int64).reshape(-1, 1)
    v = ((idx * weights).sum(axis=0) * 2654435761) % (hi - lo) + lo
    return v.reshape(shape)


hdus = [fits.PrimaryHDU()]


def add(name, data, **kw):
    hdus.append(fits.CompImageHDU(data, name=name, **kw))


add("RICE_I16", pattern((40, 50), -3000, 3000).astype(np.int16), compression_type="RICE_1", tile_shape=(16, 16))
add("RICE_ROWS_I32", pattern((40, 50), -100000, 100000).astype(np.int32), compression_type="RICE_1")
add("GZIP1_I32", pattern((40, 50), -100000, 100000).astype(np.int32), compression_type="GZIP_1", tile_shape=(10, 25))
add("GZIP2_I16", pattern((40, 50), -3000, 3000).astype(np.int16), compression_type="GZIP_2", tile_shape=(8, 50))
add("HCOMP_I16", pattern((40, 50), -3000, 3000).astype(np.int16), compression_type="HCOMPRESS_1", tile_shape=(20, 25))
add("PLIO_I32", pattern((40, 50), 0, 4096).astype(np.int32), compression_type="PLIO_1", tile_shape=(10, 50))
add("RICE_U16", pattern((40, 50), 0, 65535).astype(np.uint16), compression_type="RICE_1", tile_shape=(16, 16))
add("RICE_CUBE_I16", pattern((6, 20, 30), -3000, 3000).astype(np.int16), compression_type="RICE_1", tile_shape=(1, 8, 30))
smooth = (1000.0 + pattern((40, 50), 0, 1000) * 0.37).astype(np.float32)
add("RICE_F32_DITHER", smooth, compression_type="RICE_1", tile_shape=(16, 16),
    quantize_level=16.0, quantize_method=1)
add("GZIP2_F64_LOSSLESS", smooth.astype(np.float64) / 3.0, compression_type="GZIP_2", tile_shape=(20, 50),
    quantize_level=0.0)
# large enough (2 MiB decoded) for reads split into tile-row bands across threads; compresses to
# little because each tile row is piecewise constant: value = 7 * y + x // 128
yy, xx = np.mgrid[0:1024, 0:1024]
big = (7 * yy + xx // 128).astype(np.int16)
add("RICE_BIG_I16", big, compression_type="RICE_1", tile_shape=(16, 1024))
add("GZIP_BIG_TILES_I16", big, compression_type="GZIP_2", tile_shape=(64, 64))
fits.HDUList(hdus).writeto(os.path.join(here, "compressed.fits"), overwrite=True)

# the dithered float image as astropy decodes it, for an exact comparison
with fits.open(os.path.join(here, "compressed.fits")) as hl:
    np.save(os.path.join(here, "rice_f32_dither.npy"), np.asarray(hl["RICE_F32_DITHER"].data))
    for h in hl[1:]:
        print(h.name, h.data.dtype, h.data.shape, h.header.get("ZCMPTYPE"), h._header.get("ZQUANTIZ"))
