//! The planes an image item is made of, read the same way by every image dataset: the HDUs of
//! each file and their roles ([`PlaneSet`]), and a window of them, which may cross the image's
//! edge ([`PlaneSet::cut_into`]).

// Indexing: rows of a clipped section are placed at offsets inside a window sized to hold them.
#![allow(clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;

use torchfits_core::{Error, ErrorKind, FitsFile, HduSelector, ImageReader, Pixel, PooledBuffer, Result, Section};

use crate::reading::{ReadOptions, Reader};
use crate::roles::{Channel, ChannelRole};

/// The HDUs an item reads of each of its files, with their roles: the science planes (the
/// batch's `images`), then the integer masks and the weights, each in the order they were added.
#[derive(Debug, Clone)]
pub(crate) struct PlaneSet {
    science: Vec<HduSelector>,
    masks: Vec<HduSelector>,
    weights: Vec<(HduSelector, ChannelRole)>,
}

/// Where a window's planes go: one slice per role, each `planes x w x h` of its role.
pub(crate) struct WindowOut<'a> {
    pub science: &'a mut [f32],
    pub masks: &'a mut [i64],
    pub weights: &'a mut [f32],
}

impl PlaneSet {
    /// The planes of [`crate::DatasetBuilder::channel`], or the dataset's HDU as the one science
    /// plane where none was added; an error for a flag role or no science plane.
    pub(crate) fn new(options: &ReadOptions) -> Result<PlaneSet> {
        let added = match options.channels.is_empty() {
            true => vec![(options.hdu.clone(), ChannelRole::Science)],
            false => options.channels.clone(),
        };
        let mut set = PlaneSet { science: Vec::new(), masks: Vec::new(), weights: Vec::new() };
        for (hdu, role) in added {
            match role {
                ChannelRole::Science => set.science.push(hdu),
                ChannelRole::Mask => set.masks.push(hdu),
                ChannelRole::InverseVariance | ChannelRole::Variance => set.weights.push((hdu, role)),
                ChannelRole::Flag => {
                    return Err(Error::new(
                        ErrorKind::Parameter,
                        format!("channel {hdu}: Flag is a plane the dataset makes, not an HDU's role"),
                    ));
                }
            }
        }
        if set.science.is_empty() {
            return Err(Error::new(ErrorKind::Parameter, "no science channel among the channels"));
        }
        Ok(set)
    }

