#!/usr/bin/env python3
"""Round trips between torchfits and astropy, through the `torchfits` command.

    python3 tests/astropy_roundtrip.py --cli target/release/torchfits

1. torchfits writes, astropy reads: every NumPy integer and float type as an image (plain, with
   checksums, tile-compressed by every algorithm that takes it; lossless exactly, quantised floats
   within a quantisation step), and a Parquet table of every column kind with nulls.
2. torchfits tile-compresses that table (`write --compress`): rustfits reads it as it reads the
   plain table, and so does `torchfits read --decompress-tables`.
3. astropy writes, torchfits reads: the same images and a table, back through `torchfits read`.
Every FITS file torchfits writes also goes through `fitsverify` (0 warnings, 0 errors) when it is
installed (required under CI). Uses the conformance check's virtual environment (numpy, astropy,
pyarrow, rustfits), made the same way when missing. Ends with `astropy round trips: N passed, M failed`.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

VENV = os.environ.get(
    "TORCHFITS_CONFORMANCE_VENV",
    os.path.join(os.path.expanduser("~"), ".cache", "torchfits-conformance-venv"),
)
NEEDS = ["numpy", "astropy", "pyarrow", "rustfits==0.1.8"]


def _ensure_venv():
    if os.environ.get("_TORCHFITS_ROUNDTRIP_INNER") == "1":
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([py, "-c", "import numpy, astropy, pyarrow, rustfits"], capture_output=True)
    if probe.returncode != 0:
        subprocess.check_call([py, "-m", "pip", "install", "-q"] + NEEDS)
    env = dict(os.environ, _TORCHFITS_ROUNDTRIP_INNER="1")
    os.execve(py, [py] + sys.argv, env)


_ensure_venv()

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.table import Table  # noqa: E402

results = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    if ok:
        results["passed"] += 1
    else:
        results["failed"] += 1
        print(f"FAIL {name}: {detail}")


def run(cli, *args):
    p = subprocess.run([cli, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"torchfits {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def fitsverify(name, path, tnull_on_stored_bytes=0):
    """fitsverify on `path`: 0 errors and 0 warnings, but for `tnull_on_stored_bytes` warnings
    that a TNULLn is out of the range of datatype B (a compressed table keeps the TNULLn of the
    table it holds on the stored byte-array column, as fpack does: fitsverify warns on fpack's
    own output the same way)."""
    if shutil.which("fitsverify") is None:
        if os.environ.get("CI") == "true":
            check(name + " fitsverify", False, "fitsverify is not installed (scripts/setup.sh --test installs it)")
        return
    out = subprocess.run(["fitsverify", path], capture_output=True, text=True).stdout
    allowed = out.count("is not in the range of\n             datatype B.")
    warnings_ok = allowed == tnull_on_stored_bytes
    summary = f"Verification found {tnull_on_stored_bytes} warning(s) and 0 error(s)"
    check(name + " fitsverify", warnings_ok and summary in out, out[-400:])


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def images():
    rng = np.random.default_rng(7)
    out = {}
    for dt in ["u1", "i1", "<i2", ">u2", "<i4", "<u4", ">i8", "<u8"]:
        info = np.iinfo(np.dtype(dt))
        v = rng.integers(info.min, info.max, size=(17, 23), dtype=np.dtype(dt).newbyteorder("="), endpoint=True)
        v.flat[0], v.flat[1] = info.min, info.max
        out[dt] = v.astype(dt)
    for dt in ["<f4", ">f8"]:
        v = rng.normal(100.0, 5.0, size=(3, 17, 23)).astype(dt)
        v.flat[5] = np.nan
        v.flat[6] = np.inf
        out[dt] = v
    return out


def torchfits_writes_images(cli, d):
    for dt, v in images().items():
        src = os.path.join(d, f"img{dt.replace('<', 'l').replace('>', 'b')}.npy")
        np.save(src, v)
        for label, extra in [("plain", []), ("checksum", ["--checksum"])]:
            out = src[:-4] + f"-{label}.fits"
            run(cli, "write", src, "-o", out, "--overwrite", *extra)
            fitsverify(f"{dt} {label}", out)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a wrong checksum warns
                with fits.open(out, checksum=(label == "checksum")) as h:
                    back = h[0].data
                    check(f"{dt} {label} values", same(back, v), f"{back!r} vs {v!r}")
                    check(f"{dt} {label} dtype", back.dtype.newbyteorder("=") == v.dtype.newbyteorder("="),
                          f"{back.dtype} vs {v.dtype}")
        kind = v.dtype.kind
        algos = []
        if kind in "iu" and v.dtype.itemsize <= 4:
            algos = ["rice", "gzip", "gzip2", "hcompress"] if v.ndim == 2 else ["rice", "gzip", "gzip2"]
        elif kind in "iu":
            # 64-bit integers: cfitsio neither compresses nor decompresses them: a clear error
            p = subprocess.run([cli, "write", src, "-o", src[:-4] + "-gz.fits", "--compress", "gzip"],
                               capture_output=True, text=True)
            check(f"{dt} compression refused", p.returncode == 1 and "64-bit" in p.stderr, p.stderr)
        elif kind == "f":
            algos = ["rice", "gzip", "gzip2"]
        for algo in algos:
            out = src[:-4] + f"-{algo}.fits"
            run(cli, "write", src, "-o", out, "--overwrite", "--compress", algo, "--checksum")
            fitsverify(f"{dt} {algo}", out)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with fits.open(out, checksum=True) as h:
                    back = h[1].data
            if kind == "f":
                with fits.open(out, disable_image_compression=True) as raw:
                    step = float(np.max(raw[1].data["ZSCALE"]))
                fin = np.isfinite(v)
                err = float(np.max(np.abs(back[fin].astype("f8") - v[fin].astype("f8"))))
                check(f"{dt} {algo} within a step", err <= step and same(back[~fin], v[~fin]),
                      f"error {err} step {step}")
            else:
                check(f"{dt} {algo} exact", same(back, v))
        if kind == "f":
            out = src[:-4] + "-gzip-lossless.fits"
            run(cli, "write", src, "-o", out, "--overwrite", "--compress", "gzip2", "--quantize-level", "0")
            fitsverify(f"{dt} gzip2 lossless", out)
            with fits.open(out) as h:
                check(f"{dt} gzip2 lossless exact", same(h[1].data, v))
    # PLIO: masks
    mask = (np.arange(40 * 30).reshape(40, 30) // 7 % 5).astype("i4")
    src = os.path.join(d, "mask.npy")
    np.save(src, mask)
    out = os.path.join(d, "mask-plio.fits")
    run(cli, "write", src, "-o", out, "--overwrite", "--compress", "plio", "--extname", "MASK")
    fitsverify("mask plio", out)
    with fits.open(out) as h:
        check("mask plio exact", same(h["MASK"].data, mask))


def torchfits_writes_tables(cli, d):
    n = 1000
    rng = np.random.default_rng(3)
    ints = pa.array([None if i % 17 == 3 else int(i * 7 - 3000) for i in range(n)], type=pa.int32())
    table = pa.table({
        "id": pa.array(np.arange(n, dtype="i8")),
        "ra": pa.array(rng.uniform(0, 360, n)),
        "mag": pa.array([None if i % 11 == 0 else float(i) / 10 for i in range(n)], type=pa.float32()),
        "flag": pa.array([None if i % 13 == 0 else i % 2 == 0 for i in range(n)]),
        "count": ints,
        "u16": pa.array((np.arange(n) * 61 % 65536).astype("u2")),
        "u32": pa.array((np.arange(n) * 4000037 % 2**32).astype("u4")),
        "u64": pa.array((np.arange(n, dtype="u8") * 2**50 + 2**63)),
        "i8": pa.array((np.arange(n) % 256 - 128).astype("i1")),
        "u8": pa.array((np.arange(n) % 256).astype("u1")),
        "name": pa.array([None if i % 19 == 0 else f"obj-{i % 37}" for i in range(n)]),
        "spec": pa.array([[float(i), i + 0.5, -i] for i in range(n)], type=pa.list_(pa.float64(), 3)),
        "hits": pa.array([list(range(i % 5)) for i in range(n)], type=pa.list_(pa.int32())),
    })
    src = os.path.join(d, "table.parquet")
    pq.write_table(table, src, row_group_size=300)
    out = os.path.join(d, "table.fits")
    run(cli, "write", src, "-o", out, "--overwrite", "--extname", "CATALOG", "--checksum")
    fitsverify("table", out)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=fits.verify.VerifyWarning)
        with fits.open(out, checksum=True) as h:
            check("table extname", h[1].name == "CATALOG", h[1].name)
    with warnings.catch_warnings():
        # astropy announces that it reads the undefined logicals as False, as expected here
        warnings.filterwarnings("ignore", message=".*NULL \\(undefined\\) values.*")
        back = Table.read(out, hdu="CATALOG")
    want = table.to_pydict()
    for name in table.column_names:
        col = back[name]
        for i in range(n):
            w = want[name][i]
            g = col[i]
            masked = bool(np.ma.is_masked(g)) or (isinstance(g, np.ndarray) and np.ma.is_masked(g))
            if w is None and name == "flag":
                ok = g == False  # noqa: E712 -- astropy reads an undefined logical as False
            elif w is None:
                ok = masked or (isinstance(g, (float, np.floating)) and np.isnan(g)) or g in ("", b"")
            elif isinstance(w, list):
                ok = list(np.asarray(g).tolist()) == w
            elif isinstance(w, str):
                ok = (g.decode() if isinstance(g, bytes) else str(g)) == w
            else:
                ok = (not masked) and g == w
            if not ok:
                check(f"table {name} row {i}", False, f"{g!r} vs {w!r}")
                break
        else:
            check(f"table {name}", True)


def torchfits_compresses_tables(cli, d):
    """The table of torchfits_writes_tables, tile-compressed by `torchfits write --compress`:
    fitsverify passes, and rustfits (astropy reads no compressed table) and `torchfits read
    --decompress-tables` give back what they give for the plain table."""
    import rustfits

    src, plain = os.path.join(d, "table.parquet"), os.path.join(d, "table.fits")
    with rustfits.FITS(plain) as fh:
        want = fh[1].read()
    run(cli, "read", plain, "--hdu", "CATALOG", "-o", os.path.join(d, "plain-back.parquet"))
    want_back = pq.read_table(os.path.join(d, "plain-back.parquet"))
    for codec, tile in (("rice", "1000"), ("gzip", "77"), ("gzip2", "300")):
        out = os.path.join(d, f"table-{codec}.fits.fz")
        run(cli, "write", src, "-o", out, "--overwrite", "--extname", "CATALOG", "--compress", codec, "--tile", tile)
        # the nullable integer column's TNULLn (`count`)
        fitsverify(f"compressed table {codec}", out, tnull_on_stored_bytes=1)
        with rustfits.FITS(out) as fh:
            got = fh[1].read()
        for name in want.dtype.names:
            a, b = got[name], want[name]
            nan = b.dtype.kind in "fc"
            same_values = (len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
                           if b.dtype == object else np.array_equal(a, b, equal_nan=nan))
            check(f"compressed table {codec} {name} in rustfits", same_values, f"{a[:3]!r} vs {b[:3]!r}")
        back = os.path.join(d, f"table-{codec}-back.parquet")
        run(cli, "read", out, "--hdu", "CATALOG", "--decompress-tables", "-o", back)
        got_back = pq.read_table(back)
        check(f"compressed table {codec} read back", same_rows(got_back, want_back),
              f"{got_back.schema} vs {want_back.schema}")


def same_rows(a, b):
    """Whether two Arrow tables hold the same values (NaN equal to NaN)."""
    def eq(x, y):
        if isinstance(x, float) and isinstance(y, float):
            return x == y or (x != x and y != y)
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(eq(p, q) for p, q in zip(x, y))
        return x == y
    return a.schema == b.schema and all(
        eq(x, y) for c in a.column_names for x, y in zip(a[c].to_pylist(), b[c].to_pylist()))


def astropy_writes(cli, d):
    for dt, v in images().items():
        if v.dtype.kind == "i" and v.dtype.itemsize == 1:
            continue  # astropy writes int8 as uint8 with BZERO -128: read back as int8 below
        path = os.path.join(d, f"ap{dt.replace('<', 'l').replace('>', 'b')}.fits")
        fits.PrimaryHDU(v).writeto(path, overwrite=True)
        out = path[:-5] + ".npy"
        run(cli, "read", path, "-o", out)
        check(f"astropy {dt} read", same(np.load(out), v))
        if v.dtype.kind in "iu" and v.dtype.itemsize <= 4:
            cpath = path[:-5] + "-rice.fits"
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(v, compression_type="RICE_1")]).writeto(
                cpath, overwrite=True)
            run(cli, "read", cpath, "--hdu", "1", "-o", out)
            check(f"astropy {dt} rice read", same(np.load(out), v))
    t = Table({"a": np.arange(5, dtype="i2"), "b": np.linspace(0, 1, 5), "c": ["x", "yy", "zzz", "", "w"]})
    path = os.path.join(d, "ap-table.fits")
    t.write(path, overwrite=True)
    out = os.path.join(d, "ap-table.parquet")
    run(cli, "read", path, "--hdu", "1", "-o", out)
    got = pq.read_table(out).to_pydict()
    check("astropy table read", got["a"] == list(range(5)) and got["c"] == ["x", "yy", "zzz", "", "w"]
          and np.allclose(got["b"], t["b"]), repr(got))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", required=True)
    args = ap.parse_args()
    cli = os.path.abspath(args.cli)
    with tempfile.TemporaryDirectory(prefix="torchfits-roundtrip-") as d:
        for step in (torchfits_writes_images, torchfits_writes_tables, torchfits_compresses_tables, astropy_writes):
            try:
                step(cli, d)
            except Exception as e:  # a failed command is a failed check, and the rest still runs
                check(step.__name__, False, f"{type(e).__name__}: {e}")
    print(f"astropy round trips: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
