//! # torchfits-wcs
//!
//! World coordinates: wcslib parses, fixes and transforms (through the `wcs-sys` shim), with the
//! header corrections and the SIP distortion astropy applies around it, so that
//! [`Wcs::pixel_to_world`] gives what astropy's `WCS(header).all_pix2world(pixels, 0)` gives.
//! The gnomonic (TAN) projection without distortion is also computed natively, in parallel, and
//! [`ProjectionParameters`] / [`SipPolynomials`] hand a device kernel what it needs.
//!
//! It takes a parsed [`Header`] (from `torchfits-format`), so it reads no files: `torchfits-core`'s
//! `FitsFile::wcs` opens a file's WCS, and GPU code depends on this crate alone.
//!
//! ```
//! use torchfits_format::Header;
//! use torchfits_wcs::Wcs;
//! let mut header = Header::new();
//! for (key, value) in [("CRPIX1", 50.5), ("CRPIX2", 50.5), ("CRVAL1", 150.0), ("CRVAL2", 2.0),
//!                      ("CDELT1", -1e-4), ("CDELT2", 1e-4)] {
//!     header.set(key, value, None)?;
//! }
//! header.set("CTYPE1", "RA---TAN", None)?.set("CTYPE2", "DEC--TAN", None)?;
//! let wcs = Wcs::from_header(&header)?;
//! let pixels = [49.5, 49.5, 10.5, 20.25];                 // two points, (x, y), 0-based
//! let mut world = [0.0; 4];
//! let status = wcs.pixel_to_world(&pixels, &mut world)?;
//! assert!(status.iter().all(|&s| s == 0));
//! assert!((world[0] - 150.0).abs() < 1e-9 && (world[1] - 2.0).abs() < 1e-9); // CRPIX is CRVAL
//! let mut back = [0.0; 4];
//! wcs.world_to_pixel(&world, &mut back)?;
//! assert!(back.iter().zip(&pixels).all(|(a, b)| (a - b).abs() < 1e-8));
//! # Ok::<(), torchfits_format::Error>(())
//! ```
#![deny(unsafe_code)]
// no panic a header can trigger: every exception is a module's reviewed `allow` with its reason
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)
)]
#![deny(missing_docs)]

use std::sync::Mutex;

use torchfits_format::error::{Error, Result};
use torchfits_format::header::{Header, Value};

use crate::wcslib::{WcsHandle, WcsParseError};

mod fast;
mod keywords;
mod wcslib;

pub use fast::ProjectionParameters;

/// The SIP polynomial distortion (Shupe et al. 2005), applied before wcslib as astropy does.
#[derive(Debug, Clone, PartialEq)]
struct Sip {
    /// `a[p][q]`, `b[p][q]`: coefficients of u^p v^q.
    a: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
    crpix: [f64; 2],
}

impl Sip {
    /// The distortion (dx, dy) at 1-based pixel (x, y).
    fn deltas(&self, x: f64, y: f64) -> (f64, f64) {
        let (u, v) = (x - self.crpix[0], y - self.crpix[1]);
        (poly(&self.a, u, v), poly(&self.b, u, v))
    }
}

/// Σ c[p][q] u^p v^q (Horner in v inside, then in u).
fn poly(c: &[Vec<f64>], u: f64, v: f64) -> f64 {
    let mut total = 0.0;
    for row in c.iter().rev() {
        let mut inner = 0.0;
        for &k in row.iter().rev() {
            inner = inner * v + k;
        }
        total = total * u + inner;
    }
    total
}

/// The SIP distortion of a [`Wcs`]: the 1-based pixel (x, y) becomes (x + A(u, v), y + B(u, v))
/// with u, v the pixel minus `crpix`, before the linear transformation.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SipPolynomials<'a> {
    /// `a[p][q]`: the coefficient of u^p v^q in A.
    pub a: &'a [Vec<f64>],
    /// `b[p][q]`: the coefficient of u^p v^q in B.
    pub b: &'a [Vec<f64>],
    /// CRPIX1, CRPIX2.
    pub crpix: [f64; 2],
}