    /// How many planes of each role: science, masks, weights.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.science.len(), self.masks.len(), self.weights.len())
    }

    /// The role of each weight plane, in order.
    pub(crate) fn weight_roles(&self) -> Arc<[ChannelRole]> {
        self.weights.iter().map(|(_, role)| *role).collect()
    }

    /// The planes as a batch holds them (science, masks, weights), each named by its HDU and
    /// `band` (the HDU's name where there is no band).
    pub(crate) fn channels(&self, band: Option<&str>) -> (Vec<Channel>, Vec<Channel>, Vec<Channel>) {
        let of = |hdu: &HduSelector, role| Channel::of(role, band.map_or_else(|| hdu.to_string(), str::to_string), hdu);
        (
            self.science.iter().map(|h| of(h, ChannelRole::Science)).collect(),
            self.masks.iter().map(|h| of(h, ChannelRole::Mask)).collect(),
            self.weights.iter().map(|(h, role)| of(h, *role)).collect(),
        )
    }

    /// The first science HDU (where a header keyword's label is read).
    pub(crate) fn first(&self) -> &HduSelector {
        &self.science[0]
    }

    /// The 2-D shape every plane of `file` has, or why the file cannot be used (a plane that is
    /// not 2-D, planes of different shapes), naming the HDU.
    pub(crate) fn shape(&self, file: &FitsFile) -> Result<[usize; 2]> {
        let mut first: Option<[usize; 2]> = None;
        for hdu in self.hdus() {
            let image = file.image(hdu.clone())?;
            let &[ny, nx] = image.shape() else {
                let s = image.shape().to_vec();
                return Err(Error::new(ErrorKind::Unsupported, format!("a 2-D image is needed, not shape {s:?}"))
                    .in_hdu(image.index()));
            };
            match first {
                Some(f) if f != [ny, nx] => {
                    return Err(Error::new(
                        ErrorKind::Parameter,
                        format!("channel {hdu} has shape {:?}, channel {} {f:?}", [ny, nx], self.first()),
                    )
                    .in_hdu(image.index()));
                }
                _ => first = Some([ny, nx]),
            }
        }
        Ok(first.unwrap_or_default())
    }

    fn hdus(&self) -> impl Iterator<Item = &HduSelector> {
        self.science.iter().chain(&self.masks).chain(self.weights.iter().map(|(h, _)| h))
    }

    /// Fetches ahead what cutting windows of `w` x `h` pixels at each of `origins` (x0, y0) of
    /// every plane of the image file at `path` needs, where the file is in object storage.
    pub(crate) fn prefetch(
        &self,
        reader: &Reader,
        path: &Path,
        origins: &[[i64; 2]],
        [w, h]: [usize; 2],
    ) -> Result<()> {
        reader
            .cache()
            .with(path, |f| {
                for hdu in self.hdus() {
                    let image = f.image(hdu.clone())?;
                    let &[ny, nx] = image.shape() else { continue };
                    let clip = |a: i64, n: usize| a.clamp(0, n as i64) as usize;
                    let sections: Vec<Section> = origins
                        .iter()
                        .map(|&[x0, y0]| {
                            let (xa, xb) = (clip(x0, nx), clip(x0 + w as i64, nx));
                            let (ya, yb) = (clip(y0, ny), clip(y0 + h as i64, ny));
                            Section::new(vec![ya..yb, xa..xb])
                        })
                        .filter(|s| !s.is_empty())
                        .collect();
                    image.prefetch(&sections)?;
                }
                Ok(())
            })
            .map_err(|e| e.in_file(path))
    }

    /// The `w` x `h` pixels from (x0, y0) of every plane of the image file at `path` into
    /// `out` (0 where they lie off the image); the plane flagging those (1.0 off the image)
    /// where there are any, `None` where the window lies wholly on the image.
    pub(crate) fn cut_into(
        &self,
        reader: &Reader,
        path: &Path,
        [x0, y0]: [i64; 2],
        [w, h]: [usize; 2],
        out: WindowOut<'_>,
    ) -> Result<Option<PooledBuffer<f32>>> {
        let plane = w * h;
        let cut = reader.cache().with(path, |f| {
            // each plane's image is looked up once: the first gives the shape the window is
            // clipped to, and every other must have it
            let first = f.image(self.first().clone())?;
            let &[ny, nx] = first.shape() else {
                let s = first.shape().to_vec();
                return Err(Error::new(ErrorKind::Unsupported, format!("a 2-D image is needed, not shape {s:?}"))
                    .in_hdu(first.index()));
            };
            let clip = |a: i64, n: usize| a.clamp(0, n as i64) as usize;
            let (xa, xb) = (clip(x0, nx), clip(x0 + w as i64, nx));
            let (ya, yb) = (clip(y0, ny), clip(y0 + h as i64, ny));
            let section = Section::new(vec![ya..yb, xa..xb]);
            let inside = (xa as i64, ya as i64, xb - xa, yb - ya) == (x0, y0, w, h);
            let part = [xb - xa, yb - ya];
            let clipped = Clip { section, part, at: [xa as i64 - x0, ya as i64 - y0], w, shape: [ny, nx], inside };
            let mut science = out.science.chunks_exact_mut(plane.max(1));
            if let Some(o) = science.next() {
                clipped.read(reader, &first, o)?;
            }
            for (o, hdu) in science.zip(&self.science[1..]) {
                clipped.read(reader, &f.image(hdu.clone())?, o)?;
            }
            for (o, hdu) in out.masks.chunks_exact_mut(plane.max(1)).zip(&self.masks) {
                clipped.read(reader, &f.image(hdu.clone())?, o)?;
            }
            for (o, (hdu, _)) in out.weights.chunks_exact_mut(plane.max(1)).zip(&self.weights) {
                clipped.read(reader, &f.image(hdu.clone())?, o)?;
            }
            Ok(clipped)
        });
        let clipped = cut.map_err(|e| e.in_file(path))?;
        if clipped.inside {
            return Ok(None);
        }
        let mut outside = reader.pool().get::<f32>(plane).map_err(|e| e.in_file(path))?;
        outside.fill(1.0);
        let [cw, ch] = clipped.part;
        for r in 0..ch {
            let at = clipped.offset(r);
            outside[at..at + cw].fill(0.0);
        }
        Ok(Some(outside))
    }
}

/// The part of a window that lies on its image: the section read, its size, where its first pixel goes
/// in the window (`[x, y]`, window pixels) of width `w`, the image's shape and whether the window
/// lies wholly on it.
struct Clip {
    section: Section,
    /// `[columns, rows]` of the section.
    part: [usize; 2],
    at: [i64; 2],
    w: usize,
    shape: [usize; 2],
    inside: bool,
}

impl Clip {
    /// The window offset of the clipped section's row `r`.
    fn offset(&self, r: usize) -> usize {
        (self.at[1] as usize + r) * self.w + self.at[0] as usize
    }

    /// `image`'s pixels of the window into `out`: straight in for a window on the image, else 0
    /// with the clipped section's rows placed; an error for an image of another shape.
    fn read<T: Pixel>(&self, reader: &Reader, image: &ImageReader, out: &mut [T]) -> Result<()> {
        if image.shape() != self.shape {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("a channel of shape {:?} beside one of {:?}", image.shape(), self.shape),
            )
            .in_hdu(image.index()));
        }
        if self.inside {
            return image.read_section_into(&self.section, out);
        }
        out.fill(T::default());
        let [cw, ch] = self.part;
        if cw == 0 || ch == 0 {
            return Ok(());
        }
        let mut part = reader.pool().get::<T>(cw * ch)?;
        image.read_section_into(&self.section, &mut part)?;
        for (r, row) in part.chunks_exact(cw).enumerate() {
            let at = self.offset(r);
            out[at..at + cw].copy_from_slice(row);
        }
        Ok(())
    }
}
