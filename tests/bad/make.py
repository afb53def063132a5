#!/usr/bin/env python3
"""Writes the bad-input corpus of tests/bad/ from the FITS standard (Python's standard library
only): each file breaks one rule a reader must not trust. The expected outcome of each, through
the API and through every `torchfits` command, is in tests/it/bad.rs (a test fails for a file
that has none). Files too large for the repository (a 100k-card header, a gzip bomb) are made by
that test at run time.

    python3 tests/bad/make.py
"""
import gzip
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def card(key, value=None, comment=None):
    if value is None:
        text = key
    else:
        if isinstance(value, bool):
            v = "T" if value else "F"
            v = v.rjust(20)
        elif isinstance(value, (int, float)):
            v = repr(value).rjust(20)
        else:
            v = ("'" + str(value).replace("'", "''").ljust(8) + "'").ljust(20)
        text = f"{key:<8}= {v}"
        if comment:
            text += f" / {comment}"
    return text[:80].ljust(80).encode("ascii", "replace")


def header(cards, end=True):
    raw = b"".join(cards) + (card("END") if end else b"")
    return raw + b" " * (-len(raw) % 2880)


def data(raw):
    return raw + b"\0" * (-len(raw) % 2880)


def image(bitpix, shape, extra=(), primary=True):
    cards = [card("SIMPLE", True) if primary else card("XTENSION", "IMAGE"), card("BITPIX", bitpix),
             card("NAXIS", len(shape))]
    cards += [card(f"NAXIS{i + 1}", n) for i, n in enumerate(reversed(shape))]
    if not primary:
        cards += [card("PCOUNT", 0), card("GCOUNT", 1)]
    return cards + [card(k, v) for k, v in extra]


def table(nrows, naxis1, tforms, pcount=0, extra=()):
    cards = [card("XTENSION", "BINTABLE"), card("BITPIX", 8), card("NAXIS", 2), card("NAXIS1", naxis1),
             card("NAXIS2", nrows), card("PCOUNT", pcount), card("GCOUNT", 1), card("TFIELDS", len(tforms))]
    for i, f in enumerate(tforms):
        cards += [card(f"TTYPE{i + 1}", f"C{i + 1}"), card(f"TFORM{i + 1}", f)]
    return cards + [card(k, v) for k, v in extra]


PRIMARY = header([card("SIMPLE", True), card("BITPIX", 8), card("NAXIS", 0), card("EXTEND", True)])


def write(name, raw):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(raw)