/// Which WCS of a header to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WcsOptions {
    /// The alternate: `' '` (the primary WCS) or `'A'`..=`'Z'`.
    pub alt: char,
    /// Read binary-table WCS keywords (image arrays in cells, pixel lists) with `wcsbth`.
    pub table: bool,
}

impl WcsOptions {
    /// The primary WCS of an image header.
    pub fn new() -> Self {
        WcsOptions::default()
    }

    /// Alternate `alt` (`' '` or `'A'`..=`'Z'`).
    pub fn alt(mut self, alt: char) -> Self {
        self.alt = alt;
        self
    }

    /// Binary-table keywords (`wcsbth`).
    pub fn table(mut self, yes: bool) -> Self {
        self.table = yes;
        self
    }
}

impl Default for WcsOptions {
    fn default() -> Self {
        WcsOptions { alt: ' ', table: false }
    }
}

/// A world coordinate system, ready to transform batches of points on every core. Cheap to share
/// between threads (`&Wcs` is `Sync`): each thread borrows its own copy of wcslib's struct from
/// a small pool, so no lock is held while points are transformed.
#[derive(Debug)]
pub struct Wcs {
    /// Idle wcslib structs (at least one: the copies are made from it).
    pool: Mutex<Vec<WcsHandle>>,
    naxis: usize,
    celestial: Option<(usize, usize)>,
    projection: String,
    sip: Option<Sip>,
    /// A plain celestial TAN WCS: transformed here rather than by wcslib (pixel to world).
    tan: Option<fast::Tan>,
    /// The resolved parameters of a plain celestial WCS (for the GPU kernel).
    parameters: Option<ProjectionParameters>,
    /// Transform with wcslib even when `tan` is there.
    wcslib_only: bool,
    threads: usize,
}

/// Points per wcslib call (bounds the scratch arrays).
const CALL_POINTS: usize = 8192;
/// Batches of at least this many points are split across threads.
const PARALLEL_MIN_POINTS: usize = 16_384;

/// Most axes a WCS handed to wcslib may have: wcslib sizes its matrices by the number of axes
/// (`NAXIS`, `WCSAXESa`) and by the highest axis number a keyword names, so a header of a few
/// cards could make it allocate gigabytes. 99 is the most the standard's keywords spell with an
/// alternate letter (`PC99_99A`) and the most cfitsio reads; the keywords themselves are bounded
/// by the allow-list (`keywords.rs`).
const WCS_MAX_AXES: u64 = 99;

/// Refuses a header whose NAXIS, WCSAXES or any WCS keyword's axis number (of any alternate) is
/// over [`WCS_MAX_AXES`], naming it: such a card is an error rather than a card left out, since
/// leaving out an axis the header describes would be a different WCS.
fn check_wcs_axes(header: &Header) -> Result<()> {
    const ONE: [&str; 10] = ["CRPIX", "CRVAL", "CDELT", "CTYPE", "CUNIT", "CROTA", "CRDER", "CSYER", "CNAME", "CZPHS"];
    const TWO: [&str; 4] = ["PC", "CD", "PV", "PS"];
    let digits =
        |t: &str| if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) { t.parse::<u64>().ok() } else { None };
    for card in header.iter() {
        let kw = card.base_keyword();
        // the alternate letter, if any, after the last digit
        let kw = match kw.as_bytes() {
            [.., d, a] if d.is_ascii_digit() && a.is_ascii_uppercase() => kw.get(..kw.len() - 1).unwrap_or(kw),
            _ => kw,
        };
        let axis = if kw == "NAXIS" || kw.starts_with("WCSAXES") {
            // wcspih reads these counts itself, more leniently: it read `4   2   2453241` as
            // 422453241 axes and allocated 3.4 GB; a count torchfits cannot
            // read is not handed over
            let n = card.value().as_i64().and_then(|n| u64::try_from(n).ok());
            if n.is_none() {
                return Err(Error::decoding(format!(
                    "{} = {:?} is not an axis count: wcslib is not handed this header",
                    card.keyword(),
                    card.value()
                )));
            }
            n
        } else if let Some(rest) = ONE.iter().find_map(|p| kw.strip_prefix(p)) {
            digits(rest)
        } else if let Some((prefix, rest)) = TWO.iter().find_map(|p| Some((*p, kw.strip_prefix(p)?))) {
            // PCi_j and CDi_j name two axes; PVi_m and PSi_m one axis and a parameter number
            rest.split_once('_').and_then(|(i, j)| {
                let (i, j) = (digits(i)?, digits(j)?);
                Some(if matches!(prefix, "PC" | "CD") { i.max(j) } else { i })
            })
        } else {
            None
        };
        if let Some(n) = axis
            && n > WCS_MAX_AXES
        {
            return Err(Error::unsupported(format!(
                "{} names axis {n}: wcslib is not handed a WCS of more than {WCS_MAX_AXES} axes",
                card.keyword()
            )));
        }
    }
    Ok(())
}

