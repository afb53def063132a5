//! Image footprints on the sphere, and the HEALPix index from a cell to the images whose
//! footprint touches it: a catalog position is transformed only through the images of its cell.

// Indexing: the index's offsets have one entry per cell of its depth plus one, and cells come
// from the HEALPix layer of that depth.
#![allow(clippy::indexing_slicing)]

use cdshealpix::nested;
use cdshealpix::sph_geom::ContainsSouthPoleMethod;
use cdshealpix::sph_geom::coo3d::Coo3D;
use moc::moc::range::RangeMOC;
use moc::qty::Hpx;
use torchfits_core::{Error, ErrorKind, Result, Wcs};

/// Points per edge of an image's outline: enough to follow SIP and wide fields (the outline is
/// a polygon of great-circle arcs between them).
const EDGE_SAMPLES: usize = 16;

/// Pixels of margin around the image: the arcs between outline points cut a little inside a
/// curved edge, and the margin keeps the cells they cut off.
const MARGIN: f64 = 8.0;

/// The finest depth the index goes to: 12 * 4^10 cells (a 50 MB index of offsets).
pub(crate) const MAX_DEPTH: u8 = 10;

/// An image's outline on the sky and its centre, `(lon, lat)` in radians.
#[derive(Debug, Clone)]
pub(crate) struct Outline {
    pub(crate) vertices: Vec<(f64, f64)>,
    pub(crate) centre: (f64, f64),
}

/// An image's outline, a margin outside its edges.
pub(crate) fn outline(wcs: &Wcs, [ny, nx]: [usize; 2]) -> Result<Outline> {
    let (x0, x1) = (-0.5 - MARGIN, nx as f64 - 0.5 + MARGIN);
    let (y0, y1) = (-0.5 - MARGIN, ny as f64 - 0.5 + MARGIN);
    let n = EDGE_SAMPLES;
    let mut pixels = Vec::with_capacity(8 * n + 2);
    let at = |a: f64, b: f64, k: usize| a + (b - a) * k as f64 / n as f64;
    for k in 0..n {
        pixels.extend([at(x0, x1, k), y0]);
    }
    for k in 0..n {
        pixels.extend([x1, at(y0, y1, k)]);
    }
    for k in 0..n {
        pixels.extend([at(x1, x0, k), y1]);
    }
    for k in 0..n {
        pixels.extend([x0, at(y1, y0, k)]);
    }
    pixels.extend([(nx as f64 - 1.0) / 2.0, (ny as f64 - 1.0) / 2.0]);
    let mut world = vec![0.0; pixels.len()];
    let status = wcs.pixel_to_world(&pixels, &mut world)?;
    if status.iter().any(|&s| s != 0) || world.iter().any(|v| !v.is_finite()) {
        return Err(Error::new(ErrorKind::Parameter, "the image's edges have no sky position through its WCS"));
    }
    let radians: Vec<(f64, f64)> = world.chunks_exact(2).map(|w| (w[0].to_radians(), w[1].to_radians())).collect();
    let centre = radians[radians.len() - 1];
    Ok(Outline { vertices: radians[..radians.len() - 1].to_vec(), centre })
}

/// The cells of `depth` an outline touches (its centre tells which side is inside).
pub(crate) fn cells(depth: u8, outline: &Outline) -> Vec<u64> {
    let (lon, lat) = outline.centre;
    let inside = ContainsSouthPoleMethod::ControlPointIn(Coo3D::from_sph_coo(lon, lat));
    nested::custom_polygon_coverage(depth, &outline.vertices, &inside, true).flat_iter().collect()
}

/// A depth whose cells are about a quarter of an image's side `side` (radians) across, so an
/// image covers a few tens of cells and a position has few candidates beyond its true images.
pub(crate) fn depth_for(side: f64) -> u8 {
    // a cell of depth d is about sqrt(4 pi / (12 * 4^d)) radians across
    let mut depth = 0u8;
    while depth < MAX_DEPTH && (4.0 * std::f64::consts::PI / (12.0 * 4f64.powi(i32::from(depth)))).sqrt() > side / 4.0 {
        depth += 1;
    }
    depth
}

/// For each cell of one depth, the images whose footprint touches it: compressed rows (the
/// images of cell c are `images[offsets[c]..offsets[c + 1]]`).
#[derive(Debug)]
pub(crate) struct CellIndex {
    depth: u8,
    offsets: Vec<u32>,
    images: Vec<u32>,
}

impl CellIndex {
    /// The index of `(cell, image)` pairs at `depth`.
    pub(crate) fn new(depth: u8, mut pairs: Vec<(u64, u32)>) -> Result<CellIndex> {
        let cells = nested::n_hash(depth) as usize;
        if pairs.len() >= u32::MAX as usize {
            return Err(Error::new(ErrorKind::Parameter, "more than 2^32 image cells: use fewer, larger cells"));
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut offsets = vec![0u32; cells + 1];
        for &(cell, _) in &pairs {
            offsets[cell as usize + 1] += 1;
        }
        for c in 0..cells {
            offsets[c + 1] += offsets[c];
        }
        Ok(CellIndex { depth, offsets, images: pairs.into_iter().map(|(_, i)| i).collect() })
    }

    /// The HEALPix depth.
    pub(crate) fn depth(&self) -> u8 {
        self.depth
    }

    /// The survey's coverage: the cells some image touches, as a MOC.
    pub(crate) fn coverage(&self) -> RangeMOC<u64, Hpx<u64>> {
        let cells = self.offsets.windows(2).enumerate().filter(|(_, w)| w[1] > w[0]).map(|(c, _)| c as u64);
        RangeMOC::from_fixed_depth_cells(self.depth, cells, None)
    }

    /// The images that may contain the position (lon, lat) in radians.
    #[inline]
    pub(crate) fn candidates(&self, layer: &nested::Layer, lon: f64, lat: f64) -> &[u32] {
        let cell = layer.hash(lon, lat) as usize;
        &self.images[self.offsets[cell] as usize..self.offsets[cell + 1] as usize]
    }
}
