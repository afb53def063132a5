"""Writes examples/data/sample.fits, the small file the demo and the doc examples read.

Run with any Python that has numpy and astropy (the conformance check's virtual environment has
both): python3 examples/data/make_sample.py
"""
import os

import numpy as np
from astropy.io import fits

here = os.path.dirname(os.path.abspath(__file__))
y, x = np.mgrid[0:48, 0:64]
# a smooth sky, two Gaussian "stars" and deterministic noise
sky = 100.0 + 0.05 * x + 0.02 * y
stars = 500.0 * np.exp(-((x - 20) ** 2 + (y - 30) ** 2) / 8.0) + 300.0 * np.exp(-((x - 45) ** 2 + (y - 12) ** 2) / 5.0)
noise = ((x * 7919 + y * 104729) % 97) / 97.0 - 0.5
sci = (sky + stars + noise).astype(np.float32)

primary = fits.PrimaryHDU()
primary.header["ORIGIN"] = "torchfits sample"
primary.header["TELESCOP"] = "SYNTH"
sci_hdu = fits.ImageHDU(sci, name="SCI")
h = sci_hdu.header
h["EXPTIME"] = (30.0, "seconds")
h["BUNIT"] = "adu"
h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
h["CRPIX1"], h["CRPIX2"] = 32.5, 24.5
h["CRVAL1"], h["CRVAL2"] = 150.1, 2.2
h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -7.3e-5, 0.0, 0.0, 7.3e-5
dq = fits.ImageHDU((sci > 200).astype(np.int16), name="DQ")
comp = fits.CompImageHDU((sci * 10).astype(np.int32), name="SCI_RICE", compression_type="RICE_1", tile_shape=(16, 64))
cat = fits.BinTableHDU.from_columns(
    [
        fits.Column(name="ra", format="D", array=np.array([150.1, 150.099])),
        fits.Column(name="dec", format="D", array=np.array([2.2005, 2.1991])),
        fits.Column(name="flux", format="E", array=np.array([500.0, 300.0], dtype=np.float32)),
    ],
    name="CATALOG",
)
fits.HDUList([primary, sci_hdu, dq, comp, cat]).writeto(os.path.join(here, "sample.fits"), overwrite=True, checksum=True)