/// Refuses a binary-table header with a pixel list's WCS keywords (`TCTYPn`, `TCRVLn`, `TPn_k`,
/// ...): wcslib 7.12's `wcsbth` reads through pointers it never set on such headers (a SEGV in
/// `wcstab` with two cards, `TCTYP5` and `CRPIX1`, and in its own parser on a pixel list alone),
/// and the WCS it makes of a pixel list is not one this crate picks by alternate anyway.
fn check_pixel_lists(header: &Header) -> Result<()> {
    match header
        .iter()
        .map(|c| c.base_keyword())
        .find(|k| keywords::table_family(k) == Some(keywords::TableForm::PixelList))
    {
        Some(key) => Err(Error::unsupported(format!(
            "{key}: the WCS of a pixel list (binary-table column keywords) is not read (wcslib cannot be handed it safely)"
        ))),
        None => Ok(()),
    }
}

/// Refuses a lookup-table (`-TAB`) axis before wcslib sees it. Its coordinates live in a binary
/// table this crate does not read (wcslib then cannot set the WCS up, and astropy's `WCS(header)`
/// refuses it too), and wcslib 7.12's `wcspih` frees such a table twice on several malformed
/// headers (a `PVi_3` out of range, or made so by a later duplicate card; heap
/// corruption under valgrind with 4 cards).
fn check_tab_axes(header: &Header) -> Result<()> {
    for card in header.iter() {
        let key = card.keyword();
        if key.starts_with("CTYPE")
            && card.value().as_str().is_some_and(|v| v.trim_end().to_ascii_uppercase().ends_with("-TAB"))
        {
            return Err(Error::unsupported(format!(
                "{key} = {:?}: lookup-table (-TAB) axes need their table, which torchfits does not read",
                card.value().as_str().unwrap_or_default().trim()
            )));
        }
    }
    Ok(())
}

impl Wcs {
    /// The primary WCS of `header`.
    pub fn from_header(header: &Header) -> Result<Wcs> {
        Wcs::with_options(header, WcsOptions::default())
    }

