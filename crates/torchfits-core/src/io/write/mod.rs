//! Writing FITS files: images (every pixel type, optional BSCALE/BZERO quantisation, tile
//! compression), headers, checksums; atomically.
//!
//! A [`FitsWriter`] writes into a temporary file beside the target and renames it into place
//! only in [`FitsWriter::finish`]: an error, a panic or a killed process leaves the target as it
//! was (absent, or the old file) and the temporary file is removed when the writer drops. An
//! existing target is replaced only with [`WriteOptions::overwrite`].
//!
//! ```
//! use torchfits_core::{FitsFile, FitsWriter, Header};
//! # let dir = std::env::temp_dir().join(format!("torchfits-doc-write-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("out.fits");
//! let mut header = Header::new();
//! header.set("OBJECT", "M31", Some("target"))?;
//! let pixels: Vec<u16> = (0..12).collect();
//! let mut writer = FitsWriter::create(&path)?;
//! writer.image(&pixels, &[3, 4]).header(&header).write()?;   // shape in C order
//! writer.finish()?;
//! let file = FitsFile::open(&path)?;
//! assert_eq!(file.image(0)?.read::<u16>()?, pixels);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Indexing: the writer indexes only the caller's data, whose length is checked against
// its shape on entry, and its own headers, tile grids and strides; it reads no file content.
#![allow(clippy::indexing_slicing)]

mod column;
mod compressed_table;
mod spool;
mod table;
mod verify;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::compression::{Codec, TileCompression, rice};
pub use column::ColumnSpec;
pub use compressed_table::{TableAlgorithm, TableCompression};
pub use table::TableWrite;
use torchfits_format::cards::{Record, end, format_card, raw_card, structural};
use torchfits_format::checksum;
use torchfits_format::header::is_reserved;
pub use verify::{ChecksumStatus, HduChecksum, verify};

use crate::ffi::cfitsio::{CompressParams, Handle};
use torchfits_format::error::{Error, Result};
use torchfits_format::header::{Header, Value};
use torchfits_format::pixel::{Dtype, Pixel};

const BLOCK: usize = 2880;
/// Pixels converted per chunk: the byte-swapped copy of the data never exceeds this.
const CHUNK_BYTES: usize = 1 << 20;

/// How a [`FitsWriter`] treats the target, and what it adds.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    overwrite: bool,
    append: bool,
    checksum: bool,
    sync: bool,
    fail_after: Option<u64>,
    fail_dir_sync: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            overwrite: false,
            append: false,
            checksum: false,
            sync: true,
            fail_after: None,
            fail_dir_sync: false,
        }
    }
}

impl WriteOptions {
    /// Defaults: a new file (an existing target is an error), no checksums, flushed to disk
    /// before it is moved into place.
    pub fn new() -> Self {
        WriteOptions::default()
    }

    /// Whether [`FitsWriter::finish`] waits for the data to reach the disk (`fsync`) before the
    /// rename (default yes: after a power cut the target is the old file or the complete new
    /// one). Without it the file is complete for every reader at once, as with
    /// `std::fs::write`, but a crash of the machine soon after may lose it.
    pub fn sync(mut self, yes: bool) -> Self {
        self.sync = yes;
        self
    }

    /// Replaces an existing target (atomically, when the write is complete). The new file keeps
    /// the old one's permissions; a target that is a symbolic link is written through (the file
    /// it points to is replaced, the link stays).
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Appends HDUs to an existing target: its HDUs are copied into the temporary file first, so
    /// the target is still replaced in one rename and is never seen half-written. The writer
    /// holds an exclusive lock on the target (`flock`) from the copy to the rename: two writers
    /// appending to one file, in one process or several, take turns, and neither loses the
    /// other's HDUs (the second waits, then copies the first's result).
    pub fn append(mut self, yes: bool) -> Self {
        self.append = yes;
        self
    }

    /// Writes CHECKSUM and DATASUM in every HDU (see [`verify`]).
    pub fn checksum(mut self, yes: bool) -> Self {
        self.checksum = yes;
        self
    }

    /// For tests of failure handling: every write after the first `bytes` bytes fails, as a full
    /// disk would.
    #[doc(hidden)]
    pub fn fail_after(mut self, bytes: u64) -> Self {
        self.fail_after = Some(bytes);
        self
    }

    /// For tests of failure handling: the directory's `fsync` after the rename fails.
    #[doc(hidden)]
    pub fn fail_dir_sync(mut self, yes: bool) -> Self {
        self.fail_dir_sync = yes;
        self
    }

    /// Starts writing `path` with these options.
    pub fn create(&self, path: impl AsRef<Path>) -> Result<FitsWriter> {
        FitsWriter::with_options(path.as_ref(), self.clone())
    }
}

/// Tile-compression algorithms (FITS tiled image convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// RICE_1: fast, lossless for integers; the usual choice.
    Rice,
    /// GZIP_1: deflate of the big-endian bytes.
    Gzip1,
    /// GZIP_2: deflate of the bytes shuffled by significance (better on floats).
    Gzip2,
    /// HCOMPRESS_1: the H-transform (2-D tiles; lossless at scale 0).
    Hcompress,
    /// PLIO_1: run-length coding for masks (integers 0 to 2^24).
    Plio,
}

/// Dithering of quantised floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dither {
    /// No dithering.
    None,
    /// SUBTRACTIVE_DITHER_1 (the default, as in cfitsio and astropy).
    Subtractive1,
    /// SUBTRACTIVE_DITHER_2: like 1, exact zeros kept exact.
    Subtractive2,
}

