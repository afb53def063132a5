"""Writes tests/data/quantized.fits: RICE_1 and GZIP_1/2 images of floats as astropy writes them
(every ZQUANTIZ, ZDITHER0 near the end of the random sequence, tiles of more than 10000 pixels so
the dither index wraps inside a tile, NaN, exact zeros, f64, a tile stored as gzipped floats,
gzipped tiles of quantised and of lossless floats), and
for each HDU NAME, tests/data/quantized_NAME.npy: the image as astropy decodes it. The Rust tests
check torchfits' own decoding against these bit for bit. Run: python3 tests/data/make_quantized.py
"""
import os

import numpy as np
from astropy.io import fits

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261124)


def noisy(shape):
    img = rng.normal(100.0, 10.0, shape).astype(np.float32)
    img[3, 5] = np.nan
    img[-2, :9] = np.nan
    img[7, 10:20] = 0.0
    return img


dither = {"SUBTRACTIVE_DITHER_1": 1, "SUBTRACTIVE_DITHER_2": 2, "NO_DITHER": -1}
hdus = [fits.PrimaryHDU()]
cases = [
    ("DITHER1_ROWS", noisy((60, 70)), dict(quantize_method=1, tile_shape=(1, 70))),
    ("DITHER2_TILES", noisy((60, 70)), dict(quantize_method=2, tile_shape=(16, 16))),
    ("NO_DITHER", noisy((60, 70)), dict(quantize_method=-1, tile_shape=(7, 9))),
    # tile 2 starts at the end of the sequence (ZDITHER0 = 9999); 12000-pixel tiles
    ("SEED_WRAPS", noisy((200, 120)), dict(quantize_method=1, tile_shape=(100, 120), dither_seed=9999)),
    ("F64", noisy((60, 70)).astype(np.float64) * 1.5, dict(quantize_method=1, tile_shape=(20, 35))),
]
inf_row = noisy((60, 70))
inf_row[0, :] = np.inf  # a tile astropy cannot quantise: stored as gzipped floats
cases.append(("GZIP_TILE", inf_row, dict(quantize_method=1, tile_shape=(1, 70))))
for name, data, kw in cases:
    hdus.append(fits.CompImageHDU(data, name=name, compression_type="RICE_1", quantize_level=16.0, **kw))
# the same conventions with gzipped tiles: quantised (GZIP_1, and GZIP_2's shuffled bytes), and
# floats stored as they are (quantize_level 0), +inf included
gzip_cases = [
    ("GZIP1_DITHER1", noisy((60, 70)), dict(compression_type="GZIP_1", quantize_level=16.0, quantize_method=1,
                                            tile_shape=(10, 70))),
    ("GZIP2_DITHER2", noisy((60, 70)), dict(compression_type="GZIP_2", quantize_level=16.0, quantize_method=2,
                                            tile_shape=(16, 16))),
    ("GZIP2_LOSSLESS", inf_row, dict(compression_type="GZIP_2", quantize_level=0.0, tile_shape=(7, 70))),
    ("GZIP1_LOSSLESS_F64", inf_row.astype(np.float64), dict(compression_type="GZIP_1", quantize_level=0.0,
                                                            tile_shape=(7, 9))),
]
for name, data, kw in gzip_cases:
    hdus.append(fits.CompImageHDU(data, name=name, **kw))
cases += gzip_cases
path = os.path.join(here, "quantized.fits")
fits.HDUList(hdus).writeto(path, overwrite=True)
with fits.open(path) as hl:
    for name, _, _ in cases:
        np.save(os.path.join(here, f"quantized_{name}.npy"), np.asarray(hl[name].data))
with fits.open(path, disable_image_compression=True) as hl:
    for h in hl[1:]:
        print(h.name, h.columns.names, h.header.get("ZQUANTIZ"), h.header.get("ZDITHER0"))