def main():
    rnd = random.Random(1234)
    f32 = lambda n: struct.pack(f">{n}f", *[rnd.random() for _ in range(n)])  # noqa: E731
    write("empty.fits", b"")
    write("random.fits", bytes(rnd.randrange(256) for _ in range(2 * 2880)))
    write("not_fits.fits", b"This is a text file, not FITS.\n" * 100)
    good = header(image(-32, [10, 10])) + data(f32(100))
    write("truncated_header.fits", good[:1000])
    write("no_end.fits", header(image(-32, [10, 10]), end=False) + data(f32(100)))
    write("truncated_data.fits", header(image(-32, [100, 100])) + f32(1000))
    nonascii = bytearray(header(image(-32, [2, 2], [("OBJECT", "m31")])) + data(f32(4)))
    nonascii[5 * 80 + 11:5 * 80 + 14] = b"\xff\xfe\x80"
    write("nonascii_header.fits", bytes(nonascii))
    write("bitpix_12.fits", header(image(12, [4, 4])) + data(b"\0" * 32))
    write("naxis_negative.fits", header(image(-32, [4, -5])) + data(f32(20)))
    write("naxis_1000.fits", header(image(8, [1] * 3)[:2] + [card("NAXIS", 1000)]))
    write("naxis_missing_axis.fits", header([card("SIMPLE", True), card("BITPIX", 16), card("NAXIS", 2),
                                             card("NAXIS1", 10)]) + data(b"\0" * 400))
    write("zero_width.fits", header(image(16, [0, 10])))
    write("axes_999.fits", header(image(8, [1] * 999)) + data(b"\x07"))
    write("product_overflows.fits", header(image(-64, [2**40, 2**40, 2**40])) + data(f32(10)))
    write("huge_image.fits", header(image(-32, [200000, 200000])) + data(f32(10)))
    write("bscale_string.fits", header(image(16, [2, 2], [("BSCALE", "abc"), ("BZERO", 1.0)])) + data(b"\0" * 8))
    write("blank_float.fits", header(image(16, [2, 2], [("BLANK", 1.5)])) + data(b"\0\x01" * 4))
    write("blank_on_float_image.fits", header(image(-32, [2, 2], [("BLANK", 7)])) + data(f32(4)))
    # tables
    rows = struct.pack(">ih", 1, 2) * 3
    write("table_naxis1_mismatch.fits", PRIMARY + header(table(3, 10, ["J", "I"])) + data(rows + b"\0" * 12))
    write("table_bad_tform.fits", PRIMARY + header(table(3, 6, ["Q7Z", "I"])) + data(rows))
    write("table_tform_repeat_overflow.fits", PRIMARY + header(table(1, 4, ["99999999999999999999J"])) + data(b"\0" * 4))
    write("table_negative_pcount.fits", PRIMARY + header(table(3, 6, ["J", "I"], pcount=-1)) + data(rows))
    write("table_truncated_rows.fits", PRIMARY + header(table(1000, 6, ["J", "I"])) + rows)
    vla_rows = struct.pack(">ii", 4, 0) + struct.pack(">ii", 2, 16)
    heap = struct.pack(">4i", 1, 2, 3, 4) + struct.pack(">2i", 5, 6)
    write("table_theap_outside.fits", PRIMARY + header(table(2, 8, ["PJ(4)"], pcount=len(heap),
                                                             extra=[("THEAP", 10**9)])) + data(vla_rows + heap))
    bad_desc = struct.pack(">ii", 4, 0) + struct.pack(">ii", 1000000, 2**31 - 8)
    write("table_vla_outside_heap.fits", PRIMARY + header(table(2, 8, ["PJ(4)"], pcount=len(heap)))
          + data(bad_desc + heap))
    write("table_vla_negative.fits", PRIMARY + header(table(2, 8, ["PJ(4)"], pcount=len(heap)))
          + data(struct.pack(">ii", -5, 0) + struct.pack(">ii", 2, -16) + heap))
    write("table_tfields_missing.fits", PRIMARY + header([c for c in table(3, 6, ["J", "I"]) if not c.startswith(b"TFORM2")])
          + data(rows))
    write("table_tnull_string.fits", PRIMARY + header(table(3, 6, ["J", "I"], extra=[("TNULL1", "x"), ("TSCAL2", "y")]))
          + data(rows))
    # a tile-compressed image whose tiles are garbage (RICE_1 of 16x16 int16, one tile per row)
    nt = 16
    descs = b"".join(struct.pack(">ii", 20, 20 * i) for i in range(nt))
    garbage = bytes(rnd.randrange(256) for _ in range(20 * nt))
    comp = table(nt, 8, ["1PB(20)"], pcount=len(garbage), extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 1), ("ZCMPTYPE", "RICE_1"), ("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32),
        ("ZNAME2", "BYTEPIX"), ("ZVAL2", 2)])
    comp[8] = card("TTYPE1", "COMPRESSED_DATA")
    write("compressed_garbage_tiles.fits", PRIMARY + header(comp) + data(descs + garbage))
    # the same garbage as the tiles of a float image, which cfitsio would decode (its Rice decoder
    # read past a tile that ends early: a SEGV, a fuzz finding)
    fcomp = table(nt, 8, ["1PB(20)"], pcount=len(garbage), extra=[
        ("ZIMAGE", True), ("ZBITPIX", -32), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 1), ("ZCMPTYPE", "RICE_1"), ("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32),
        ("ZNAME2", "BYTEPIX"), ("ZVAL2", 4)])
    fcomp[8] = card("TTYPE1", "COMPRESSED_DATA")
    write("compressed_float_garbage_tiles.fits", PRIMARY + header(fcomp) + data(descs + garbage))
    # the same header with a PCOUNT torchfits cannot parse and a NUL for ZCMPTYPE's value
    # indicator, over zeroed descriptors: torchfits' tile checks passed it while cfitsio asked for
    # 2e16 bytes (a fuzz finding)
    odd = [c if not c.startswith(b"ZCMPTYPE") else b"ZCMPTYPE=\0'RICE_1  '".ljust(80) for c in comp]
    odd = [c if not c.startswith(b"PCOUNT") else b"PCOUNT  = (                320".ljust(80) for c in odd]
    write("compressed_unreadable_cards.fits", PRIMARY + header(odd) + data(bytes(8 * nt)))
    huge_tile = table(1, 8, ["1PB(20)"], pcount=20, extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 100000), ("ZNAXIS2", 100000),
        ("ZTILE1", 100000), ("ZTILE2", 100000), ("ZCMPTYPE", "RICE_1")])
    huge_tile[8] = card("TTYPE1", "COMPRESSED_DATA")
    write("compressed_huge_tile.fits", PRIMARY + header(huge_tile) + data(struct.pack(">ii", 20, 0) + b"\0" * 20))
    # a GZIP_1 image (decoded by cfitsio) whose last tile descriptor claims 3.5 GB past the heap:
    # cfitsio allocated it before reading (a fuzz finding)
    descs = b"".join(struct.pack(">II", 20, 20 * i) for i in range(nt - 1)) + struct.pack(">II", 0xD40C0B15, 0)
    gz = table(nt, 8, ["1PB(20)"], pcount=len(garbage), extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 1), ("ZCMPTYPE", "GZIP_1")])
    gz[8] = card("TTYPE1", "COMPRESSED_DATA")
    write("compressed_descriptor_past_heap.fits", PRIMARY + header(gz) + data(descs + garbage))
    # a GZIP_1 image whose tiles are valid gzip streams of the wrong size (20 bytes for 16 int16
    # pixels): cfitsio leaked each tile's buffer on this error (a fuzz finding, LeakSanitizer)
    tiles = [gzip.compress(bytes(rnd.randrange(256) for _ in range(20)), mtime=0) for _ in range(nt)]
    heap = b"".join(tiles)
    offsets = [sum(len(t) for t in tiles[:i]) for i in range(nt)]
    gzw = table(nt, 8, ["1PB(64)"], pcount=len(heap), extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 1), ("ZCMPTYPE", "GZIP_1")])
    gzw[8] = card("TTYPE1", "COMPRESSED_DATA")
    write("compressed_gzip_wrong_size.fits", PRIMARY + header(gzw)
          + data(b"".join(struct.pack(">ii", len(t), o) for t, o in zip(tiles, offsets)) + heap))
    # a zip file whose local header declares 4 GB inflated (cfitsio allocates what it declares)
    write("zip_declares_4gb.fits.zip", b"PK\x03\x04" + struct.pack("<HHHHHIII", 20, 0, 8, 0, 0, 0, 100, 0xFFFFFFF0)
          + struct.pack("<HH", 10, 0) + b"x.fits.zip" + bytes(100))
    # a compress (.Z) file cut short (torchfits inflates it, within the limit; cfitsio's buffer
    # grows without one), and pack and LZH files, which torchfits refuses
    with open(os.path.join(HERE, "..", "data", "lzw.fits.Z"), "rb") as f:
        write("lzw_truncated.fits.Z", f.read()[:4000])
    write("pack_file.fits.z", b"\x1f\x1e" + bytes(rnd.randrange(256) for _ in range(500)))
    write("lzh_file.fits.z", b"\x1f\xa0" + bytes(rnd.randrange(256) for _ in range(500)))
    # any file starting "PK" is a zip file to cfitsio (a fuzz finding: 3.9 GB declared)
    write("pk_declares_4gb.fits", b"PK\x0d\xf9" + bytes(18) + struct.pack("<I", 0xE7E7E7E7) + bytes(100))
    # an ASCII table whose TFORM starts with a non-ASCII byte (its width was sliced as text: a panic,
    # a fuzz finding)
    ascii_cards = [card("XTENSION", "TABLE"), card("BITPIX", 8), card("NAXIS", 2), card("NAXIS1", 8),
                   card("NAXIS2", 2), card("PCOUNT", 0), card("GCOUNT", 1), card("TFIELDS", 1),
                   card("TBCOL1", 1), card("TFORM1", "XI8").replace(b"'X", "'\u00e9".encode("latin-1"), 1)]
    write("ascii_table_nonascii_tform.fits", PRIMARY + header(ascii_cards) + data(b"       1       2"))
    # a gzip-compressed file that is cut short
    write("gzip_truncated.fits.gz", gzip.compress(good, mtime=0)[:200])
    # names a shell or cfitsio would read as syntax: these are plain, valid files
    for name in ["a[1].fits", "!bang.fits", "pipe|name.fits", "mem:__x.fits"]:
        write(name, good)
    # an END card with bytes after END (cfitsio and astropy end the header there; torchfits ended
    # it at the next HDU's END, so the two delimited HDUs differently: a fuzz finding), then an
    # image extension of 0..8
    sloppy = header(image(16, [2, 2], [("EXTEND", True)]), end=False) + (b"END" + b" " * 9 + b"\x00\x01").ljust(80)
    sloppy = sloppy + b" " * (-len(sloppy) % 2880)
    # an HCOMPRESS_1 image whose tile headers give 3 x 3 pixels for tiles of 16 (cfitsio would
    # decode them and then leak the tile's buffer on the wrong size)
    hdesc = b"".join(struct.pack(">ii", 30, 30 * i) for i in range(16))
    htiles = (b"\xdd\x99" + struct.pack(">ii", 3, 3) + bytes(20)) * 16
    hc = table(16, 8, ["1PB(30)"], pcount=len(htiles), extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 1), ("ZCMPTYPE", "HCOMPRESS_1")])
    hc[8] = card("TTYPE1", "COMPRESSED_DATA")
    write("compressed_hcompress_wrong_size.fits", PRIMARY + header(hc) + data(hdesc + htiles))
    # a RICE_1 image whose tiles are all in UNCOMPRESSED_DATA, the first with 20 values for its 16
    # pixels (cfitsio reads a cell of any length into a buffer of the tile's pixels)
    values = [struct.pack(">20h", *range(20))] + [struct.pack(">16h", *range(16))] * 15
    offsets = [sum(len(v) for v in values[:i]) for i in range(16)]
    unc = table(16, 16, ["1PB(0)", "1PI(20)"], pcount=sum(len(v) for v in values), extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 1), ("ZCMPTYPE", "RICE_1"), ("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32)])
    unc[8], unc[10] = card("TTYPE1", "COMPRESSED_DATA"), card("TTYPE2", "UNCOMPRESSED_DATA")
    rows = b"".join(struct.pack(">iiii", 0, 0, len(v) // 2, o) for v, o in zip(values, offsets))
    write("compressed_uncompressed_data_too_long.fits", PRIMARY + header(unc) + data(rows + b"".join(values)))
    # a RICE_1 image whose COMPRESSED_DATA cells are empty, with no other column to hold the tiles
    # (cfitsio hands back the tile's buffer as it found it)
    empty = table(16, 8, ["1PB(0)"], extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 1), ("ZCMPTYPE", "RICE_1"), ("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32)])
    empty[8] = card("TTYPE1", "COMPRESSED_DATA")
    write("compressed_empty_tiles.fits", PRIMARY + header(empty) + data(bytes(8 * 16)))
    write("end_card_with_bytes_after.fits", sloppy + data(struct.pack(">4h", 1, 2, 3, 4))
          + header(image(16, [3, 3], primary=False)) + data(struct.pack(">9h", *range(9))))
    heap_claims_past_the_file()


def claimed_tile(codec, descriptor, claim, extra=(), column="COMPRESSED_DATA"):
    """A 16 x 16 int16 image in one tile of `codec` whose heap (PCOUNT) and one descriptor claim
    `claim` bytes while the file holds a few real bytes: a reader that trusts the declared heap
    allocates the claim before it finds the file too short. `descriptor`: P or Q, and I for a
    column of 16-bit elements (PLIO's line lists, UNCOMPRESSED_DATA of int16)."""
    wide = descriptor.startswith("Q")
    elem = 2 if descriptor.endswith("I") else 1
    tform = f"1{descriptor[0]}{'I' if elem == 2 else 'B'}(16)"
    cols = [tform] if column == "COMPRESSED_DATA" else ["1PB(0)", tform]
    t = table(1, (16 if wide else 8) * len(cols), cols, pcount=claim + 15, extra=[
        ("ZIMAGE", True), ("ZBITPIX", 16), ("ZNAXIS", 2), ("ZNAXIS1", 16), ("ZNAXIS2", 16),
        ("ZTILE1", 16), ("ZTILE2", 16), ("ZCMPTYPE", codec), *extra])
    t[8] = card("TTYPE1", "COMPRESSED_DATA")
    if column != "COMPRESSED_DATA":
        t[10] = card("TTYPE2", column)
    desc = struct.pack(">QQ" if wide else ">II", claim // elem, 0)
    row = desc if column == "COMPRESSED_DATA" else bytes(len(desc)) + desc
    return PRIMARY + header(t) + data(row + bytes(range(64)))


def heap_claims_past_the_file():
    """Headers and descriptors that claim more bytes than the file has, for every codec and for a
    table's variable-length arrays (each file a few kB)."""
    claim32, claim64 = 4294967280, 1099511627760
    write("claim_gzip_1_tile_4gb.fits", claimed_tile("GZIP_1", "P", claim32))
    write("claim_gzip_1_tile_1tb.fits", claimed_tile("GZIP_1", "Q", claim64))
    write("claim_gzip_2_tile_4gb.fits", claimed_tile("GZIP_2", "P", claim32))
    write("claim_rice_1_tile_4gb.fits", claimed_tile("RICE_1", "P", claim32,
                                                     [("ZNAME1", "BLOCKSIZE"), ("ZVAL1", 32)]))
    write("claim_hcompress_1_tile_4gb.fits", claimed_tile("HCOMPRESS_1", "P", claim32))
    write("claim_hcompress_1_tile_1tb.fits", claimed_tile("HCOMPRESS_1", "Q", claim64))
    write("claim_plio_1_tile_4gb.fits", claimed_tile("PLIO_1", "PI", claim32))
    write("claim_nocompress_tile_4gb.fits", claimed_tile("NOCOMPRESS", "P", claim32))
    write("claim_gzip_compressed_data_4gb.fits", claimed_tile("RICE_1", "P", claim32,
                                                              column="GZIP_COMPRESSED_DATA"))
    write("claim_uncompressed_data_4gb.fits", claimed_tile("RICE_1", "PI", claim32,
                                                           column="UNCOMPRESSED_DATA"))
    # a table whose one variable-length cell claims 4 GB (and 1 TB) of a heap the file does not hold
    for name, tform, fmt, claim in [("claim_table_vla_4gb.fits", "PB(16)", ">II", claim32),
                                    ("claim_table_vla_1tb.fits", "QB(16)", ">QQ", claim64)]:
        t = table(1, struct.calcsize(fmt), [tform], pcount=claim + 15)
        write(name, PRIMARY + header(t) + data(struct.pack(fmt, claim, 0) + bytes(range(64))))
    # a table of 2^31 rows of 1 kB in a file of a few kB (its rows are what it claims)
    write("claim_table_rows_2tb.fits", PRIMARY + header(table(2**31 - 1, 1024, ["1024B"]))
          + data(bytes(range(256)) * 4))


if __name__ == "__main__":
    main()