/// How an image is tile-compressed. Integers are compressed losslessly; floats are quantised to
/// integers first (`quantize_level`: the noise sigma divided by the quantisation step, cfitsio's
/// `q`; 0 keeps them exact, which only GZIP supports).
///
/// ```
/// use torchfits_core::write::{Algorithm, Compression};
/// let c = Compression::new(Algorithm::Rice).tile(&[16, 256]).quantize_level(8.0);
/// assert_eq!(c.algorithm, Algorithm::Rice);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Compression {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Tile shape in C order (default: one row of the image per tile; HCOMPRESS 16 rows).
    pub tile: Option<Vec<usize>>,
    /// Float quantisation level `q` (default 4, as cfitsio's; 0: lossless).
    pub quantize_level: f32,
    /// Dithering of quantised floats.
    pub dither: Dither,
    /// HCOMPRESS scale (0: lossless).
    pub hcompress_scale: f32,
}

impl Compression {
    /// `algorithm` with the defaults.
    pub fn new(algorithm: Algorithm) -> Self {
        Compression { algorithm, tile: None, quantize_level: 4.0, dither: Dither::Subtractive1, hcompress_scale: 0.0 }
    }

    /// Parses `rice`, `gzip` (GZIP_1), `gzip2`, `hcompress`, `plio` (case-insensitive; FITS
    /// names such as `RICE_1` too).
    pub fn parse(name: &str) -> Result<Self> {
        let algorithm = match name.to_ascii_lowercase().replace('_', "").as_str() {
            "rice" | "rice1" => Algorithm::Rice,
            "gzip" | "gzip1" => Algorithm::Gzip1,
            "gzip2" => Algorithm::Gzip2,
            "hcompress" | "hcompress1" => Algorithm::Hcompress,
            "plio" | "plio1" => Algorithm::Plio,
            other => {
                return Err(Error::parameter(format!(
                    "unknown compression {other:?} (rice, gzip, gzip2, hcompress, plio)"
                )));
            }
        };
        Ok(Compression::new(algorithm))
    }

    /// Tile shape in C order.
    pub fn tile(mut self, shape: &[usize]) -> Self {
        self.tile = Some(shape.to_vec());
        self
    }

    /// Float quantisation level (0: lossless).
    pub fn quantize_level(mut self, q: f32) -> Self {
        self.quantize_level = q;
        self
    }

    /// Dithering of quantised floats.
    pub fn dither(mut self, dither: Dither) -> Self {
        self.dither = dither;
        self
    }

    /// HCOMPRESS scale (0: lossless).
    pub fn hcompress_scale(mut self, scale: f32) -> Self {
        self.hcompress_scale = scale;
        self
    }

    fn params(&self, shape: &[usize]) -> Result<CompressParams> {
        let mut tile = [1i64; 9];
        let fits: Vec<usize> = shape.iter().rev().copied().collect();
        if fits.len() > 9 {
            return Err(Error::unsupported("tile compression of more than 9 axes"));
        }
        match &self.tile {
            Some(t) if t.len() != shape.len() || t.contains(&0) => {
                return Err(Error::parameter(format!("tile {t:?} does not fit an image of shape {shape:?}")));
            }
            Some(t) => {
                for (d, v) in tile.iter_mut().zip(t.iter().rev()) {
                    *d = *v as i64;
                }
            }
            None => {
                if let Some(&x) = fits.first() {
                    tile[0] = x as i64;
                }
                if self.algorithm == Algorithm::Hcompress && fits.len() > 1 {
                    tile[1] = hcompress_rows(fits[1]) as i64;
                }
            }
        }
        if self.algorithm == Algorithm::Hcompress {
            // the H-transform codes 2-D tiles: every tile, the edge ones too, at least 4x4 (as
            // cfitsio's own writer requires), higher axes one plane per tile
            let ok_axis = |n: usize, t: i64| {
                let t = t as usize;
                n >= 4 && t >= 4 && (n.is_multiple_of(t) || n % t >= 4 || t >= n)
            };
            if fits.len() < 2
                || !ok_axis(fits[0], tile[0])
                || !ok_axis(fits[1], tile[1])
                || tile.iter().skip(2).take(fits.len().saturating_sub(2)).any(|&t| t != 1)
            {
                return Err(Error::parameter(format!(
                    "HCOMPRESS needs an image of at least 4x4 and 2-D tiles of at least 4x4 pixels, edge tiles \
                     included (image {shape:?}, tile {:?})",
                    tile.iter().take(fits.len()).rev().collect::<Vec<_>>()
                )));
            }
        }
        let algorithm = match self.algorithm {
            Algorithm::Rice => 11,
            Algorithm::Gzip1 => 21,
            Algorithm::Gzip2 => 22,
            Algorithm::Plio => 31,
            Algorithm::Hcompress => 41,
        };
        let dither = match self.dither {
            Dither::None => -1,
            Dither::Subtractive1 => 1,
            Dither::Subtractive2 => 2,
        };
        // a seed taken from the image's checksum: the same pixels always give the same file
        Ok(CompressParams {
            algorithm,
            tile,
            quantize_level: self.quantize_level,
            dither,
            dither_seed: -1,
            hcomp_scale: self.hcompress_scale,
        })
    }
}

/// Rows per HCOMPRESS tile for an image of `rows` rows: 16 (cfitsio's choice) unless that
/// leaves an edge tile of fewer than 4 rows; then the nearest count that does not.
fn hcompress_rows(rows: usize) -> usize {
    if rows <= 30 {
        return rows;
    }
    let ok = |t: usize| rows.is_multiple_of(t) || rows % t >= 4;
    (16..=30).chain((4..16).rev()).find(|&t| ok(t)).unwrap_or(rows)
}

/// Floats stored as scaled integers: `stored = round((value - bzero) / bscale)`, NaN as BLANK.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Quantize {
    /// 16 or 32.
    pub bitpix: i32,
    /// BSCALE.
    pub bscale: f64,
    /// BZERO.
    pub bzero: f64,
}