    /// The WCS `options` choose in `header`.
    pub fn with_options(header: &Header, options: WcsOptions) -> Result<Wcs> {
        let alt = options.alt.to_ascii_uppercase();
        if alt != ' ' && !alt.is_ascii_uppercase() {
            return Err(Error::parameter(format!("WCS alternate {alt:?}: use ' ' or 'A'..'Z'")));
        }
        let key = if alt == ' ' { String::new() } else { alt.to_string() };
        let mut header = header.clone();
        // astropy's order: SCAMP's pre-2012 TPV (checked on the primary keys), SIP read and
        // removed (wcslib never sees SIP coefficients; CTYPE keeps its -SIP)
        fix_pre2012_scamp_tpv(&mut header);
        let sip = read_sip(&mut header, &key)?;
        remove_sip(&mut header, false);
        check_wcs_axes(&header)?;
        check_tab_axes(&header)?;
        if options.table {
            check_pixel_lists(&header)?;
        }
        let mut cards = Vec::with_capacity(header.len() * 80);
        // with the binary-table forms: those cards alone, too
        let mut table_cards = Vec::new();
        for card in header.iter() {
            // only the keyword forms wcslib defines for this WCS, every number in them bounded
            if !keywords::for_wcslib(card.base_keyword(), options.table) {
                continue;
            }
            // a keyword without a value says nothing wcslib would keep (it rejects the card), and
            // wcslib 7.12 frees a pointer it never allocated after some of them (`MJDREF =` or
            // `DATEREF =` before and after axis keywords)
            if matches!(card.value(), torchfits_format::header::Value::Undefined) {
                continue;
            }
            // a card that cannot be written back (non-ASCII text) is one wcslib would reject too
            if let Ok(records) = torchfits_format::cards::format_card(card) {
                let own = options.table && keywords::is_binary_table_form(card.base_keyword());
                for r in records {
                    cards.extend_from_slice(&r);
                    if own {
                        table_cards.extend_from_slice(&r);
                    }
                }
            }
        }
        // wcsbth leaks the 112 bytes it sets aside for the global keywords (EQUINOX, LONPOLE)
        // when it then finds no WCS to put them in: where the binary-table forms alone make no
        // WCS, it is handed none of them and gives its default (what it gives with them too)
        if options.table
            && (table_cards.is_empty() || WcsHandle::parse(&table_cards, alt, true, false).is_ok_and(|(_, none)| none))
        {
            cards.clear();
        }
        // wcslib's parser is given at least one card: with none, a blank one (no WCS keywords:
        // wcslib's default, as for a header without them)
        if cards.is_empty() {
            cards.resize(80, b' ');
        }
        // astropy's _fix_scamp: with SIP present, CTYPEs both -TPV drop the SIP; SCAMP's PVi_m
        // (m >= 5 on a -TAN axis) beside -SIP CTYPEs are dropped
        let mut sip = sip;
        let ctype = |k: usize| header.get_str(&format!("CTYPE{k}{key}")).unwrap_or("").trim().to_ascii_uppercase();
        let naxis_hint =
            header.get_i64(&format!("WCSAXES{key}")).or_else(|| header.get_i64("NAXIS")).unwrap_or(2).clamp(1, 99)
                as usize;
        let ctypes: Vec<String> = (1..=naxis_hint.max(2)).map(ctype).collect();
        let mut drop_pv = false;
        if sip.is_some() {
            if ctypes.iter().filter(|c| c.ends_with("-TPV")).count() == 2 {
                sip = None;
            } else {
                let scamp = (1..=ctypes.len()).any(|i| {
                    let prefix = format!("PV{i}_");
                    let top = header
                        .iter()
                        .filter_map(|c| {
                            let k = c.keyword();
                            let m = k.strip_prefix(&prefix)?;
                            let m = if key.is_empty() { m } else { m.strip_suffix(key.as_str())? };
                            m.parse::<u32>().ok()
                        })
                        .max();
                    ctypes.get(i - 1).is_some_and(|c| c.contains("-TAN")) && top.is_some_and(|m| m >= 5)
                });
                drop_pv = scamp && ctypes.iter().take(2).all(|c| c.ends_with("-SIP"));
            }
        }
        let (handle, _default) =
            WcsHandle::parse(&cards, alt, options.table, drop_pv).map_err(|WcsParseError(msg)| Error::decoding(msg))?;
        let naxis = handle.naxis();
        let projection = handle.projection();
        if sip.is_some() && naxis != 2 {
            return Err(Error::unsupported(format!("SIP distortion on a WCS of {naxis} axes (it is 2-D)")));
        }
        let celestial = handle.celestial_axes();
        let parameters = handle.celestial_params().and_then(|(p, code)| ProjectionParameters::from_params(&p, code));
        // the CPU path of its own is TAN's; the others' parameters serve the GPU kernel
        let tan = parameters.filter(|p| &p.projection == b"TAN").map(fast::Tan::new);
        Ok(Wcs {
            pool: Mutex::new(vec![handle]),
            naxis,
            celestial,
            projection,
            sip,
            tan,
            parameters,
            wcslib_only: false,
            threads: torchfits_format::threads::default_threads(),
        })
    }

