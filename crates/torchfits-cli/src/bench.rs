//! `torchfits bench`: times the standard cases of `../shared/peers/README.md` with the peers'
//! semantics: open + read + close, result in native-endian typed memory, warm page cache, the
//! median of N runs after one warm-up.
//!
//! This is a harness over the public API, as a training loop would use it: buffers are reused
//! from one run to the next, as the peers' `raw` case reuses its buffer.

// Indexing: the benchmark indexes its own synthetic inputs and timing lists (never empty).
#![allow(clippy::indexing_slicing)]

use crate::output::outln;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use torchfits_core::write::{Algorithm, Compression, WriteOptions};
use torchfits_core::{ColumnPool, Error, ErrorKind, FileCache, FitsFile, Header, OpenOptions, Section, Wcs};

#[cfg(feature = "gpu")]
mod loader;

/// The 256x256 cutout of the cutout cases (rows 1500:1756, cols 2100:2356).
const CUT: [std::ops::Range<usize>; 2] = [1500..1756, 2100..2356];
const SMALL: usize = 64;
const N: usize = 4096;

/// One way of running a case: a name and a closure that does open + read + close once.
type Way = (&'static str, Box<dyn FnMut() -> Result<(), Error>>);

/// One case: an id and the ways torchfits can do it (the fastest counts, as for the peers).
struct Case {
    id: &'static str,
    ways: Vec<Way>,
}

/// The documented ways of opening a file that the cases try.
fn ways() -> [(&'static str, OpenOptions); 2] {
    [("pread", OpenOptions::new()), ("mmap", OpenOptions::new().mmap(true))]
}

/// A whole-image read, every way (for a compressed image the ways differ only in name: the tiles
/// are read by `pread` either way; pass `compressed` to time it once, as "default").
fn full_read<T: torchfits_core::Pixel>(path: PathBuf, hdu: usize, compressed: bool) -> Vec<Way> {
    let ways: Vec<(&'static str, OpenOptions)> =
        if compressed { vec![("default", OpenOptions::new())] } else { ways().into_iter().collect() };
    ways.into_iter()
        .map(|(name, options)| {
            let path = path.clone();
            let mut buf: Vec<T> = Vec::new();
            let way: Way = (
                name,
                Box::new(move || {
                    let file = options.open(&path)?;
                    let img = file.image(hdu)?;
                    buf.resize(img.len(), T::default());
                    img.read_into(&mut buf)
                }),
            );
            way
        })
        .collect()
}

fn cutout<T: torchfits_core::Pixel>(path: PathBuf, hdu: usize) -> Vec<Way> {
    let mut out: Vec<Way> = Vec::new();
    for (name, options) in ways() {
        let path = path.clone();
        let mut buf: Vec<T> = vec![T::default(); CUT[0].len() * CUT[1].len()];
        let section = Section::new(CUT.to_vec());
        out.push((
            name,
            Box::new(move || {
                let file = options.open(&path)?;
                file.image(hdu)?.read_section_into(&section, &mut buf)
            }),
        ));
    }
    for (name, options) in cached_ways() {
        let path = path.clone();
        let mut buf: Vec<T> = vec![T::default(); CUT[0].len() * CUT[1].len()];
        let section = Section::new(CUT.to_vec());
        let cache = FileCache::new(FileCache::DEFAULT_CAPACITY, options);
        out.push((name, Box::new(move || cache.open(&path)?.image(hdu)?.read_section_into(&section, &mut buf))));
    }
    out
}

/// `sections` of HDU `hdu` of one open file, shared by `threads` threads that read a share each,
/// as a data loader reads: the file is opened on the first run and kept open, and so are the
/// worker threads (`threads - 1` of them; the calling thread reads the first share), each with a
/// clone of the open file and its own stamp buffers.
fn shared_cutouts<T: torchfits_core::Pixel>(
    path: PathBuf,
    hdu: usize,
    sections: &[Section],
    threads: usize,
) -> Vec<Way> {
    let mut out: Vec<Way> = Vec::new();
    for (name, options) in ways() {
        let (path, sections) = (path.clone(), sections.to_vec());
        let mut loader: Option<Loader<T>> = None;
        out.push((
            name,
            Box::new(move || {
                let loader = match &mut loader {
                    Some(l) => l,
                    None => {
                        loader.insert(Loader::start(options.clone().threads(1).open(&path)?, hdu, &sections, threads))
                    }
                };
                loader.run()
            }),
        ));
    }
    out
}

/// One share of a loader's sections: the stamps it reads into.
struct Share<T> {
    sections: Vec<Section>,
    stamps: Vec<Vec<T>>,
}

impl<T: torchfits_core::Pixel> Share<T> {
    fn new(sections: &[Section]) -> Self {
        Share { sections: sections.to_vec(), stamps: sections.iter().map(|s| vec![T::default(); s.len()]).collect() }
    }

    fn read(&mut self, file: &FitsFile, hdu: usize) -> Result<(), Error> {
        let image = file.image(hdu)?;
        self.sections.iter().zip(&mut self.stamps).try_for_each(|(s, buf)| image.read_section_into(s, buf))
    }
}

/// Worker threads kept across runs, each reading its share of one open file when told to.
///
/// The hand-off is a generation counter the workers watch, spinning for a moment before they park
/// (a training loop's workers are busy between batches; a parked worker takes tens of
/// microseconds to wake, as long as a share of this case takes to read). The case measures how
/// reads of one open file scale across threads, not how fast the scheduler wakes one.
struct Loader<T> {
    file: FitsFile,
    hdu: usize,
    mine: Share<T>,
    shared: std::sync::Arc<Handoff>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

/// What the loader and its workers share: the run to do, how many shares are done, the first error.
#[derive(Default)]
struct Handoff {
    generation: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicUsize,
    stop: std::sync::atomic::AtomicBool,
    error: std::sync::Mutex<Option<Error>>,
}

/// Spins this many times on a flag before parking (or yielding) the thread: about 50 us.
const SPINS: u32 = 20_000;

impl<T: torchfits_core::Pixel> Loader<T> {
    fn start(file: FitsFile, hdu: usize, sections: &[Section], threads: usize) -> Self {
        use std::sync::atomic::Ordering::{Acquire, Release};
        let per = sections.len().div_ceil(threads.max(1)).max(1);
        let mut shares = sections.chunks(per);
        let mine = Share::new(shares.next().unwrap_or(&[]));
        let shared = std::sync::Arc::new(Handoff::default());
        let mut workers = Vec::new();
        for share in shares {
            let (file, shared, mut share) = (file.clone(), shared.clone(), Share::<T>::new(share));
            workers.push(std::thread::spawn(move || {
                let mut seen = 0;
                loop {
                    let mut spins = 0;
                    while shared.generation.load(Acquire) == seen && !shared.stop.load(Acquire) {
                        spins += 1;
                        if spins < SPINS { std::hint::spin_loop() } else { std::thread::park() }
                    }
                    if shared.stop.load(Acquire) {
                        return;
                    }
                    seen = shared.generation.load(Acquire);
                    if let Err(e) = share.read(&file, hdu) {
                        shared.error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    }
                    shared.done.fetch_add(1, Release);
                }
            }));
        }
        Loader { file, hdu, mine, shared, workers }
    }

    /// One run: every worker reads its share while this thread reads the first.
    fn run(&mut self) -> Result<(), Error> {
        use std::sync::atomic::Ordering::{Acquire, Release};
        self.shared.done.store(0, Release);
        self.shared.generation.fetch_add(1, Release);
        for worker in &self.workers {
            worker.thread().unpark();
        }
        let mut result = self.mine.read(&self.file, self.hdu);
        let mut spins = 0;
        while self.shared.done.load(Acquire) < self.workers.len() {
            spins += 1;
            if spins < SPINS { std::hint::spin_loop() } else { std::thread::yield_now() }
        }
        if let Some(e) = self.shared.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            result = result.and(Err(e));
        }
        result
    }
}

impl<T> Drop for Loader<T> {
    fn drop(&mut self) {
        self.shared.stop.store(true, std::sync::atomic::Ordering::Release);
        for worker in self.workers.drain(..) {
            worker.thread().unpark();
            let _ = worker.join();
        }
    }
}

/// The ways through a [`FileCache`] kept from one run to the next, as a training loop keeps
/// one per worker: each open is a `stat` of the file and a cache lookup.
fn cached_ways() -> [(&'static str, OpenOptions); 2] {
    [("cache+pread", OpenOptions::new()), ("cache+mmap", OpenOptions::new().mmap(true))]
}

fn cases(dir: &Path) -> Vec<Case> {
    let p = |name: &str| dir.join(name);
    let mut out = vec![
        Case { id: "img_f32_4096_full", ways: full_read::<f32>(p("img_f32_4096.fits"), 0, false) },
        Case { id: "img_i16_2048_full", ways: full_read::<i16>(p("img_i16_2048.fits"), 0, false) },
        Case { id: "img_u16_2048_full", ways: full_read::<u16>(p("img_u16_2048.fits"), 0, false) },
        Case { id: "img_scaled_i16_2048_full", ways: full_read::<f32>(p("img_scaled_i16_2048.fits"), 0, false) },
        Case { id: "rice_i16_4096_full", ways: full_read::<i16>(p("rice_i16_4096.fits"), 1, true) },
        Case { id: "rice_i16_4096_t256_full", ways: full_read::<i16>(p("rice_i16_4096_t256.fits"), 1, true) },
        Case { id: "rice_f32_4096_full", ways: full_read::<f32>(p("rice_f32_4096.fits"), 1, true) },
        // written by benches/peer_cases.py (python fitsio, cfitsio's default tiles)
        Case { id: "hcompress_i16_4096_full", ways: full_read::<i16>(p("hcompress_i16_4096.fits"), 1, true) },
        Case { id: "plio_i32_4096_full", ways: full_read::<i32>(p("plio_i32_4096.fits"), 1, true) },
        Case { id: "cutout_f32_256", ways: cutout::<f32>(p("img_f32_4096.fits"), 0) },
        Case { id: "cutout_rice_i16_256", ways: cutout::<i16>(p("rice_i16_4096.fits"), 1) },
        Case { id: "cutout_rice_i16_t256_256", ways: cutout::<i16>(p("rice_i16_4096_t256.fits"), 1) },
    ];
    let img = p("img_f32_4096.fits");
    let sections: Vec<Section> = (0..100)
        .map(|k| {
            let (y, x) = ((k * 977) % (N - SMALL), (k * 1543) % (N - SMALL));
            Section::new(vec![y..y + SMALL, x..x + SMALL])
        })
        .collect();
    let many: Vec<Way> = ways()
        .into_iter()
        .map(|(name, options)| {
            let (path, sections) = (img.clone(), sections.clone());
            let mut stamps: Vec<Vec<f32>> = vec![vec![0f32; SMALL * SMALL]; sections.len()];
            let way: Way = (
                name,
                Box::new(move || {
                    let file = options.open(&path)?;
                    let image = file.image(0)?;
                    for (s, buf) in sections.iter().zip(stamps.iter_mut()) {
                        image.read_section_into(s, buf)?;
                    }
                    Ok(())
                }),
            );
            way
        })
        .collect();
    let mut many = many;
    for (name, options) in cached_ways() {
        let (path, sections) = (img.clone(), sections.clone());
        let mut stamps: Vec<Vec<f32>> = vec![vec![0f32; SMALL * SMALL]; sections.len()];
        let cache = FileCache::new(FileCache::DEFAULT_CAPACITY, options);
        many.push((
            name,
            Box::new(move || {
                let image = cache.open(&path)?.image(0)?;
                for (s, buf) in sections.iter().zip(stamps.iter_mut()) {
                    image.read_section_into(s, buf)?;
                }
                Ok(())
            }),
        ));
    }
    out.push(Case { id: "cutouts_f32_64x100", ways: many });
    for threads in [1, 2] {
        let (f32_id, rice_id) = if threads == 1 {
            ("shared_cutouts_f32_64x100_1t", "shared_cutouts_rice_i16_t256_64x100_1t")
        } else {
            ("shared_cutouts_f32_64x100_2t", "shared_cutouts_rice_i16_t256_64x100_2t")
        };
        out.push(Case { id: f32_id, ways: shared_cutouts::<f32>(img.clone(), 0, &sections, threads) });
        let rice = p("rice_i16_4096_t256.fits");
        out.push(Case { id: rice_id, ways: shared_cutouts::<i16>(rice, 1, &sections, threads) });
    }
    let table_case = |file: &str, columns: Option<&'static [&'static str]>, rows: Option<std::ops::Range<u64>>| -> Vec<Way> {
        let table = p(file);
        ways()
            .into_iter()
            .map(|(name, options)| {
                let (path, rows) = (table.clone(), rows.clone());
                // column buffers reused from run to run, as a training loop reuses them
                let pool = ColumnPool::default();
                let way: Way = (
                    name,
                    Box::new(move || {
                        let file = options.open(&path)?;
                        let mut reader = file.table(1)?.with_batch_rows(1 << 20).with_pool(&pool);
                        if let Some(c) = columns {
                            reader = reader.with_columns(c)?;
                        }
                        if let Some(r) = rows.clone() {
                            reader = reader.with_rows(r)?;
                        }
                        for batch in reader.build()? {
                            pool.recycle(std::hint::black_box(batch?));
                        }
                        Ok(())
                    }),
                );
                way
            })
            .collect()
    };
    out.push(Case { id: "write_f32_4096", ways: write_case::<f32>(p("img_f32_4096.fits"), 0, None) });
    out.push(Case {
        id: "write_rice_i16_4096",
        ways: write_case::<i16>(p("rice_i16_4096.fits"), 1, Some(Compression::new(Algorithm::Rice))),
    });
    out.push(Case { id: "wcs_pix2world_16M", ways: wcs_case(p("img_f32_4096.fits")) });
    #[cfg(feature = "gpu")]
    {
        out.push(Case { id: "wcs_pix2world_16M_wgpu", ways: wcs_tensor_case(p("img_f32_4096.fits"), "wgpu", false) });
        out.push(Case { id: "wcs_pix2world_16M_flex", ways: wcs_tensor_case(p("img_f32_4096.fits"), "cpu", false) });
        out.push(Case { id: "wcs_grid_256x64x64_wgpu", ways: wcs_tensor_case(p("img_f32_4096.fits"), "wgpu", true) });
    }
    out.push(Case { id: "table_1M_full", ways: table_case("table_1M.fits", None, None) });
    out.push(Case { id: "table_1M_2cols", ways: table_case("table_1M.fits", Some(&["ra", "flux"]), None) });
    out.push(Case { id: "table_1M_rows_100k", ways: table_case("table_1M.fits", None, Some(500_000..600_000)) });
    // the same table tile-compressed by fpack -table (benches/peer_cases.py makes it)
    let packed = "table_1M.fits.fz";
    out.push(Case { id: "ztable_1M_full", ways: table_case(packed, None, None) });
    out.push(Case { id: "ztable_1M_2cols", ways: table_case(packed, Some(&["ra", "flux"]), None) });
    out.push(Case { id: "ztable_1M_rows_100k", ways: table_case(packed, None, Some(500_000..600_000)) });
    let path = img.clone();
    let header: Way = (
        "open+header",
        Box::new(move || {
            let header: Header = FitsFile::open(&path)?.header(0)?;
            std::hint::black_box(header);
            Ok(())
        }),
    );
    out.push(Case { id: "header_f32", ways: vec![header] });
    let path = img;
    let open: Way = (
        "open",
        Box::new(move || {
            let file = FitsFile::open(&path)?;
            std::hint::black_box(file);
            Ok(())
        }),
    );
    out.push(Case { id: "open_close", ways: vec![open] });
    #[cfg(feature = "gpu")]
    out.extend(loader::cases(dir));
    out
}

/// Writing the image of HDU `hdu` of `source` (read once, on the first run) to a new file beside
/// it, as a training job saves an output, and as the peers' script does (the old output removed
/// first, no fsync): `FitsWriter`, and `std::fs::write` of the same pixel bytes (big-endian), the
/// "raw" way. (Replacing an existing file instead costs either way: ext4 flushes a file renamed
/// over another, and truncating a file waits for its pages under writeback.)
fn write_case<T: torchfits_core::Pixel>(source: PathBuf, hdu: usize, compression: Option<Compression>) -> Vec<Way> {
    let out = source.with_extension("written.fits");
    let load = move |source: &Path| -> Result<(Vec<T>, Vec<usize>), Error> {
        let file = FitsFile::open(source)?;
        let image = file.image(hdu)?;
        Ok((image.read()?, image.shape().to_vec()))
    };
    let mut ways: Vec<Way> = Vec::new();
    let compressed = compression.is_some();
    let (src, dst) = (source.clone(), out.clone());
    let mut data: Option<(Vec<T>, Vec<usize>)> = None;
    ways.push((
        "FitsWriter",
        Box::new(move || {
            if data.is_none() {
                data = Some(load(&src)?);
            }
            let Some((pixels, shape)) = &data else { return Ok(()) };
            let _ = std::fs::remove_file(&dst);
            let mut writer = WriteOptions::new().sync(false).create(&dst)?;
            let mut image = writer.image(pixels, shape);
            if let Some(c) = &compression {
                image = image.compress(c.clone());
            }
            image.write()?;
            writer.finish()?;
            Ok(())
        }),
    ));
    if !compressed {
        let raw_out = out.with_extension("raw");
        let mut bytes: Option<Vec<u8>> = None;
        ways.push((
            RAW,
            Box::new(move || {
                if bytes.is_none() {
                    // the big-endian pixels as the source file holds them (its last HDU's data)
                    let (pixels, _) = load(&source)?;
                    let len = pixels.len() * std::mem::size_of::<T>();
                    let file = std::fs::read(&source)
                        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", source.display())))?;
                    let start = file.len() - len.div_ceil(2880) * 2880;
                    bytes = Some(file[start..start + len].to_vec());
                }
                let b = bytes.as_deref().unwrap_or_default();
                let _ = std::fs::remove_file(&raw_out);
                std::fs::write(&raw_out, b)
                    .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", raw_out.display())))
            }),
        ));
    }
    ways
}

/// Pixel to world for every pixel of the 4096x4096 image's TAN WCS (16.8M points, buffers made
/// on the first run): `Wcs` on every core, and single-threaded wcslib (a `Wcs` held to one
/// thread and to wcslib) as the baseline.
fn wcs_case(source: PathBuf) -> Vec<Way> {
    type Data = (Wcs, Vec<f64>, Vec<f64>);
    let way = |threads: Option<usize>, name: &'static str| -> Way {
        let source = source.clone();
        let shared: std::rc::Rc<std::cell::RefCell<Option<Data>>> = std::rc::Rc::default();
        (
            name,
            Box::new(move || {
                let mut slot = shared.borrow_mut();
                if slot.is_none() {
                    let mut wcs = FitsFile::open(&source)?.wcs(0)?;
                    if threads == Some(1) {
                        // the baseline: wcslib itself on one thread
                        wcs.set_wcslib_only();
                    }
                    let pix: Vec<f64> = (0..N * N).flat_map(|k| [(k % N) as f64, (k / N) as f64]).collect();
                    let out = vec![0.0; pix.len()];
                    *slot = Some((wcs, pix, out));
                }
                let Some((wcs, pix, out)) = slot.as_mut() else { return Ok(()) };
                wcs.set_threads(threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())));
                wcs.pixel_to_world(pix, out)?;
                Ok(())
            }),
        )
    };
    vec![way(None, "Wcs"), way(Some(1), WCSLIB_1T)]
}