impl Quantize {
    /// Explicit scaling to `bitpix` (16 or 32) bits.
    pub fn new(bitpix: i32, bscale: f64, bzero: f64) -> Result<Self> {
        if !matches!(bitpix, 16 | 32) {
            return Err(Error::parameter(format!("quantisation to BITPIX {bitpix}: use 16 or 32")));
        }
        if !(bscale.is_finite() && bscale != 0.0 && bzero.is_finite()) {
            return Err(Error::parameter(format!("BSCALE {bscale} / BZERO {bzero} cannot scale an image")));
        }
        Ok(Quantize { bitpix, bscale, bzero })
    }

    /// The scaling that spreads the finite values of `data` over the whole `bitpix` range (the
    /// smallest integer is kept for BLANK).
    pub fn fit<T: Pixel + Into<f64>>(bitpix: i32, data: &[T]) -> Result<Self> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in data.iter().map(|&v| v.into()).filter(|v: &f64| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return Quantize::new(bitpix, 1.0, 0.0);
        }
        let steps = if bitpix == 16 { 65_534.0 } else { 4_294_967_294.0 };
        let bscale = if hi > lo { (hi - lo) / steps } else { 1.0 };
        Quantize::new(bitpix, bscale, (hi + lo) / 2.0)
    }

    fn blank(&self) -> i64 {
        if self.bitpix == 16 { i16::MIN.into() } else { i32::MIN.into() }
    }
}

/// `records` + END, padded with blanks to whole blocks.
fn header_bytes(records: &[Record]) -> Vec<u8> {
    let mut bytes: Vec<u8> = Vec::with_capacity((records.len() + 1).div_ceil(36) * BLOCK);
    for r in records {
        bytes.extend_from_slice(r);
    }
    bytes.extend_from_slice(&end());
    bytes.resize(bytes.len().div_ceil(BLOCK) * BLOCK, b' ');
    bytes
}

/// Removes a file when dropped.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// Counter that makes temporary names unique within the process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a FITS file HDU by HDU, atomically (see the [module docs](self)).
#[derive(Debug)]
pub struct FitsWriter {
    target: PathBuf,
    tmp: PathBuf,
    file: File,
    /// Bytes written so far (always a whole number of HDUs between calls).
    at: u64,
    hdus: usize,
    options: WriteOptions,
    done: bool,
    /// The checksum of the data written since the current HDU's header, when checksums are on.
    summer: Option<checksum::Summer>,
    /// An HDU was begun and not completed (an error or a dropped table interrupted it): the
    /// file cannot be completed.
    open_hdu: bool,
    /// When appending: the target, open and locked (`flock`) until the rename.
    locked: Option<File>,
}

/// An HDU whose header is written and whose data is being written.
#[derive(Debug)]
struct OpenHdu {
    header_at: u64,
    records: Vec<Record>,
    data_at: u64,
}

impl FitsWriter {
    /// Starts a new file at `path` with the default [`WriteOptions`].
    pub fn create(path: impl AsRef<Path>) -> Result<FitsWriter> {
        WriteOptions::new().create(path)
    }

    fn with_options(named: &Path, options: WriteOptions) -> Result<FitsWriter> {
        // a symbolic link is written through: the file it points to is the one replaced
        let target = &resolve_links(named).map_err(|e| e.in_file(named))?;
        let in_file = |e: Error| e.in_file(target);
        let exists = target.exists();
        if exists && !options.overwrite && !options.append {
            return Err(in_file(Error::parameter("the file exists (pass overwrite to replace it)")));
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.torchfits-tmp", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| in_file(Error::io(e, &format!("cannot create {}", tmp.display()))))?;
        let mut writer = FitsWriter {
            target: target.to_path_buf(),
            tmp,
            file,
            at: 0,
            hdus: 0,
            options,
            done: false,
            summer: None,
            open_hdu: false,
            locked: None,
        };
        if writer.options.append && exists {
            let mut src = lock_current(target).map_err(in_file)?;
            let hdus = crate::FitsFile::open(target).and_then(|f| f.hdu_count()).map_err(in_file)?;
            let copied = std::io::copy(&mut src, &mut writer.file).map_err(|e| in_file(Error::io(e, "cannot copy")))?;
            writer.locked = Some(src);
            if copied % BLOCK as u64 != 0 {
                return Err(in_file(Error::decoding("the file is not a whole number of 2880-byte blocks")));
            }
            writer.at = copied;
            writer.hdus = hdus;
        }
        Ok(writer)
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Number of HDUs written (or copied, when appending) so far.
    pub fn hdu_count(&self) -> usize {
        self.hdus
    }

    fn err(&self, e: Error) -> Error {
        e.in_hdu(self.hdus).in_file(&self.target)
    }

    /// Writes `bytes` at the end, through the failure injection of [`WriteOptions::fail_after`].
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let mut bytes = bytes;
        let mut fail = false;
        if let Some(limit) = self.options.fail_after {
            let room = limit.saturating_sub(self.at) as usize;
            if bytes.len() > room {
                bytes = &bytes[..room];
                fail = true;
            }
        }
        self.file.write_all(bytes).map_err(|e| Error::io(e, "cannot write"))?;
        self.at += bytes.len() as u64;
        if let Some(s) = &mut self.summer {
            s.feed(bytes);
        }
        if fail {
            let e = std::io::Error::new(std::io::ErrorKind::StorageFull, "injected failure: no space left");
            return Err(Error::io(e, "cannot write"));
        }
        Ok(())
    }

    /// Writes header `records` (+ END) padded to a block; returns the offset of the first.
    fn put_header(&mut self, records: &[Record]) -> Result<u64> {
        let start = self.at;
        self.put(&header_bytes(records))?;
        Ok(start)
    }

    /// Zero padding after `data_bytes` bytes of data.
    fn pad_data(&mut self, data_bytes: u64) -> Result<()> {
        let pad = (BLOCK as u64 - data_bytes % BLOCK as u64) % BLOCK as u64;
        self.put(&vec![0u8; pad as usize])
    }

    /// The user's cards, less those the writer owns.
    fn user_records(header: Option<&Header>) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        for card in header.into_iter().flatten() {
            if is_reserved(card.base_keyword()) {
                continue;
            }
            out.extend(format_card(card)?);
        }
        // the long-string convention is declared where it is used (fitsverify warns otherwise)
        let declared = header.is_some_and(|h| h.contains("LONGSTRN"));
        if !declared && out.iter().any(|r| r.starts_with(b"CONTINUE")) {
            let note = "The OGIP long string convention may be used.";
            out.insert(0, structural("LONGSTRN", Value::Str("OGIP 1.0".into()), note));
        }
        Ok(out)
    }

