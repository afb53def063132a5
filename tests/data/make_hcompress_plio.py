"""Writes tests/data/hcompress_plio.fits: HCOMPRESS_1 and PLIO_1 images as astropy writes them,
each followed by NAME_ASTROPY, a plain image of astropy's reading of it. The Rust tests check
torchfits' own decoders against these, whole, in sections and on every read path.
Run: python3 tests/data/make_hcompress_plio.py

HCOMPRESS: 8-, 16- and 32-bit integers (lossless, and lossy with SCALE, smoothed or not), floats
quantised (dithered) with SCALE and SMOOTH, tiles of odd sizes and edge tiles cut short, bands
of 5 rows. PLIO: 8-, 16- and 32-bit integers, up to 2^24 - 1, with long runs and single pixels.
"""
import os
import tempfile

import numpy as np
from astropy.io import fits

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261206)


def smooth_image(shape, scale, dtype):
    """A sky-like image: a gradient, two sources and noise, so every coefficient level is used."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    img = 0.3 * x + 0.2 * y + 900 * np.exp(-((x - 20) ** 2 + (y - 15) ** 2) / 30.0)
    img += 400 * np.exp(-((x - shape[1] * 0.7) ** 2 + (y - shape[0] * 0.6) ** 2) / 8.0)
    img += rng.normal(0, 5, shape)
    return (img * scale).astype(dtype)


def runs(shape, high, dtype):
    """A mask-like image: runs of values, zeros, and single pixels, up to `high`."""
    img = np.zeros(shape, np.int64)
    for r in range(shape[0]):
        x = 0
        while x < shape[1]:
            n = int(rng.integers(1, 12))
            img[r, x:x + n] = 0 if rng.random() < 0.3 else int(rng.integers(0, high))
            x += n
    img[::7, ::5] = high - 1
    return img.astype(dtype)


cases = [
    ("HC_I16", smooth_image((60, 70), 1, np.int16), dict(tile_shape=(16, 16))),
    ("HC_I16_ODD", smooth_image((45, 37), 3, np.int16), dict(tile_shape=(13, 16))),
    ("HC_U8", np.clip(smooth_image((40, 40), 0.2, np.float64), 0, 255).astype(np.uint8), dict(tile_shape=(20, 20))),
    ("HC_I32", smooth_image((50, 50), 40000, np.int32), dict(tile_shape=(25, 25))),
    ("HC_I16_SCALE", smooth_image((64, 64), 1, np.int16), dict(tile_shape=(32, 32), hcomp_scale=4)),
    ("HC_I16_SMOOTH", smooth_image((64, 64), 1, np.int16), dict(tile_shape=(32, 32), hcomp_scale=6,
                                                               hcomp_smooth=1)),
    ("HC_I32_BAND", smooth_image((30, 64), 1000, np.int32), dict(tile_shape=(5, 64))),
    ("HC_F32", smooth_image((48, 40), 0.01, np.float32), dict(tile_shape=(16, 20), quantize_level=8.0,
                                                              hcomp_scale=2, hcomp_smooth=1)),
]
plio = [
    ("PLIO_U8", runs((30, 41), 256, np.uint8), dict(tile_shape=(10, 41))),
    ("PLIO_I16", runs((33, 50), 32767, np.int16), dict(tile_shape=(7, 25))),
    ("PLIO_I32", runs((40, 60), 2 ** 24, np.int32), dict(tile_shape=(1, 60))),
]
hdus = [fits.PrimaryHDU()]
for name, data, kw in cases:
    hdus.append(fits.CompImageHDU(data, name=name, compression_type="HCOMPRESS_1", **kw))
for name, data, kw in plio:
    hdus.append(fits.CompImageHDU(data, name=name, compression_type="PLIO_1", **kw))
with tempfile.TemporaryDirectory() as tmp:
    first = os.path.join(tmp, "compressed.fits")
    fits.HDUList(hdus).writeto(first)
    out = [fits.PrimaryHDU()]
    with fits.open(first) as hl, fits.open(first, disable_image_compression=True) as raw:
        for (name, data, kw), compressed in zip(cases + plio, raw[1:]):
            got = np.asarray(hl[name].data)
            lossless = "hcomp_scale" not in kw and data.dtype.kind != "f"
            assert not lossless or (got == data).all(), name
            out.append(fits.BinTableHDU(data=compressed.data, header=compressed.header))
            out.append(fits.ImageHDU(got, name=f"{name}_ASTROPY"))
        fits.HDUList(out).writeto(os.path.join(here, "hcompress_plio.fits"), overwrite=True)
with fits.open(os.path.join(here, "hcompress_plio.fits")) as hl:
    for h in hl[1:]:
        print(h.name, type(h).__name__, h.shape, h.header.get("ZCMPTYPE", ""))
