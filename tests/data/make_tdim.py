"""Writes tests/data/tdim.fits: a binary table whose columns carry TDIM shapes of one element
(TFORM E with TDIM (1,1); J with TDIM (1)) beside a scalar E and a (2,3) array, as astropy writes
them. astropy reads a TDIM column as an array per row even of one element; the conformance check
(run on tests/data) compares torchfits' reading with astropy's. Run: python3 tests/data/make_tdim.py
"""
import os

import numpy as np
from astropy.io import fits

here = os.path.dirname(os.path.abspath(__file__))
rows = 4
columns = [
    fits.Column(name="ONE_BY_ONE", format="E", dim="(1,1)", array=np.arange(rows, dtype=np.float32).reshape(rows, 1, 1) + 0.5),
    fits.Column(name="ONE", format="J", dim="(1)", array=np.arange(rows, dtype=np.int32).reshape(rows, 1) * 7),
    fits.Column(name="SCALAR", format="E", array=np.arange(rows, dtype=np.float32) * 1.5),
    fits.Column(name="MATRIX", format="6D", dim="(3,2)", array=np.arange(rows * 6, dtype=np.float64).reshape(rows, 2, 3)),
]
table = fits.BinTableHDU.from_columns(columns, name="TDIM")
fits.HDUList([fits.PrimaryHDU(), table]).writeto(os.path.join(here, "tdim.fits"), overwrite=True)