    /// Number of axes (of the pixel and of the world coordinates).
    pub fn naxis(&self) -> usize {
        self.naxis
    }

    /// The (longitude, latitude) world axes, 0-based, for a celestial WCS.
    pub fn celestial_axes(&self) -> Option<(usize, usize)> {
        self.celestial
    }

    /// The celestial projection's code (`"TAN"`, `"SIN"`, ...), empty when not celestial.
    pub fn projection(&self) -> &str {
        &self.projection
    }

    /// Whether SIP distortion applies before the linear transformation.
    pub fn has_sip(&self) -> bool {
        self.sip.is_some()
    }

    /// Uses at most `n` threads for large batches (default: the available cores).
    pub fn with_threads(mut self, n: usize) -> Self {
        self.set_threads(n);
        self
    }

    /// As [`Wcs::with_threads`], in place.
    pub fn set_threads(&mut self, n: usize) {
        self.threads = n.max(1);
    }

    /// Pixel to world for `pixels.len() / naxis` points (x first, 0-based pixels, as
    /// astropy's `all_pix2world(pixels, 0)`). Returns per point wcslib's status: 0 for a valid
    /// point; the world coordinates of an invalid one are NaN. Large batches run on every core.
    pub fn pixel_to_world(&self, pixels: &[f64], world: &mut [f64]) -> Result<Vec<i32>> {
        self.run(true, pixels, world)
    }

    /// World to pixel (0-based), the inverse of [`Wcs::pixel_to_world`] (SIP inverted by
    /// iteration to 1e-12 pixel).
    pub fn world_to_pixel(&self, world: &[f64], pixels: &mut [f64]) -> Result<Vec<i32>> {
        self.run(false, world, pixels)
    }