/// The WCS case on Burn tensors (`DeviceWcs`, the backend extension) on `device` (`wgpu`: the
/// default adapter, the kernel; `cpu`: Burn's CPU backend, wcslib): every pixel of the image as
/// an f32 `[N, 2]` tensor already on the device, transformed there (`grid` false), or the
/// coordinate planes of 256 cutouts of 64x64 pixels made on the device (`grid` true); each run
/// waits for the device to finish. On a machine without a GPU the wgpu adapter is Mesa's
/// lavapipe, which runs the kernel on the CPU. (A build with the `gpu` feature.)
#[cfg(feature = "gpu")]
fn wcs_tensor_case(source: PathBuf, device: &'static str, grid: bool) -> Vec<Way> {
    use torchfits_burn::burn::tensor::{Device, Tensor, TensorData};
    use torchfits_burn::wcs::DeviceWcs;
    type Data = (DeviceWcs, Device, Option<Tensor<2>>, Vec<(f64, f64)>);
    let shared: std::rc::Rc<std::cell::RefCell<Option<Data>>> = std::rc::Rc::default();
    let name = match (grid, device) {
        (true, _) => "DeviceWcs::coordinate_planes (wgpu)",
        (false, "wgpu") => "DeviceWcs::pixel_to_world (wgpu)",
        (false, _) => "DeviceWcs::pixel_to_world (cpu)",
    };
    vec![(
        name,
        Box::new(move || {
            let mut slot = shared.borrow_mut();
            if slot.is_none() {
                let wcs = DeviceWcs::new(FitsFile::open(&source)?.wcs(0)?);
                let dev = torchfits_burn::wcs::device(device.parse()?)?;
                let (pixels, origins) = if grid {
                    (None, (0..256).map(|k| ((k % 16 * 256) as f64, (k / 16 * 256) as f64)).collect())
                } else {
                    let pix: Vec<f32> = (0..N * N).flat_map(|k| [(k % N) as f32, (k / N) as f32]).collect();
                    (Some(Tensor::<2>::from_data(TensorData::new(pix, [N * N, 2]), &dev)), Vec::new())
                };
                *slot = Some((wcs, dev, pixels, origins));
            }
            let Some((wcs, dev, pixels, origins)) = slot.as_ref() else { return Ok(()) };
            match pixels {
                Some(p) => drop(wcs.pixel_to_world(p.clone())?),
                None => drop(wcs.coordinate_planes(origins, 64, 64, dev)?),
            }
            dev.sync().map_err(|e| Error::new(ErrorKind::Io, format!("{device}: {e:?}")))
        }),
    )]
}