    /// Writes an HDU's header (with CHECKSUM/DATASUM placeholders when checksums are on); the
    /// data follows through [`FitsWriter::put`], then [`FitsWriter::end_hdu`].
    fn begin_hdu(&mut self, mut records: Vec<Record>) -> Result<OpenHdu> {
        self.check_complete()?;
        self.open_hdu = true;
        if self.options.checksum {
            records.push(structural("CHECKSUM", Value::Str("0".repeat(16)), "HDU checksum"));
            records.push(structural("DATASUM", Value::Str("0".into()), "data unit checksum"));
        }
        let header_at = self.put_header(&records)?;
        if self.options.checksum {
            self.summer = Some(checksum::Summer::default());
        }
        Ok(OpenHdu { header_at, records, data_at: self.at })
    }

    /// Pads the data, and rewrites the header in place when `patched` (cards changed since
    /// `begin_hdu`, same count) or checksums are on.
    fn end_hdu(&mut self, hdu: OpenHdu, patched: bool) -> Result<()> {
        let data_bytes = self.at - hdu.data_at;
        self.pad_data(data_bytes)?;
        let data_sum = self.summer.take().map(checksum::Summer::finish);
        let mut records = hdu.records;
        if let Some(sum) = data_sum {
            let n = records.len();
            records[n - 1] = structural("DATASUM", Value::Str(sum.to_string()), "data unit checksum");
            let header = header_bytes(&records);
            let total = checksum::add(checksum::add_bytes(0, &header), sum);
            records[n - 2] = structural("CHECKSUM", Value::Str(checksum::encode(total)), "HDU checksum");
        }
        if patched || data_sum.is_some() {
            let header = header_bytes(&records);
            self.file.write_all_at(&header, hdu.header_at).map_err(|e| Error::io(e, "cannot write"))?;
        }
        self.hdus += 1;
        self.open_hdu = false;
        Ok(())
    }

    /// An error if an earlier HDU was left incomplete.
    fn check_complete(&self) -> Result<()> {
        if self.open_hdu {
            return Err(Error::parameter(
                "an earlier HDU was left incomplete (a failed write or an unfinished table): the file cannot be completed",
            ));
        }
        Ok(())
    }

    /// An empty primary HDU (before a table or a compressed image, which must be extensions).
    fn empty_primary(&mut self) -> Result<()> {
        let records = vec![
            structural("SIMPLE", Value::Bool(true), "conforms to FITS standard"),
            structural("BITPIX", Value::Int(8), "array data type"),
            structural("NAXIS", Value::Int(0), "number of array dimensions"),
            structural("EXTEND", Value::Bool(true), ""),
        ];
        let hdu = self.begin_hdu(records)?;
        self.end_hdu(hdu, false)
    }

    /// Starts an image HDU of `data` with `shape` (C order, slowest axis first).
    pub fn image<'w, 'd, T: Pixel>(&'w mut self, data: &'d [T], shape: &[usize]) -> ImageWrite<'w, 'd, T> {
        ImageWrite { writer: self, data, shape: shape.to_vec(), header: None, quantize: None, compression: None }
    }

    /// Completes the file: writes an empty primary HDU if nothing was written, flushes it to disk
    /// and moves it into place. Returns the path.
    pub fn finish(mut self) -> Result<PathBuf> {
        let _span = tracing::debug_span!("finish", path = %self.target.display(), hdus = self.hdus).entered();
        self.check_complete().map_err(|e| self.err(e))?;
        if self.hdus == 0 {
            self.empty_primary().map_err(|e| self.err(e))?;
        }
        let target = self.target.clone();
        let in_file = |e: Error| e.in_file(&target);
        if self.options.sync {
            self.file.sync_all().map_err(|e| in_file(Error::io(e, "cannot flush")))?;
        }
        // a replaced file keeps its permissions
        if let Ok(old) = std::fs::metadata(&target) {
            std::fs::set_permissions(&self.tmp, old.permissions())
                .map_err(|e| in_file(Error::io(e, "cannot give the new file the old one's permissions")))?;
        }
        if self.options.overwrite || self.options.append {
            std::fs::rename(&self.tmp, &target).map_err(|e| in_file(Error::io(e, "cannot move into place")))?;
        } else {
            // no clobbering, atomically: a link fails if the target appeared meanwhile
            match std::fs::hard_link(&self.tmp, &target) {
                Ok(()) => {
                    let _ = std::fs::remove_file(&self.tmp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(in_file(Error::parameter("the file exists (pass overwrite to replace it)")));
                }
                Err(_) if !target.exists() => {
                    std::fs::rename(&self.tmp, &target).map_err(|e| in_file(Error::io(e, "cannot move into place")))?;
                }
                Err(e) => return Err(in_file(Error::io(e, "cannot move into place"))),
            }
        }
        self.done = true;
        // the rename is done: the lock's turn is over
        self.locked = None;
        if self.options.sync {
            let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let synced = if self.options.fail_dir_sync {
                Err(std::io::Error::other("injected failure"))
            } else {
                File::open(dir).and_then(|d| d.sync_all())
            };
            synced.map_err(|e| {
                in_file(Error::io(
                    e,
                    "the file is in place, but its directory could not be flushed to disk (a crash of the machine may lose it)",
                ))
            })?;
        }
        Ok(target)
    }
}

/// `path` with every symbolic link along it followed (to a file that may not exist yet): the file
/// a write replaces. At most 40 links, as the kernel allows.
fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&path).map_err(|e| Error::io(e, "cannot read the link"))?;
                path = match path.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(Error::parameter("too many levels of symbolic links"))
}

