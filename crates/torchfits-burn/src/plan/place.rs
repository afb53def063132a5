//! Placing one batch of catalog positions: each position's HEALPix cell gives its candidate
//! images, the candidates are transformed image by image (one WCS call per image and batch),
//! and each band keeps the image where the position lies farthest from an edge (or, for the
//! first band with [`Overlap::Every`], every image that contains it).

// Indexing: rows are below the batch's length and images below the image list's, both
// checked where the pairs are made; per-image offsets have one entry per image plus one.
#![allow(clippy::indexing_slicing)]

use cdshealpix::nested;
use torchfits_core::{Error, ErrorKind, Result, Wcs};

use super::Overlap;
use super::footprint::CellIndex;

/// An image the plan places positions on.
#[derive(Debug)]
pub(crate) struct Image {
    pub(crate) band: usize,
    /// The image's position in its band's list.
    pub(crate) position: usize,
    /// The key it shares with the images of the other bands of its field
    /// ([`crate::SurveyPlanner::bands_table`]), if any.
    pub(crate) key: Option<u32>,
    /// `[ny, nx]`.
    pub(crate) shape: [usize; 2],
    pub(crate) wcs: Wcs,
}

/// The placements of one batch: items in row order, and for each item and band the image (its
/// position in the band's list; -1: the band lacks the position) and the 0-based pixel.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    pub(crate) rows: Vec<u32>,
    pub(crate) image: Vec<Vec<i32>>,
    pub(crate) x: Vec<Vec<f64>>,
    pub(crate) y: Vec<Vec<f64>>,
}

/// One position found on one image.
#[derive(Debug, Clone, Copy)]
struct Hit {
    row: u32,
    image: u32,
    x: f64,
    y: f64,
    /// Pixels to the nearest edge.
    depth: f64,
}

/// Places the positions `ra`, `dec` (degrees) of one batch.
pub(crate) fn place(
    images: &[Option<Image>],
    bands: usize,
    index: &CellIndex,
    overlap: Overlap,
    ra: &[f64],
    dec: &[f64],
    threads: usize,
) -> Result<Placed> {
    let by_image = candidates_by_image(images.len(), index, ra, dec, threads)?;
    let hits = transform(images, &by_image, ra, dec, threads)?;
    Ok(choose(images, bands, overlap, ra.len(), hits))
}

/// The workers' results, or an error if one of them panicked (never silently less).
pub(crate) fn joined<T>(workers: Vec<std::thread::ScopedJoinHandle<'_, T>>) -> Result<Vec<T>> {
    workers
        .into_iter()
        .map(|w| w.join().map_err(|_| Error::new(ErrorKind::Decoding, "a planning thread panicked")))
        .collect()
}

/// Rows grouped by candidate image: `rows[offsets[i]..offsets[i + 1]]` are image i's.
struct ByImage {
    offsets: Vec<usize>,
    rows: Vec<u32>,
}

fn candidates_by_image(images: usize, index: &CellIndex, ra: &[f64], dec: &[f64], threads: usize) -> Result<ByImage> {
    let n = ra.len();
    let per = n.div_ceil(threads.max(1)).max(1);
    let layer = nested::get(index.depth());
    let pairs: Vec<Vec<(u32, u32)>> = std::thread::scope(|s| -> Result<Vec<Vec<(u32, u32)>>> {
        let workers: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| {
                let end = (start + per).min(n);
                s.spawn(move || {
                    let mut out = Vec::with_capacity((end - start) * 2);
                    for i in start..end {
                        let (lon, lat) = (ra[i], dec[i]);
                        if !(lon.is_finite() && lat.is_finite()) || lat.abs() > 90.0 {
                            continue;
                        }
                        let lon = lon.rem_euclid(360.0);
                        for &image in index.candidates(layer, lon.to_radians(), lat.to_radians()) {
                            out.push((image, i as u32));
                        }
                    }
                    out
                })
            })
            .collect();
        joined(workers)
    })?;
    // a counting sort by image, rows staying in order within an image
    let mut offsets = vec![0usize; images + 1];
    for part in &pairs {
        for &(image, _) in part {
            offsets[image as usize + 1] += 1;
        }
    }
    for i in 0..images {
        offsets[i + 1] += offsets[i];
    }
    let mut next = offsets.clone();
    let mut rows = vec![0u32; offsets[images]];
    for part in &pairs {
        for &(image, row) in part {
            rows[next[image as usize]] = row;
            next[image as usize] += 1;
        }
    }
    Ok(ByImage { offsets, rows })
}