/// The single-threaded wcslib baseline of the WCS case.
const WCSLIB_1T: &str = "wcslib 1 thread";

/// The name of a baseline way (not torchfits): reported beside the case, never as its time.
const RAW: &str = "std::fs::write";

/// The baseline ways of the cases: each reported as its case's `raw`, never as its time.
#[cfg(feature = "gpu")]
const BASELINES: [&str; 3] = [RAW, WCSLIB_1T, loader::BARE];
#[cfg(not(feature = "gpu"))]
const BASELINES: [&str; 2] = [RAW, WCSLIB_1T];

fn is_baseline(way: &str) -> bool {
    BASELINES.contains(&way)
}

/// Whether a case's ways are timed in turns ([`time_interleaved`]): the loader cases, whose
/// result is a ratio to the bare reads of the same pixels, so that both sides see the same
/// moments of a shared machine.
fn interleaved(case: &Case) -> bool {
    #[cfg(feature = "gpu")]
    return case.ways.iter().any(|(name, _)| *name == loader::BARE);
    #[cfg(not(feature = "gpu"))]
    {
        let _ = case;
        false
    }
}

/// The loader cases' runs at least: each pass is a few hundred milliseconds, and their ratios
/// are what the gate checks.
const INTERLEAVED_RUNS: usize = 9;