/// The file at `target`, open and locked exclusively (`flock`), and still the file at `target`
/// once locked (a writer that held the lock before may have renamed a new file into place: then
/// the new one is locked instead).
fn lock_current(target: &Path) -> Result<File> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let file = File::open(target).map_err(|e| Error::io(e, "cannot read"))?;
        file.lock().map_err(|e| Error::io(e, "cannot lock the file to append to it"))?;
        let locked = file.metadata().map_err(|e| Error::io(e, "cannot read"))?;
        let now = std::fs::metadata(target).map_err(|e| Error::io(e, "cannot read"))?;
        if (locked.dev(), locked.ino()) == (now.dev(), now.ino()) {
            return Ok(file);
        }
    }
}

impl Drop for FitsWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// An image HDU being written: set its header, scaling or compression, then [`ImageWrite::write`].
#[derive(Debug)]
#[must_use = "nothing is written until .write()"]
pub struct ImageWrite<'w, 'd, T: Pixel> {
    writer: &'w mut FitsWriter,
    data: &'d [T],
    shape: Vec<usize>,
    header: Option<Header>,
    quantize: Option<Quantize>,
    compression: Option<Compression>,
}

impl<T: Pixel> ImageWrite<'_, '_, T> {
    /// Cards to write besides the structural ones (those are skipped if present).
    pub fn header(mut self, header: &Header) -> Self {
        self.header = Some(header.clone());
        self
    }

    /// Stores float pixels as scaled integers (see [`Quantize`]).
    pub fn quantize(mut self, q: Quantize) -> Self {
        self.quantize = Some(q);
        self
    }

    /// Tile-compresses the image (see [`Compression`]).
    pub fn compress(mut self, c: Compression) -> Self {
        self.compression = Some(c);
        self
    }

    /// Writes the HDU.
    pub fn write(self) -> Result<()> {
        let ImageWrite { writer, data, shape, header, quantize, compression } = self;
        let result = write_image(writer, data, &shape, header.as_ref(), quantize, compression.as_ref());
        result.map_err(|e| writer.err(e))
    }
}

fn write_image<T: Pixel>(
    w: &mut FitsWriter,
    data: &[T],
    shape: &[usize],
    header: Option<&Header>,
    quantize: Option<Quantize>,
    compression: Option<&Compression>,
) -> Result<()> {
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count != Some(data.len()) {
        return Err(Error::parameter(format!("{} pixels do not make an image of shape {shape:?}", data.len())));
    }
    if shape.len() > 999 {
        return Err(Error::parameter("more than 999 axes"));
    }
    let float = matches!(T::DTYPE, Dtype::F32 | Dtype::F64);
    if quantize.is_some() && !float {
        return Err(Error::parameter("only float images are quantised to scaled integers"));
    }
    if let Some(c) = compression {
        if quantize.is_some() {
            return Err(Error::parameter("compressed floats are quantised by the compression (quantize_level)"));
        }
        // a tile of no pixels has nothing to code (cfitsio divides by the tile's size)
        if shape.is_empty() || shape.contains(&0) {
            return Err(Error::parameter(format!(
                "an image of shape {shape:?} has no pixels to compress: write it uncompressed"
            )));
        }
        return write_compressed(w, data, shape, header, c);
    }
    let (bitpix, offset): (i64, Option<(f64, f64)>) = match (T::DTYPE, quantize) {
        (_, Some(q)) => (q.bitpix.into(), Some((q.bscale, q.bzero))),
        (Dtype::U8, _) => (8, None),
        (Dtype::I8, _) => (8, Some((1.0, -128.0))),
        (Dtype::I16, _) => (16, None),
        (Dtype::U16, _) => (16, Some((1.0, 32768.0))),
        (Dtype::I32, _) => (32, None),
        (Dtype::U32, _) => (32, Some((1.0, 2_147_483_648.0))),
        (Dtype::I64, _) => (64, None),
        (Dtype::U64, _) => (64, Some((1.0, 9_223_372_036_854_775_808.0))),
        (Dtype::F32, _) => (-32, None),
        (Dtype::F64, _) => (-64, None),
    };
    let primary = w.hdus == 0;
    let mut records = Vec::new();
    if primary {
        records.push(structural("SIMPLE", Value::Bool(true), "conforms to FITS standard"));
    } else {
        records.push(structural("XTENSION", Value::Str("IMAGE".into()), "image extension"));
    }
    records.push(structural("BITPIX", Value::Int(bitpix), "array data type"));
    records.push(structural("NAXIS", Value::Int(shape.len() as i64), "number of array dimensions"));
    for (i, &d) in shape.iter().rev().enumerate() {
        records.push(structural(&format!("NAXIS{}", i + 1), Value::Int(d as i64), ""));
    }
    if primary {
        records.push(structural("EXTEND", Value::Bool(true), ""));
    } else {
        records.push(structural("PCOUNT", Value::Int(0), "number of parameters"));
        records.push(structural("GCOUNT", Value::Int(1), "number of groups"));
    }
    if let Some((bscale, bzero)) = offset {
        records.push(structural("BSCALE", Value::Float(bscale), ""));
        records.push(if quantize.is_some() {
            structural("BZERO", Value::Float(bzero), "")
        } else {
            // the unsigned offsets as integers, as cfitsio and astropy write them (2^63 does not
            // fit an i64: its digits are written as they are)
            raw_card("BZERO", &format!("{}", bzero as i128), "offset for unsigned integers")
        });
    }
    if let Some(q) = quantize {
        records.push(structural("BLANK", Value::Int(q.blank()), "undefined (NaN) pixels"));
    }
    records.extend(FitsWriter::user_records(header)?);
    let hdu = w.begin_hdu(records)?;
    put_pixels(w, data, quantize)?;
    w.end_hdu(hdu, false)
}