    fn take(&self) -> Result<WcsHandle> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() > 1
            && let Some(h) = pool.pop()
        {
            return Ok(h);
        }
        pool.first().ok_or_else(|| Error::decoding("the WCS has no wcslib struct"))?.copy()
    }

    fn give(&self, h: WcsHandle) {
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(h);
    }

    /// For a plain celestial WCS (two axes, longitude and latitude, no wcslib distortion; SIP
    /// aside, see [`Wcs::sip`]): the parameters wcslib resolved (see [`ProjectionParameters`]).
    pub fn projection_parameters(&self) -> Option<ProjectionParameters> {
        self.parameters
    }

    /// The SIP polynomials, when SIP applies.
    pub fn sip(&self) -> Option<SipPolynomials<'_>> {
        self.sip.as_ref().map(|s| SipPolynomials { a: &s.a, b: &s.b, crpix: s.crpix })
    }

    /// Whether pixel-to-world and world-to-pixel run outside wcslib (a plain TAN WCS).
    pub fn is_native(&self) -> bool {
        self.tan.is_some() && !self.wcslib_only
    }

    /// Transforms everything with wcslib, even a WCS torchfits transforms itself (for checks
    /// and baselines). The resolved TAN parameters stay available.
    pub fn set_wcslib_only(&mut self) {
        self.wcslib_only = true;
    }

    fn run(&self, forward: bool, input: &[f64], output: &mut [f64]) -> Result<Vec<i32>> {
        let naxis = self.naxis.max(1);
        if !input.len().is_multiple_of(naxis) || output.len() != input.len() {
            return Err(Error::parameter(format!(
                "{} input and {} output values for points of {} coordinates",
                input.len(),
                output.len(),
                self.naxis
            )));
        }
        let n = input.len() / naxis;
        let by = if !self.wcslib_only && self.tan.is_some() { "torchfits" } else { "wcslib" };
        let _span = tracing::trace_span!("wcs", forward, points = n, by).entered();
        let mut status = vec![0i32; n];
        let parts = if n >= PARALLEL_MIN_POINTS { self.threads.min(n.div_ceil(CALL_POINTS)) } else { 1 };
        let per = n.div_ceil(parts.max(1)).max(1);
        let work = |input: &[f64], output: &mut [f64], status: &mut [i32]| -> Result<()> {
            if !self.wcslib_only
                && let Some(tan) = &self.tan
            {
                if forward {
                    self.tan_chunk(tan, input, output);
                } else {
                    self.tan_inverse_chunk(tan, input, output, status);
                }
                return Ok(());
            }
            let mut handle = self.take()?;
            let result = self.transform_chunk(&mut handle, forward, input, output, status);
            self.give(handle);
            result
        };
        if parts <= 1 {
            work(input, output, &mut status)?;
            return Ok(status);
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = input
                .chunks(per * naxis)
                .zip(output.chunks_mut(per * naxis))
                .zip(status.chunks_mut(per))
                .map(|((i, o), s)| {
                    let work = &work;
                    scope.spawn(move || work(i, o, s))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::decoding("a WCS thread panicked"))))
                .collect::<Result<Vec<()>>>()
        })?;
        Ok(status)
    }

    /// Pixel to world through the native TAN (never invalid: every pixel has a sky position).
    fn tan_chunk(&self, tan: &fast::Tan, input: &[f64], output: &mut [f64]) {
        for (p, o) in input.chunks_exact(2).zip(output.chunks_exact_mut(2)) {
            let &[px, py] = p else { continue };
            let (mut x, mut y) = (px + 1.0, py + 1.0);
            if let Some(sip) = &self.sip {
                let (dx, dy) = sip.deltas(x, y);
                x += dx;
                y += dy;
            }
            o.copy_from_slice(&tan.p2s(x, y));
        }
    }

    /// World to pixel through the native TAN, SIP inverted as wcslib's path inverts it; a point
    /// the projection does not reach gets NaN and wcslib's status for it (4: invalid world).
    fn tan_inverse_chunk(&self, tan: &fast::Tan, input: &[f64], output: &mut [f64], status: &mut [i32]) {
        for ((w, o), s) in input.chunks_exact(2).zip(output.chunks_exact_mut(2)).zip(status.iter_mut()) {
            let &[lng, lat] = w else { continue };
            match tan.s2p([lng, lat]) {
                Some([x, y]) => {
                    let (x, y) = match &self.sip {
                        Some(sip) => invert_sip(sip, x, y),
                        None => (x, y),
                    };
                    o.copy_from_slice(&[x - 1.0, y - 1.0]);
                }
                None => {
                    o.fill(f64::NAN);
                    *s = 4;
                }
            }
        }
    }

    /// Transforms the points of one thread, in calls of [`CALL_POINTS`].
    fn transform_chunk(
        &self,
        handle: &mut WcsHandle,
        forward: bool,
        input: &[f64],
        output: &mut [f64],
        status: &mut [i32],
    ) -> Result<()> {
        let naxis = self.naxis;
        let mut buf: Vec<f64> = Vec::with_capacity(CALL_POINTS * naxis);
        let mut scratch = Vec::new();
        for ((i, o), s) in input
            .chunks(CALL_POINTS * naxis)
            .zip(output.chunks_mut(CALL_POINTS * naxis))
            .zip(status.chunks_mut(CALL_POINTS))
        {
            if forward {
                // 0-based to FITS's 1-based pixels, then the SIP distortion
                buf.clear();
                buf.extend(i.iter().map(|p| p + 1.0));
                if let Some(sip) = &self.sip {
                    // SIP exists only on a 2-axis WCS (checked at construction)
                    for (p, q) in buf.chunks_exact_mut(naxis).zip(i.chunks_exact(naxis)) {
                        let (&mut [ref mut x, ref mut y], &[qx, qy]) = (p, q) else { continue };
                        let (dx, dy) = sip.deltas(qx + 1.0, qy + 1.0);
                        *x += dx;
                        *y += dy;
                    }
                }
                handle.transform(true, &buf, o, s, &mut scratch)?;
            } else {
                handle.transform(false, i, o, s, &mut scratch)?;
                if let Some(sip) = &self.sip {
                    for p in o.chunks_exact_mut(naxis) {
                        let &mut [ref mut x, ref mut y] = p else { continue };
                        (*x, *y) = invert_sip(sip, *x, *y);
                    }
                }
                for p in o.iter_mut() {
                    *p -= 1.0;
                }
            }
            for (p, &st) in o.chunks_exact_mut(naxis).zip(s.iter()) {
                if st != 0 {
                    p.fill(f64::NAN);
                }
            }
        }
        Ok(())
    }
}