/// Median milliseconds of each way, the ways run in turns (one warm-up each, then
/// `max(runs, INTERLEAVED_RUNS)` rounds of one run of every way); a way that fails is left out.
fn time_interleaved(id: &str, ways: Vec<Way>, runs: usize) -> Vec<(&'static str, f64)> {
    // each way with its times
    let mut ways: Vec<(Way, Vec<f64>)> = ways
        .into_iter()
        .filter_map(|(name, mut run)| match run() {
            Ok(()) => Some(((name, run), Vec::new())),
            Err(e) => {
                eprintln!("{id:28} {name}: skipped: {e}");
                None
            }
        })
        .collect();
    for _ in 0..runs.max(INTERLEAVED_RUNS) {
        ways.retain_mut(|((name, run), ms)| {
            let t0 = Instant::now();
            match run() {
                Ok(()) => {
                    ms.push(t0.elapsed().as_secs_f64() * 1e3);
                    true
                }
                Err(e) => {
                    eprintln!("{id:28} {name}: skipped: {e}");
                    false
                }
            }
        });
    }
    ways.into_iter().map(|((name, _), ms)| (name, median(ms))).collect()
}

/// The median of `ms` (not empty).
fn median(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(|a, b| a.total_cmp(b));
    let m = ms.len();
    if m % 2 == 1 { ms[m / 2] } else { 0.5 * (ms[m / 2 - 1] + ms[m / 2]) }
}