/// Writes the pixels big-endian, in chunks; above a few chunks another thread byte-swaps the
/// next chunks while this one writes (three 1 MiB buffers in turn).
fn put_pixels<T: Pixel>(w: &mut FitsWriter, data: &[T], quantize: Option<Quantize>) -> Result<()> {
    let size = T::DTYPE.size();
    let per_chunk = (CHUNK_BYTES / size).max(1);
    let threads = torchfits_format::threads::default_threads();
    if threads < 2 || data.len() <= 4 * per_chunk {
        let mut buf: Vec<u8> = Vec::with_capacity(per_chunk * size);
        for chunk in data.chunks(per_chunk) {
            buf.clear();
            encode(chunk, quantize, &mut buf);
            w.put(&buf)?;
        }
        return Ok(());
    }
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
    let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
    for _ in 0..3 {
        let _ = free_tx.send(Vec::with_capacity(per_chunk * size));
    }
    std::thread::scope(|scope| {
        // owned here, so that an early return (a failed write) drops them and the converter
        // stops before the scope waits for it
        let (free_tx, full_rx) = (free_tx, full_rx);
        scope.spawn(move || {
            for chunk in data.chunks(per_chunk) {
                // the writer stopped (an error): stop too
                let Ok(mut buf) = free_rx.recv() else { return };
                buf.clear();
                encode(chunk, quantize, &mut buf);
                if full_tx.send(buf).is_err() {
                    return;
                }
            }
        });
        for buf in full_rx.iter() {
            w.put(&buf)?;
            let _ = free_tx.send(buf);
        }
        Ok(())
    })
}

/// Appends the stored big-endian form of `src` to `out`.
fn encode<T: Pixel>(src: &[T], quantize: Option<Quantize>, out: &mut Vec<u8>) {
    /// Each value's bytes by `f`, written in place (a loop the compiler vectorises).
    fn be<S: bytemuck::Pod, const N: usize>(src: &[S], out: &mut Vec<u8>, f: impl Fn(S) -> [u8; N]) {
        let at = out.len();
        out.resize(at + src.len() * N, 0);
        for (o, &v) in out[at..].chunks_exact_mut(N).zip(src) {
            o.copy_from_slice(&f(v));
        }
    }
    if let Some(q) = quantize {
        let (lo, hi) = if q.bitpix == 16 {
            (f64::from(i16::MIN) + 1.0, f64::from(i16::MAX))
        } else {
            (f64::from(i32::MIN) + 1.0, f64::from(i32::MAX))
        };
        let stored =
            |v: f64| if v.is_nan() { q.blank() as f64 } else { ((v - q.bzero) / q.bscale).round().clamp(lo, hi) };
        match (T::DTYPE, q.bitpix) {
            (Dtype::F32, 16) => {
                be(bytemuck::cast_slice::<T, f32>(src), out, |v| (stored(v.into()) as i16).to_be_bytes())
            }
            (Dtype::F32, _) => {
                be(bytemuck::cast_slice::<T, f32>(src), out, |v| (stored(v.into()) as i32).to_be_bytes())
            }
            (_, 16) => be(bytemuck::cast_slice::<T, f64>(src), out, |v| (stored(v) as i16).to_be_bytes()),
            _ => be(bytemuck::cast_slice::<T, f64>(src), out, |v| (stored(v) as i32).to_be_bytes()),
        }
        return;
    }
    match T::DTYPE {
        Dtype::U8 => out.extend_from_slice(bytemuck::cast_slice(src)),
        Dtype::I8 => be(bytemuck::cast_slice::<T, u8>(src), out, |v| [v ^ 0x80]),
        Dtype::I16 => be(bytemuck::cast_slice::<T, u16>(src), out, u16::to_be_bytes),
        Dtype::U16 => be(bytemuck::cast_slice::<T, u16>(src), out, |v| (v ^ 0x8000).to_be_bytes()),
        Dtype::I32 | Dtype::F32 => be(bytemuck::cast_slice::<T, u32>(src), out, u32::to_be_bytes),
        Dtype::U32 => be(bytemuck::cast_slice::<T, u32>(src), out, |v| (v ^ 0x8000_0000).to_be_bytes()),
        Dtype::I64 | Dtype::F64 => be(bytemuck::cast_slice::<T, u64>(src), out, u64::to_be_bytes),
        Dtype::U64 => be(bytemuck::cast_slice::<T, u64>(src), out, |v| (v ^ (1 << 63)).to_be_bytes()),
    }
}

