"""Writes tests/data/older_layouts.fits: tile-compressed images in layouts that writers other than
today's fpack and astropy produced, and that astropy and cfitsio read. Each case is an HDU NAME, a
compressed image whose binary table is built here tile by tile, followed by NAME_ASTROPY, a plain
image of astropy's reading of it: the Rust tests check torchfits' decoding against it, whole, in
sections and on every read path. Run: python3 tests/data/make_older_layouts.py

The cases:
- RICE_NO_BYTEPIX: a 16-bit image whose RICE_1 tiles are coded as 32-bit integers, with a
  BLOCKSIZE card and no BYTEPIX (the convention's default is 4);
- GZIP1_I16_AS_I32, GZIP2_U8_AS_I32: gzipped tiles of 16- and 8-bit images that inflate to 32-bit
  integers (older cfitsio);
- UNCOMPRESSED_I16, UNCOMPRESSED_U16_Q, UNCOMPRESSED_I32: RICE_1 images with some tiles stored as
  they are in an UNCOMPRESSED_DATA column (1PI, 1QI with BZERO = 32768, 1PJ), their
  COMPRESSED_DATA empty;
- NOCOMPRESS_I16: fpack's NOCOMPRESS, every tile in UNCOMPRESSED_DATA;
- QUANTIZED_UNCOMPRESSED_F32: floats quantised to integers per tile (ZSCALE, ZZERO columns, no
  ZQUANTIZ: no dither), with a tile that could not be quantised stored as floats (1PE), as
  cfitsio wrote them until 2011;
- GZIP_DATA_I16: a 16-bit image with a tile in GZIP_COMPRESSED_DATA (astropy reads it by the
  inflated size).
"""
import gzip
import os
import tempfile

import numpy as np
from astropy.io import fits
from astropy.io.fits.hdu.compressed._codecs import Rice1

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261205)


def image(shape, dtype, low, high):
    return rng.integers(low, high, size=shape).astype(dtype)


def tiles_of(data, rows):
    """Tiles of `rows` whole rows (the last one shorter), in order."""
    return [data[r:r + rows] for r in range(0, data.shape[0], rows)]


def rice(tile, bytepix):
    coded = tile.astype({1: ">u1", 2: ">i2", 4: ">i4"}[bytepix])
    return np.frombuffer(Rice1(blocksize=32, bytepix=bytepix, tilesize=tile.size).encode(coded), np.uint8)


def as_bytes(b):
    return np.frombuffer(b, np.uint8)


def table(data, rows, zcmptype, columns, cards):
    """The compressed HDU: `columns` (name, TFORM, one array per tile) and the Z cards."""
    cols = [fits.Column(name, form, array=np.array(arrays + [], dtype=object)) for name, form, arrays in columns]
    hdu = fits.BinTableHDU.from_columns(cols)
    h = hdu.header
    zbitpix = {np.dtype(np.int16): 16, np.dtype(np.uint16): 16, np.dtype(np.int32): 32, np.dtype(np.uint8): 8,
               np.dtype(np.float32): -32}[data.dtype]
    for key, value in [("ZIMAGE", True), ("ZBITPIX", zbitpix), ("ZNAXIS", 2), ("ZNAXIS1", data.shape[1]),
                       ("ZNAXIS2", data.shape[0]), ("ZTILE1", data.shape[1]), ("ZTILE2", rows),
                       ("ZCMPTYPE", zcmptype)] + cards:
        h[key] = value
    return hdu


empty_b = np.array([], np.uint8)
cases = []