/// Median milliseconds of `runs` runs of `run` after one warm-up.
fn time(run: &mut dyn FnMut() -> Result<(), Error>, runs: usize) -> Result<f64, Error> {
    run()?;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        run()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok(median(ms))
}

/// A field of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(field: &str) -> Result<u64, Error> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read /proc/self/status: {e}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::Io, format!("no {field} in /proc/self/status")))
}

/// Makes this program's code resident: its executable mappings read through `/proc/self/mem`
/// (which faults their pages in), as a Python peer's code is in memory once its modules are
/// imported. Without it, the first call of a way would count the pages of code it runs as the
/// call's memory.
fn code_resident() -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    let io = |what: &str, e: std::io::Error| Error::new(ErrorKind::Io, format!("{what}: {e}"));
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|e| io("cannot read /proc/self/maps", e))?;
    let mem = std::fs::File::open("/proc/self/mem").map_err(|e| io("cannot open /proc/self/mem", e))?;
    let mut buf = vec![0u8; 1 << 20];
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        if !perms.contains('x') || fields.nth(3).is_none() {
            continue;
        }
        let Some((lo, hi)) = range.split_once('-') else { continue };
        let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16)) else { continue };
        let mut at = lo;
        while at < hi {
            let n = ((hi - at) as usize).min(buf.len());
            // a page that cannot be read (a guard page) is left as it is
            let _ = mem.read_at(&mut buf[..n], at);
            at += n as u64;
        }
    }
    Ok(())
}

