#!/usr/bin/env python3
"""The peers on the cases ../shared/peers/peer_bench.py does not time: writing the standard images
(python fitsio and astropy) and pixel-to-world (astropy), timed as `torchfits bench` times them
(same data, same output folder, warm page cache, no fsync).

    python3 benches/peer_cases.py --dir bench-data --runs 7 --json OUT.json

Cases: `write_f32_4096` (the 4096x4096 float32 image of img_f32_4096.fits, uncompressed),
`write_rice_i16_4096` (the int16 image of rice_i16_4096.fits, RICE_1, row tiles),
`wcs_pix2world_16M` (astropy's `WCS(header).all_pix2world` of every pixel of img_f32_4096.fits,
16.8M points, 0-based), and whole reads of two images this script writes once with python fitsio
(cfitsio's coders, its default tiles): `hcompress_i16_4096_full` (that int16 image, HCOMPRESS_1)
and `plio_i32_4096_full` (a mask made from it, PLIO_1); and the compressed-table cases
(`ztable_1M_*`: the standard table through `fpack -table`, read by python fitsio after `funpack`
and by rustfits where installed). OUT gets {"cases": {id: {"fitsio": ms, "astropy": ms}}}. Runs in the
peers' virtual environment (../shared/peers/peer_bench.py makes it; $TORCHFITS_PEERS_VENV).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

VENV = os.environ.get(
    "TORCHFITS_PEERS_VENV", os.path.join(os.path.expanduser("~"), ".cache", "torchfits-peers-venv"))


def _ensure_venv():
    if os.environ.get("_TORCHFITS_PEERS_INNER") == "1":
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "-q", "numpy", "astropy", "fitsio"])
    os.execve(py, [py] + sys.argv, dict(os.environ, _TORCHFITS_PEERS_INNER="1"))


_ensure_venv()

import fitsio  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402


def timed(f, runs):
    f()
    ms = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    out = os.path.join(a.dir, "peer-written.fits")
    cases = {}
    sky = np.ascontiguousarray(fitsio.read(os.path.join(a.dir, "img_f32_4096.fits"), ext=0))
    i16 = np.ascontiguousarray(fitsio.read(os.path.join(a.dir, "rice_i16_4096.fits"), ext=1))

    # HCOMPRESS_1 and PLIO_1 (integers below 2^24: a mask of the bright and the dark pixels)
    tiled = {"hcompress_i16_4096_full": ("hcompress_i16_4096.fits", i16, "hcompress"),
             "plio_i32_4096_full": ("plio_i32_4096.fits",
                                    (i16 > np.percentile(i16, 90)).astype(np.int32) * 4
                                    + (i16 < np.percentile(i16, 5)).astype(np.int32), "plio")}
    for cid, (name, data, codec) in tiled.items():
        path = os.path.join(a.dir, name)
        if not os.path.exists(path):
            with fitsio.FITS(path, "rw", clobber=True) as f:
                f.write(data, compress=codec)

    def fitsio_read(path):
        def f():
            with fitsio.FITS(path) as fh:
                return np.ascontiguousarray(fh[1].read())
        return f

    def astropy_read(path):
        def f():
            with fits.open(path) as h:
                return np.ascontiguousarray(h[1].data)
        return f

    for cid, (name, _, _) in tiled.items():
        path = os.path.join(a.dir, name)
        cases[cid] = {"fitsio": timed(fitsio_read(path), a.runs), "astropy": timed(astropy_read(path), a.runs)}

    def fitsio_write(data, **kw):
        def f():
            if os.path.exists(out):
                os.remove(out)
            fitsio.write(out, data, **kw)
        return f

    def astropy_write(data, compressed):
        def f():
            if compressed:
                hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="RICE_1")])
            else:
                hdus = fits.HDUList([fits.PrimaryHDU(data)])
            hdus.writeto(out, overwrite=True)
        return f

    cases["write_f32_4096"] = {"fitsio": timed(fitsio_write(sky), a.runs),
                               "astropy": timed(astropy_write(sky, False), a.runs)}
    cases["write_rice_i16_4096"] = {"fitsio": timed(fitsio_write(i16, compress="rice"), a.runs),
                                    "astropy": timed(astropy_write(i16, True), a.runs)}
    if os.path.exists(out):
        os.remove(out)
    from astropy.wcs import WCS
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = WCS(fits.getheader(os.path.join(a.dir, "img_f32_4096.fits"), 0))
    n = 4096
    y, x = np.mgrid[0:n, 0:n]
    pix = np.stack([x.ravel(), y.ravel()], axis=1).astype("f8")
    del x, y
    cases["wcs_pix2world_16M"] = {"astropy": timed(lambda: wcs.all_pix2world(pix, 0), max(3, a.runs // 2))}
    cases.update(compressed_table_cases(a.dir, a.runs))
    for cid, v in cases.items():
        line = "  ".join(f"{k} {ms:9.3f} ms" for k, ms in v.items())
        print(f"{cid:28} {line}", file=sys.stderr)
    with open(a.json, "w") as fh:
        json.dump({"cases": cases}, fh, indent=2)


def compressed_table_cases(d, runs):
    """The standard table tile-compressed by cfitsio's own tool (`fpack -table`, made once into
    DIR/table_1M.fits.fz), read whole, two columns, and rows 500000-600000: by python fitsio after
    `funpack` (cfitsio does the decompressing; python fitsio does not read a compressed table) and
    by rustfits where it is installed in the peers' environment. Nothing where fpack is missing
    (Debian: libcfitsio-bin)."""
    ztab = os.path.join(d, "table_1M.fits.fz")
    if not os.path.exists(ztab):
        if not shutil.which("fpack"):
            print("compressed-table cases skipped: fpack is not installed (libcfitsio-bin)", file=sys.stderr)
            return {}
        with tempfile.TemporaryDirectory(dir=d) as tmp:
            src = os.path.join(tmp, "table_1M.fits")
            shutil.copy(os.path.join(d, "table_1M.fits"), src)
            subprocess.run(["fpack", "-table", src], check=True)
            shutil.move(src + ".fz", ztab)
    names = ["id", "ra", "dec", "flux", "flag", "nobs", "band", "mag16"]
    rows = np.arange(500_000, 600_000)
    shapes = {"ztable_1M_full": (None, None), "ztable_1M_2cols": (["ra", "flux"], None),
              "ztable_1M_rows_100k": (None, rows)}

    def funpacked(columns, rows):
        def f():
            with tempfile.TemporaryDirectory(dir=d) as tmp:
                plain = os.path.join(tmp, "table.fits")
                subprocess.run(["funpack", "-O", plain, ztab], check=True)
                with fitsio.FITS(plain) as fh:
                    t = fh[1].read(columns=columns, rows=rows)
                    return [np.ascontiguousarray(t[c]) for c in (columns or names)]
        return f

    try:
        import rustfits
    except ImportError:
        rustfits = None

    def rust(columns, rows):
        def f():
            with rustfits.FITS(ztab) as fh:
                t = fh[1].read(columns=columns, rows=rows)
                return [np.ascontiguousarray(t[c]) for c in (columns or names)]
        return f

    cases = {}
    for cid, (columns, rows_) in shapes.items():
        cases[cid] = {"fitsio": timed(funpacked(columns, rows_), runs)}
        if rustfits is not None:
            cases[cid]["rustfits"] = timed(rust(columns, rows_), runs)
    return cases


if __name__ == "__main__":
    main()