/// A compressed image: cfitsio appends the HDU to the temporary file (which holds whole HDUs).
fn write_compressed<T: Pixel>(
    w: &mut FitsWriter,
    data: &[T],
    shape: &[usize],
    header: Option<&Header>,
    c: &Compression,
) -> Result<()> {
    if w.hdus == 0 {
        w.empty_primary()?;
    }
    w.check_complete()?;
    let params = c.params(shape)?;
    if matches!(T::DTYPE, Dtype::I64 | Dtype::U64) {
        return Err(Error::unsupported(
            "tile compression of 64-bit integers: cfitsio neither writes nor reads them (write it uncompressed)",
        ));
    }
    // integers: tiles coded here (RICE_1 on every core; HCOMPRESS_1 and PLIO_1 through
    // cfitsio's coders with buffers sized for any tile)
    let integer = rice_storage::<T>();
    match (c.algorithm, integer) {
        (Algorithm::Rice, Some(stored)) => {
            let bytepix = (stored.0 / 8) as usize;
            return write_tiled(w, data, shape, header, &params, stored, Codec::Rice { block: rice::BLOCK, bytepix });
        }
        (Algorithm::Hcompress, Some(stored)) => {
            let codec = Codec::Hcompress { scale: f64::from(c.hcompress_scale.round()), smooth: false };
            return write_tiled(w, data, shape, header, &params, stored, codec);
        }
        (Algorithm::Plio, Some(stored)) if matches!(T::DTYPE, Dtype::U8 | Dtype::I16 | Dtype::I32) => {
            return write_tiled(w, data, shape, header, &params, stored, Codec::Plio);
        }
        (Algorithm::Plio, _) => {
            return Err(Error::parameter("PLIO_1 compresses masks: u8, i16 or i32 pixels from 0 to 2^24 - 1"));
        }
        (Algorithm::Hcompress, None) => {
            return Err(Error::unsupported(format!(
                "HCOMPRESS_1 of {} pixels: cfitsio's coder overflows its buffer on noisy tiles of quantised \
                 floats and 64-bit integers; use RICE_1 or GZIP for them",
                T::DTYPE.numpy_name()
            )));
        }
        _ => {}
    }
    let bitpix = match T::DTYPE {
        Dtype::U8 => 8,
        Dtype::I8 => 10,
        Dtype::I16 => 16,
        Dtype::U16 => 20,
        Dtype::I32 => 32,
        Dtype::U32 => 40,
        Dtype::I64 => 64,
        Dtype::U64 => 80,
        Dtype::F32 => -32,
        Dtype::F64 => -64,
    };
    let records = FitsWriter::user_records(header)?;
    // cfitsio writes the HDU into a scratch file of its own (it never sees, nor rewrites, the
    // HDUs already written); its bytes are then appended as they are
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let scratch = PathBuf::from(format!("{}.{n}.cfitsio", w.tmp.display()));
    let remove = Cleanup(&scratch);
    let fits_shape: Vec<i64> = shape.iter().rev().map(|&d| d as i64).collect();
    let mut handle = Handle::create(&scratch)?;
    handle.append_compressed_image(bitpix, &fits_shape, &params)?;
    for r in &records {
        handle.write_record(r)?;
    }
    handle.write_pixels(data)?;
    if w.options.checksum {
        handle.write_checksum()?;
    }
    handle.close()?;
    let bytes = std::fs::read(&scratch).map_err(|e| Error::io(e, "cannot read the compressed HDU back"))?;
    drop(remove);
    // the scratch file's empty primary HDU is one block
    w.put(bytes.get(BLOCK..).unwrap_or(&[]))?;
    w.hdus += 1;
    Ok(())
}