/// Prints the peak resident memory (MiB) one call of way `way` of case `id` adds: the process's
/// high-water mark during the call (reset through `/proc/self/clear_refs` just before it) minus
/// its resident set then, the result included, as `peer_bench.py memory` measures the peers. The
/// first call of the way, so that its buffers are made inside the measurement; the program's code
/// is made resident first ([`code_resident`]). `Ok(false)` when the case has no such way (or no
/// such case).
pub fn memory(dir: &Path, id: &str, way: usize) -> Result<bool, Error> {
    let Some(case) = cases(dir).into_iter().find(|c| c.id == id) else {
        return Ok(false);
    };
    let Some((name, mut run)) = case.ways.into_iter().filter(|(n, _)| !is_baseline(n)).nth(way) else {
        return Ok(false);
    };
    code_resident()?;
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot reset the high-water mark: {e}")))?;
    let before = status_kib("VmRSS")?;
    run()?;
    let peak = status_kib("VmHWM")?;
    outln!("{:.2} {name}", peak.saturating_sub(before) as f64 / 1024.0)?;
    Ok(true)
}

/// Runs every case whose file exists in `dir` (and whose id contains one of `only`, when given); prints one line per case (every way's median, the
/// fastest first); writes the JSON with the fastest way's median.
pub fn run(dir: &Path, runs: usize, json_out: Option<&Path>, only: &[String]) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::new(ErrorKind::Parameter, format!("{}: not a directory", dir.display())));
    }
    let runs = runs.max(1);
    let mut results = BTreeMap::new();
    for case in cases(dir) {
        if !only.is_empty() && !only.iter().any(|o| case.id.contains(o.as_str())) {
            continue;
        }
        let mut timed: Vec<(&str, f64)> = Vec::new();
        if interleaved(&case) {
            timed = time_interleaved(case.id, case.ways, runs);
        } else {
            for (name, mut run) in case.ways {
                match time(&mut run, runs) {
                    Ok(ms) => timed.push((name, ms)),
                    Err(e) => eprintln!("{:28} {name}: skipped: {e}", case.id),
                }
            }
        }
        timed.sort_by(|a, b| a.1.total_cmp(&b.1));
        let raw = timed.iter().find(|(n, _)| is_baseline(n)).map(|&(_, ms)| ms);
        let Some(&(best_way, best)) = timed.iter().find(|(n, _)| !is_baseline(n)) else {
            continue;
        };
        let all: Vec<String> = timed.iter().map(|(n, ms)| format!("{n} {ms:.3}")).collect();
        outln!("{:28} torchfits {:9.3} ms   ({})", case.id, best, all.join(", "))?;
        let mut entry = json!({ "torchfits": (best * 1e4).round() / 1e4, "way": best_way });
        if let Some(raw) = raw {
            entry["raw"] = json!((raw * 1e4).round() / 1e4);
        }
        results.insert(case.id, entry);
    }
    if let Some(out) = json_out {
        let doc = json!({ "runs": runs, "cases": results });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot format JSON: {e}")))?;
        std::fs::write(out, text).map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", out.display())))?;
    }
    Ok(())
}