/// The 1-based pixel whose SIP-distorted position is (fx, fy): fixed-point iteration.
fn invert_sip(sip: &Sip, fx: f64, fy: f64) -> (f64, f64) {
    if !(fx.is_finite() && fy.is_finite()) {
        return (fx, fy);
    }
    let (mut x, mut y) = (fx, fy);
    for _ in 0..100 {
        let (dx, dy) = sip.deltas(x, y);
        let (nx, ny) = (fx - dx, fy - dy);
        let step = (nx - x).abs().max((ny - y).abs());
        (x, y) = (nx, ny);
        if step < 1e-12 {
            break;
        }
    }
    (x, y)
}

/// astropy's `_fix_pre2012_scamp_tpv`: CTYPE1/2 ending in -TAN with PVi_m, m >= 5, on one of
/// them is SCAMP's TPV: the CTYPEs become -TPV and any SIP (orders included) is dropped.
fn fix_pre2012_scamp_tpv(header: &mut Header) {
    let tan: Vec<usize> =
        (1..=2).filter(|n| header.get_str(&format!("CTYPE{n}")).is_some_and(|c| c.trim().ends_with("-TAN"))).collect();
    if tan.len() != 2 {
        return;
    }
    let tpv = tan.iter().any(|n| {
        let prefix = format!("PV{n}_");
        header
            .iter()
            .filter_map(|c| c.keyword().strip_prefix(&prefix).and_then(|m| m.parse::<u32>().ok()))
            .max()
            .is_some_and(|m| m >= 5)
    });
    if !tpv {
        return;
    }
    remove_sip(header, true);
    for n in tan {
        let key = format!("CTYPE{n}");
        if let Some(c) = header.get_str(&key) {
            let v = c.trim().to_ascii_uppercase().replace("-TAN", "-TPV");
            header.set_any(&key, Value::Str(v));
        }
    }
}