/// How an integer pixel type is stored for RICE_1: ZBITPIX, the BZERO to write, and the stored
/// value (sign-extended to i32) of a pixel's native bytes.
type RiceStorage = (i64, Option<&'static str>, fn(&[u8]) -> i32);

/// The [`RiceStorage`] of `T`; `None` for types RICE_1 does not code here (64-bit, floats).
fn rice_storage<T: Pixel>() -> Option<RiceStorage> {
    Some(match T::DTYPE {
        Dtype::U8 => (8, None, |b| i32::from(b[0])),
        Dtype::I8 => (8, Some("-128"), |b| i32::from(b[0] ^ 0x80)),
        Dtype::I16 => (16, None, |b| i32::from(i16::from_ne_bytes([b[0], b[1]]))),
        Dtype::U16 => (16, Some("32768"), |b| i32::from((u16::from_ne_bytes([b[0], b[1]]) ^ 0x8000) as i16)),
        Dtype::I32 => (32, None, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        Dtype::U32 => (32, Some("2147483648"), |b| (u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) ^ 0x8000_0000) as i32),
        _ => return None,
    })
}

/// The pixels of one tile (FITS order, `lo..hi` per axis) of an image of `dims` (FITS order),
/// as stored integers, into `out`.
fn tile_pixels<T: Pixel>(
    data: &[T],
    dims: &[usize],
    lo: &[usize],
    hi: &[usize],
    stored: fn(&[u8]) -> i32,
    out: &mut Vec<i32>,
) {
    out.clear();
    let mut strides = vec![1usize; dims.len()];
    for i in 1..dims.len() {
        strides[i] = strides[i - 1] * dims[i - 1];
    }
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let size = std::mem::size_of::<T>();
    let mut idx: Vec<usize> = lo[1..].to_vec();
    loop {
        let base: usize = idx.iter().zip(&strides[1..]).map(|(i, s)| i * s).sum();
        let run = bytes.get((base + lo[0]) * size..(base + hi[0]) * size).unwrap_or(&[]);
        out.extend(run.chunks_exact(size).map(stored));
        // the next tile row, odometer-wise
        let mut a = 0;
        loop {
            if a == idx.len() {
                return;
            }
            idx[a] += 1;
            if idx[a] < hi[a + 1] {
                break;
            }
            idx[a] = lo[a + 1];
            a += 1;
        }
    }
}

/// A tile-compressed integer image with the tiles coded here, on every core (HCOMPRESS one
/// tile at a time: cfitsio's coder is not reentrant); the binary table written by us.
fn write_tiled<T: Pixel>(
    w: &mut FitsWriter,
    data: &[T],
    shape: &[usize],
    header: Option<&Header>,
    params: &CompressParams,
    (zbitpix, bzero, stored): RiceStorage,
    codec: Codec,
) -> Result<()> {
    let dims: Vec<usize> = shape.iter().rev().copied().collect();
    let tile: Vec<usize> = params.tile.iter().take(dims.len()).map(|&t| (t.max(1)) as usize).collect();
    let counts: Vec<usize> = dims.iter().zip(&tile).map(|(&d, &t)| d.div_ceil(t)).collect();
    let ntiles: usize = if dims.contains(&0) { 0 } else { counts.iter().product() };
    let threads = torchfits_format::threads::default_threads().min(ntiles.max(1));
    // tiles k0..k1, compressed one after the other into one heap part; lengths in elements of
    // the column (bytes; shorts for PLIO)
    let compress = |k0: usize, k1: usize| -> Result<(Vec<u64>, Vec<u8>)> {
        let mut lens = Vec::with_capacity(k1 - k0);
        let mut heap = Vec::new();
        let mut pixels = Vec::new();
        let (mut lo, mut hi) = (vec![0usize; dims.len()], vec![0usize; dims.len()]);
        for k in k0..k1 {
            let mut rest = k;
            for a in 0..dims.len() {
                let c = rest % counts[a];
                rest /= counts[a];
                lo[a] = c * tile[a];
                hi[a] = (lo[a] + tile[a]).min(dims[a]);
            }
            tile_pixels(data, &dims, &lo, &hi, stored, &mut pixels);
            let before = heap.len();
            match codec {
                Codec::Rice { bytepix, .. } => heap = rice::encode(&pixels, bytepix, heap),
                Codec::Hcompress { scale, .. } => {
                    let nx = hi[0] - lo[0];
                    let ny = hi.get(1).zip(lo.get(1)).map_or(1, |(h, l)| h - l);
                    heap.extend(crate::ffi::cfitsio::hcompress(&pixels, nx, ny, scale as i32, zbitpix == 32)?);
                }
                Codec::Plio => {
                    if let Some(v) = pixels.iter().find(|v| !(0..1 << 24).contains(*v)) {
                        return Err(Error::parameter(format!("PLIO_1 holds values 0 to 2^24 - 1, not {v}")));
                    }
                    let list = crate::ffi::cfitsio::plio(&mut pixels)?;
                    heap.extend(list.iter().flat_map(|v| v.to_be_bytes()));
                }
                Codec::Gzip { .. } | Codec::None => {
                    return Err(Error::unsupported(format!("{} tiles are not coded here", codec.name())));
                }
            }
            let bytes = (heap.len() - before) as u64;
            lens.push(if matches!(codec, Codec::Plio) { bytes / 2 } else { bytes });
        }
        Ok((lens, heap))
    };
    let bounds: Vec<usize> = (0..=threads).map(|t| ntiles * t / threads).collect();
    let parts: Vec<(Vec<u64>, Vec<u8>)> = if threads <= 1 {
        vec![compress(0, ntiles)?]
    } else {
        std::thread::scope(|scope| {
            let (compress, bounds) = (&compress, &bounds);
            let handles: Vec<_> =
                (1..threads).map(|t| scope.spawn(move || compress(bounds[t], bounds[t + 1]))).collect();
            let mut all = vec![compress(bounds[0], bounds[1])?];
            for h in handles {
                all.push(h.join().map_err(|_| Error::decoding("a compressing thread panicked"))??);
            }
            Ok::<_, Error>(all)
        })?
    };
    let heap_len: u64 = parts.iter().map(|p| p.1.len() as u64).sum();
    let max_len = parts.iter().flat_map(|p| p.0.iter()).copied().max().unwrap_or(0);
    let wide = heap_len > i32::MAX as u64;
    let row = if wide { 16 } else { 8 };
    let mut rows = Vec::with_capacity(ntiles * row);
    let mut offset = 0u64;
    let element = if matches!(codec, Codec::Plio) { 2 } else { 1 };
    for len in parts.iter().flat_map(|p| p.0.iter()) {
        if wide {
            rows.extend_from_slice(&len.to_be_bytes());
            rows.extend_from_slice(&offset.to_be_bytes());
        } else {
            rows.extend_from_slice(&(*len as u32).to_be_bytes());
            rows.extend_from_slice(&(offset as u32).to_be_bytes());
        }
        offset += len * element;
    }
    let mut records = vec![
        structural("XTENSION", Value::Str("BINTABLE".into()), "binary table extension"),
        structural("BITPIX", Value::Int(8), "8-bit bytes"),
        structural("NAXIS", Value::Int(2), "2-dimensional binary table"),
        structural("NAXIS1", Value::Int(row as i64), "width of table in bytes"),
        structural("NAXIS2", Value::Int(ntiles as i64), "number of rows in table"),
        structural("PCOUNT", Value::Int(heap_len as i64), "size of special data area"),
        structural("GCOUNT", Value::Int(1), "one data group (required keyword)"),
        structural("TFIELDS", Value::Int(1), "number of fields in each row"),
        structural("TTYPE1", Value::Str("COMPRESSED_DATA".into()), "label for field   1"),
        structural(
            "TFORM1",
            Value::Str(format!(
                "1{}{}({max_len})",
                if wide { 'Q' } else { 'P' },
                if matches!(codec, Codec::Plio) { 'I' } else { 'B' }
            )),
            "data format of field: variable length array",
        ),
    ];
    let description = TileCompression { codec, zbitpix, dims, tile, floats: None };
    records.extend(description.records());
    if let Some(zero) = bzero {
        records.push(structural("BSCALE", Value::Int(1), ""));
        records.push(raw_card("BZERO", zero, "offset data range to that of unsigned integers"));
    }
    records.extend(FitsWriter::user_records(header)?);
    let hdu = w.begin_hdu(records)?;
    w.put(&rows)?;
    for (_, heap) in &parts {
        w.put(heap)?;
    }
    w.end_hdu(hdu, false)
}