# RICE_1 of 16-bit integers coded at 4 bytes, BLOCKSIZE given, BYTEPIX not
data = image((45, 33), np.int16, -30000, 30000)
code = [rice(t, 4) for t in tiles_of(data, 8)]
cases.append(("RICE_NO_BYTEPIX", data, table(data, 8, "RICE_1", [("COMPRESSED_DATA", "1PB()", code)],
                                             [("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32)])))

# gzipped 16-bit tiles that inflate to 32-bit integers
data = image((40, 50), np.int16, -32768, 32767)
code = [as_bytes(gzip.compress(t.astype(">i4").tobytes())) for t in tiles_of(data, 7)]
cases.append(("GZIP1_I16_AS_I32", data, table(data, 7, "GZIP_1", [("COMPRESSED_DATA", "1PB()", code)], [])))

# GZIP_2 (bytes shuffled) of an 8-bit image stored as 32-bit integers
data = image((30, 41), np.uint8, 0, 256)


def shuffled(values):
    raw = np.frombuffer(values.tobytes(), np.uint8).reshape(-1, values.dtype.itemsize)
    return raw.T.copy().tobytes()


code = [as_bytes(gzip.compress(shuffled(t.astype(">i4")))) for t in tiles_of(data, 4)]
cases.append(("GZIP2_U8_AS_I32", data, table(data, 4, "GZIP_2", [("COMPRESSED_DATA", "1PB()", code)], [])))


def with_uncompressed(data, rows, plain, form, stored_dtype, cards=()):
    """RICE_1 tiles, except tiles `plain`, whose stored values go to UNCOMPRESSED_DATA."""
    code, unc = [], []
    bytepix = {16: 2, 32: 4}[np.dtype(stored_dtype).itemsize * 8]
    for k, t in enumerate(tiles_of(data, rows)):
        stored = t.astype(np.int64)
        if data.dtype == np.uint16:
            stored = stored - 32768
        stored = stored.astype(stored_dtype)
        if k in plain:
            code.append(empty_b)
            unc.append(stored.ravel())
        else:
            code.append(rice(stored, bytepix))
            unc.append(np.array([], stored_dtype))
    cards = [("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32), ("ZNAME2", "BYTEPIX"), ("ZVAL2", bytepix)] + list(cards)
    desc = "P" if form.startswith("1P") else "Q"
    return table(data, rows, "RICE_1",
                 [("COMPRESSED_DATA", f"1{desc}B()", code), ("UNCOMPRESSED_DATA", form, unc)], cards)


data = image((50, 37), np.int16, -32768, 32767)
cases.append(("UNCOMPRESSED_I16", data, with_uncompressed(data, 6, {1, 4, 8}, "1PI()", ">i2")))
data = image((33, 29), np.uint16, 0, 65536)
hdu = with_uncompressed(data, 5, {0, 6}, "1QI()", ">i2", [("BZERO", 32768), ("BSCALE", 1)])
cases.append(("UNCOMPRESSED_U16_Q", data, hdu))
data = image((28, 31), np.int32, -2**31, 2**31 - 1)
cases.append(("UNCOMPRESSED_I32", data, with_uncompressed(data, 9, {2}, "1PJ()", ">i4")))

# NOCOMPRESS: every tile in UNCOMPRESSED_DATA
data = image((21, 19), np.int16, -32768, 32767)
tiles = tiles_of(data, 5)
cases.append(("NOCOMPRESS_I16", data, table(data, 5, "NOCOMPRESS",
                                            [("COMPRESSED_DATA", "1PB()", [empty_b] * len(tiles)),
                                             ("UNCOMPRESSED_DATA", "1PI()", [t.ravel().astype(">i2") for t in tiles])],
                                            [])))

# floats quantised per tile without dithering, one tile stored as floats
data = rng.normal(100.0, 10.0, (36, 25)).astype(np.float32)
data[12:18, 3] = np.inf  # the tile astropy/cfitsio could not quantise
code, unc, scales, zeros = [], [], [], []
for k, t in enumerate(tiles_of(data, 6)):
    if k == 2:
        code.append(empty_b)
        unc.append(t.ravel().astype(">f4"))
        scales.append(0.0)
        zeros.append(0.0)
        continue
    scale, zero = 0.625, float(np.float32(t.mean()))
    ints = np.round((t.astype(np.float64) - zero) / scale).astype(np.int32)
    code.append(rice(ints, 4))
    unc.append(np.array([], ">f4"))
    scales.append(scale)
    zeros.append(zero)
hdu = table(data, 6, "RICE_1", [("COMPRESSED_DATA", "1PB()", code), ("UNCOMPRESSED_DATA", "1PE()", unc)],
            [("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32), ("ZNAME2", "BYTEPIX"), ("ZVAL2", 4)])
zs = fits.BinTableHDU.from_columns(hdu.columns + fits.ColDefs([fits.Column("ZSCALE", "D", array=np.array(scales)),
                                                                fits.Column("ZZERO", "D", array=np.array(zeros))]))
for card in hdu.header.cards:
    if card.keyword.startswith("Z"):
        zs.header[card.keyword] = card.value
cases.append(("QUANTIZED_UNCOMPRESSED_F32", data, zs))

# a 16-bit tile in GZIP_COMPRESSED_DATA
data = image((24, 30), np.int16, -32768, 32767)
code, gz = [], []
for k, t in enumerate(tiles_of(data, 6)):
    if k == 1:
        code.append(empty_b)
        gz.append(as_bytes(gzip.compress(t.astype(">i2").tobytes())))
    else:
        code.append(rice(t, 2))
        gz.append(empty_b)
cases.append(("GZIP_DATA_I16", data, table(data, 6, "RICE_1",
                                           [("COMPRESSED_DATA", "1PB()", code), ("GZIP_COMPRESSED_DATA", "1PB()", gz)],
                                           [("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32), ("ZNAME2", "BYTEPIX"),
                                            ("ZVAL2", 2)])))

hdus = [fits.PrimaryHDU()]
for name, _, hdu in cases:
    hdu.header["EXTNAME"] = name
    hdus.append(hdu)
with tempfile.TemporaryDirectory() as tmp:
    first = os.path.join(tmp, "compressed.fits")
    fits.HDUList(hdus).writeto(first)
    out = [fits.PrimaryHDU()]
    with fits.open(first) as hl:
        for name, want, compressed in cases:
            got = np.asarray(hl[name].data)
            # astropy's reading is the reference; it must also be the image the tiles were made
            # from (the quantised floats to within half a quantum)
            if want.dtype.kind == "f":
                finite = np.isfinite(want)
                assert (np.isfinite(got) == finite).all(), name
                assert np.abs(got[finite] - want[finite]).max() <= 0.3125, name
            else:
                assert got.dtype == want.dtype and (got == want).all(), name
            out.append(compressed)
            out.append(fits.ImageHDU(got, name=f"{name}_ASTROPY"))
        fits.HDUList(out).writeto(os.path.join(here, "older_layouts.fits"), overwrite=True)
with fits.open(os.path.join(here, "older_layouts.fits")) as hl:
    for h in hl[1:]:
        print(h.name, type(h).__name__, h.shape if h.is_image else "", getattr(h, "columns", None) and h.columns.names)