/// Whether `keyword` is a SIP coefficient (`A_1_2`, `BP_0_3`, optionally an alternate letter).
fn is_sip_coefficient(keyword: &str) -> bool {
    let k = keyword.as_bytes();
    let rest = match k {
        [b'A' | b'B', b'P', b'_', rest @ ..] | [b'A' | b'B', b'_', rest @ ..] => rest,
        _ => return false,
    };
    let text = std::str::from_utf8(rest).unwrap_or("");
    let text = text.strip_suffix(|c: char| c.is_ascii_uppercase()).unwrap_or(text);
    let mut parts = text.split('_');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && (p.len() == 1 || p.starts_with('1'))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// astropy's `_remove_sip_kw`: the SIP coefficients (and, with `orders`, A/B/AP/BP_ORDER).
fn remove_sip(header: &mut Header, orders: bool) {
    header.retain(|c| {
        let k = c.keyword();
        !(is_sip_coefficient(&k) || (orders && matches!(k.as_str(), "A_ORDER" | "B_ORDER" | "AP_ORDER" | "BP_ORDER")))
    });
}

/// astropy's `_read_sip_kw`: the forward SIP polynomials, taken out of the header (orders too).
fn read_sip(header: &mut Header, key: &str) -> Result<Option<Sip>> {
    let order = |h: &Header, k: &str| h.get_i64(k).filter(|&o| o > 1);
    let (a, b) = match (order(header, "A_ORDER"), header.get_i64("B_ORDER")) {
        (Some(ma), Some(mb)) => {
            let coefficients = |h: &mut Header, name: &str, m: i64| -> Result<Vec<Vec<f64>>> {
                let m = usize::try_from(m)
                    .ok()
                    .filter(|&m| m <= 20)
                    .ok_or_else(|| Error::decoding(format!("{name}_ORDER = {m}: not a SIP order (2 to 20)")))?;
                let mut c = vec![vec![0.0; m + 1]; m + 1];
                for (p, row) in c.iter_mut().enumerate() {
                    for (q, v) in row.iter_mut().enumerate().take(m - p + 1) {
                        let k = format!("{name}_{p}_{q}");
                        if let Some(x) = h.get_f64(&k) {
                            *v = x;
                            h.remove(&k);
                        }
                    }
                }
                Ok(c)
            };
            let a = coefficients(header, "A", ma)?;
            let b = if mb > 1 { Some(coefficients(header, "B", mb)?) } else { None };
            header.remove("A_ORDER");
            header.remove("B_ORDER");
            match b {
                Some(b) => (Some(a), Some(b)),
                None => (None, None),
            }
        }
        (Some(_), None) => {
            return Err(Error::decoding("A_ORDER without B_ORDER: incomplete SIP distortion"));
        }
        (None, Some(mb)) if mb > 1 => {
            return Err(Error::decoding("B_ORDER without A_ORDER: incomplete SIP distortion"));
        }
        _ => (None, None),
    };
    // the inverse polynomials are not used (world_to_pixel iterates), but taken out as astropy does
    if order(header, "AP_ORDER").is_some() && header.contains("BP_ORDER") {
        header.remove("AP_ORDER");
        header.remove("BP_ORDER");
    }
    let (Some(a), Some(b)) = (a, b) else { return Ok(None) };
    let crpix = |k: usize| header.get_f64(&format!("CRPIX{k}{key}"));
    let (Some(c1), Some(c2)) = (crpix(1), crpix(2)) else {
        return Err(Error::decoding("SIP keywords without CRPIX1/CRPIX2"));
    };
    Ok(Some(Sip { a, b, crpix: [c1, c2] }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wcslib_messages_are_switched_off_once_whatever_the_threads() {
        let header = torchfits_format::Header::parse(
            &[
                "CTYPE1  = 'RA---TAN'",
                "CTYPE2  = 'DEC--TAN'",
                "CRVAL1  =                 10.0",
                "CRVAL2  =                 20.0",
                "CDELT1  =              -0.0001",
                "CDELT2  =               0.0001",
            ]
            .iter()
            .flat_map(|c| format!("{c:<80}").into_bytes())
            .collect::<Vec<u8>>(),
        )
        .expect("a header");
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..20 {
                        Wcs::from_header(&header).expect("a WCS");
                    }
                });
            }
        });
        assert_eq!(wcslib::message_switches(), 1);
    }

    #[test]
    fn sip_keywords_are_recognised_as_astropy_does() {
        for k in ["A_0_2", "B_1_1", "AP_2_0", "BP_0_3", "A_10_1", "A_1_2A"] {
            assert!(is_sip_coefficient(k), "{k}");
        }
        for k in ["A_ORDER", "AB_1_1", "A_1", "A_20_1", "A_1_2_3", "CRPIX1"] {
            assert!(!is_sip_coefficient(k), "{k}");
        }
        let c = vec![vec![1.0, 2.0], vec![3.0, 0.0]];
        // 1 + 2 v + 3 u
        assert_eq!(poly(&c, 2.0, 5.0), 1.0 + 10.0 + 6.0);
    }
}