/// Every candidate through its image's WCS, the images shared among the threads by their
/// number of candidates; the hits inside their image.
fn transform(images: &[Option<Image>], by: &ByImage, ra: &[f64], dec: &[f64], threads: usize) -> Result<Vec<Hit>> {
    let total = by.rows.len();
    let per = total.div_ceil(threads.max(1)).max(1);
    // image ranges of about `per` candidates each
    let mut ranges = Vec::new();
    let mut start = 0;
    for i in 0..images.len() {
        if by.offsets[i + 1] - by.offsets[start] >= per {
            ranges.push(start..i + 1);
            start = i + 1;
        }
    }
    ranges.push(start..images.len());
    let parts: Vec<Vec<Hit>> = std::thread::scope(|s| -> Result<Vec<Vec<Hit>>> {
        let workers: Vec<_> = ranges
            .into_iter()
            .map(|range| {
                s.spawn(move || {
                    let mut hits = Vec::new();
                    let (mut world, mut pixels) = (Vec::new(), Vec::new());
                    for i in range {
                        let Some(image) = &images[i] else { continue };
                        let rows = &by.rows[by.offsets[i]..by.offsets[i + 1]];
                        if rows.is_empty() {
                            continue;
                        }
                        world.clear();
                        world.extend(rows.iter().flat_map(|&r| [ra[r as usize], dec[r as usize]]));
                        pixels.resize(world.len(), 0.0);
                        if image.wcs.world_to_pixel(&world, &mut pixels).is_err() {
                            continue;
                        }
                        let [ny, nx] = image.shape;
                        for (&row, p) in rows.iter().zip(pixels.chunks_exact(2)) {
                            let (x, y) = (p[0], p[1]);
                            // inside: x in [-0.5, nx - 0.5), and alike for y (NaN is outside)
                            let (w, h) = (nx as f64 - 0.5, ny as f64 - 0.5);
                            if x >= -0.5 && x < w && y >= -0.5 && y < h {
                                let depth = (x + 0.5).min(w - x).min(y + 0.5).min(h - y);
                                hits.push(Hit { row, image: i as u32, x, y, depth });
                            }
                        }
                    }
                    hits
                })
            })
            .collect();
        joined(workers)
    })?;
    Ok(parts.into_iter().flatten().collect())
}

/// The items of the batch from its hits, in row order.
// rows index every band's list of best hits alike
#[allow(clippy::needless_range_loop)]
fn choose(images: &[Option<Image>], bands: usize, overlap: Overlap, n: usize, hits: Vec<Hit>) -> Placed {
    let band_of = |h: &Hit| images[h.image as usize].as_ref().map_or(0, |i| i.band);
    let position = |h: &Hit| images[h.image as usize].as_ref().map_or(-1, |i| i.position as i32);
    let key = |h: &Hit| images[h.image as usize].as_ref().and_then(|i| i.key);
    let keyed = images.iter().flatten().any(|i| i.key.is_some());
    // with keys, every hit of a row at hand: a band takes the image of the first band's key
    let mut by_row: Vec<Hit> = if keyed { hits.clone() } else { Vec::new() };
    by_row.sort_unstable_by_key(|h| (h.row, h.image));
    let mut best: Vec<Vec<Option<Hit>>> = vec![vec![None; n]; bands];
    let mut every: Vec<Hit> = Vec::new();
    for h in hits {
        let b = band_of(&h);
        if b == 0 && overlap == Overlap::Every {
            every.push(h);
        }
        let slot = &mut best[b][h.row as usize];
        // the deepest; on a tie the first image (the order the user gave)
        if slot.is_none_or(|s| h.depth > s.depth || (h.depth == s.depth && h.image < s.image)) {
            *slot = Some(h);
        }
    }
    let mut out = Placed {
        rows: Vec::new(),
        image: vec![Vec::new(); bands],
        x: vec![Vec::new(); bands],
        y: vec![Vec::new(); bands],
    };
    let same_key = |row: usize, b: usize, first: Option<Hit>| -> Option<Hit> {
        let k = key(&first?)?;
        let start = by_row.partition_point(|h| (h.row as usize) < row);
        by_row[start..]
            .iter()
            .take_while(|h| h.row as usize == row)
            .find(|h| band_of(h) == b && key(h) == Some(k))
            .copied()
    };
    let push = |out: &mut Placed, row: usize, first: Option<Hit>| {
        out.rows.push(row as u32);
        for b in 0..bands {
            let h = if b == 0 { first } else { same_key(row, b, first).or(best[b][row]) };
            out.image[b].push(h.map_or(-1, |h| position(&h)));
            out.x[b].push(h.map_or(f64::NAN, |h| h.x));
            out.y[b].push(h.map_or(f64::NAN, |h| h.y));
        }
    };
    match overlap {
        Overlap::FarthestFromEdge => {
            for row in 0..n {
                if (0..bands).any(|b| best[b][row].is_some()) {
                    push(&mut out, row, best[0][row]);
                }
            }
        }
        Overlap::Every => {
            every.sort_unstable_by_key(|h| (h.row, h.image));
            let mut k = 0;
            for row in 0..n {
                let start = k;
                while k < every.len() && every[k].row as usize == row {
                    push(&mut out, row, Some(every[k]));
                    k += 1;
                }
                if start == k && (1..bands).any(|b| best[b][row].is_some()) {
                    push(&mut out, row, None);
                }
            }
        }
    }
    out
}
