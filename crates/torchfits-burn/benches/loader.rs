//! The loader's rate, for each dataset: items through burn's `DataLoader` with 1 and 2 workers
//! (batches of 64 on burn-flex), beside the bare rate of the same reads with `read_section_into`
//! into one reused buffer on one thread (a cache of open files, memory-mapped, as the datasets
//! read): 64x64 stamps of `img_f32_4096.fits` (the standard benchmark file) around catalog
//! positions (`CatalogCutoutDataset`) and as random crops (`ImagingDataset`), and spectra, the
//! rows of a 2000x4000 flux and inverse-variance pair (`SpectroscopicDataset`, a file this
//! bench writes into the bench directory).
//!
//! ```sh
//! cargo bench -p torchfits-burn --bench loader -- [--dir bench-data] [--items 20000] [--runs 5]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use torchfits_burn::{
    CatalogCutoutDataset, Crop, ImagingDataset, Prefetch, SpectroscopicDataset, SpectrumBatcher, StampBatcher, Subset,
};
use torchfits_core::Header;
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{FileCache, FitsFile, OpenOptions, Section, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("loader: a benchmark; run it with cargo bench -p torchfits-burn --bench loader");
        return Ok(());
    }
    // the workspace's bench-data/ (cargo runs benches in the package directory)
    let mut dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench-data"));
    let mut items = 20_000usize;
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().ok_or("--dir DIR")?.into(),
            "--items" => items = args.next().ok_or("--items N")?.parse()?,
            "--runs" => runs = args.next().ok_or("--runs N")?.parse()?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let image = dir.join("img_f32_4096.fits");
    if !image.exists() {
        return Err(format!(
            "{} is missing: python3 ../shared/peers/peer_bench.py make --dir {}",
            image.display(),
            dir.display()
        )
        .into());
    }
    // positions: stamps wholly inside the image, spread over it (a fixed pseudo-random sequence)
    let wcs = FitsFile::open(&image)?.wcs(0)?;
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let pix: Vec<f64> = (0..items).flat_map(|_| [40.0 + next() * 4000.0, 40.0 + next() * 4000.0]).collect();
    let mut world = vec![0.0; pix.len()];
    wcs.pixel_to_world(&pix, &mut world)?;
    let catalog = dir.join("loader_catalog.fits");
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(world.iter().step_by(2).copied().collect())),
        ColumnData::new("DEC", ColumnValues::F64(world.iter().skip(1).step_by(2).copied().collect())),
    ])?;
    let mut w = WriteOptions::new().overwrite(true).create(&catalog)?;
    w.write_table(&t, "CATALOG", None)?;
    w.finish()?;
    let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, [&image]).size(64).build()?);
    assert_eq!(ds.len(), items, "every position is on the image");
    let origins: Vec<(usize, usize)> = (0..items)
        .map(|i| {
            let s = ds.read(i).expect("stamp");
            (s.origin.0 as usize, s.origin.1 as usize)
        })
        .collect();

    // bare: the same cutouts, one thread, one buffer
    let mut cache = FileCache::new(4, OpenOptions::new().mmap(true));
    let bare = bare_rate(&mut cache, &image, &origins, runs)?;
    println!("machine: {} cores", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("{items} stamps of 64x64 f32 from {}, median of {runs} passes", image.display());
    println!("| way | items/s | MB/s (pixel data) | vs bare |");
    println!("|---|---|---|---|");
    let mb = |r: f64| r * 64.0 * 64.0 * 4.0 / 1e6;
    println!("| bare read_section_into (the stamps), 1 thread | {bare:.0} | {:.0} | 1.00 |", mb(bare));
    let device = Device::default();
    let stamps = loader_rates(ds.clone(), StampBatcher::new(), items, runs, &device)?;
    row("CatalogCutoutDataset + StampBatcher", &stamps, bare, mb(1.0));
    // our own read-ahead threads (a fixed order), batched on the consuming thread
    for threads in [1usize, 2] {
        let mut r = Vec::new();
        for _ in 0..runs + 1 {
            let t0 = Instant::now();
            let batcher = StampBatcher::new();
            let mut pending = Vec::with_capacity(64);
            for (_, item) in Prefetch::new(ds.clone(), (0..items).collect(), threads, 128) {
                pending.push(item?);
                if pending.len() == 64 {
                    let _ = batcher.try_batch(std::mem::take(&mut pending), &device)?;
                }
            }
            if !pending.is_empty() {
                let _ = batcher.try_batch(pending, &device)?;
            }
            r.push(items as f64 / t0.elapsed().as_secs_f64());
        }
        r.remove(0);
        let rate = median(r);
        println!(
            "| CatalogCutoutDataset, Prefetch {threads} thread{} + StampBatcher on the loop's thread | {rate:.0} | {:.0} | {:.2} |",
            if threads > 1 { "s" } else { "" },
            mb(rate),
            rate / bare
        );
    }

    // random 64x64 crops of the same image, one item per entry
    let crops = Arc::new(
        ImagingDataset::builder(vec![&image; items]).crop(Crop::Random { height: 64, width: 64, seed: 1 }).build()?,
    );
    let places: Vec<(usize, usize)> = (0..items)
        .map(|i| {
            let s = crops.read(i).expect("crop");
            (s.origin.0 as usize, s.origin.1 as usize)
        })
        .collect();
    let bare_crops = bare_rate(&mut cache, &image, &places, runs)?;
    println!("| bare read_section_into (the crops), 1 thread | {bare_crops:.0} | {:.0} | 1.00 |", mb(bare_crops));
    let rates = loader_rates(crops, StampBatcher::new(), items, runs, &device)?;
    row("ImagingDataset (random crops) + StampBatcher", &rates, bare_crops, mb(1.0));

    // spectra: rows of FLUX and IVAR [2000, 4000]
    let spectra_file = dir.join("spectra_2000x4000.fits");
    let (nspec, nwave) = (2000usize, 4000usize);
    if !spectra_file.exists() {
        let flux: Vec<f32> = (0..nspec * nwave).map(|i| (i % 977) as f32).collect();
        let mut w = WriteOptions::new().overwrite(true).create(&spectra_file)?;
        for name in ["FLUX", "IVAR"] {
            let mut h = Header::new();
            h.set("EXTNAME", name, None)?;
            w.image(&flux, &[nspec, nwave]).header(&h).write()?;
        }
        w.finish()?;
    }
    let spectra = Arc::new(SpectroscopicDataset::image_rows([&spectra_file], &["FLUX", "IVAR"]).build()?);
    let mut buf = vec![0f32; nwave];
    let mut r = Vec::new();
    for _ in 0..runs + 1 {
        let t0 = Instant::now();
        for row in 0..nspec {
            let section = Section::new(vec![row..row + 1, 0..nwave]);
            for hdu in ["FLUX", "IVAR"] {
                cache.open(&spectra_file)?.image(hdu)?.read_section_into(&section, &mut buf)?;
            }
        }
        r.push(nspec as f64 / t0.elapsed().as_secs_f64());
    }
    r.remove(0);
    let bare_spectra = median(r);
    let mb_spectrum = |x: f64| x * 2.0 * nwave as f64 * 4.0 / 1e6;
    println!(
        "| bare read_section_into (flux + ivar rows), 1 thread | {bare_spectra:.0} | {:.0} | 1.00 |",
        mb_spectrum(bare_spectra)
    );
    let rates = loader_rates(spectra, SpectrumBatcher::new(), nspec, runs, &device)?;
    row("SpectroscopicDataset + SpectrumBatcher", &rates, bare_spectra, mb_spectrum(1.0));
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 64x64 sections at `places` (x, y) of `image`, one thread, one buffer: items/s.
fn bare_rate(
    cache: &mut FileCache,
    image: &std::path::Path,
    places: &[(usize, usize)],
    runs: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut buf = vec![0f32; 64 * 64];
    let mut r = Vec::new();
    for _ in 0..runs + 1 {
        let t0 = Instant::now();
        for &(x, y) in places {
            let section = Section::new(vec![y..y + 64, x..x + 64]);
            cache.open(image)?.image(0)?.read_section_into(&section, &mut buf)?;
        }
        r.push(places.len() as f64 / t0.elapsed().as_secs_f64());
    }
    r.remove(0);
    Ok(median(r))
}

/// Items/s of `dataset` through burn's DataLoader (batches of 64) with 1 and 2 workers.
fn loader_rates<I, O, D, B>(
    dataset: Arc<D>,
    batcher: B,
    items: usize,
    runs: usize,
    device: &Device,
) -> Result<[f64; 2], Box<dyn std::error::Error>>
where
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
    O: Send + Clone + std::fmt::Debug + 'static,
    D: Dataset<I> + 'static,
    B: Batcher<I, O> + Clone + 'static,
{
    let mut out = [0.0; 2];
    for (k, workers) in [1usize, 2].into_iter().enumerate() {
        let loader = DataLoaderBuilder::new(batcher.clone())
            .batch_size(64)
            .num_workers(workers)
            .set_device(device.clone())
            .build(Subset::new(dataset.clone(), (0..items).collect()));
        let mut r = Vec::new();
        for _ in 0..runs + 1 {
            let t0 = Instant::now();
            let mut n = 0;
            for b in loader.iter() {
                let _ = b?;
                n += 1;
            }
            assert_eq!(n, items.div_ceil(64));
            r.push(items as f64 / t0.elapsed().as_secs_f64());
        }
        r.remove(0);
        out[k] = median(r);
    }
    Ok(out)
}

fn row(what: &str, rates: &[f64; 2], bare: f64, mb_per_item: f64) {
    for (k, workers) in [1, 2].into_iter().enumerate() {
        println!(
            "| {what}, DataLoader {workers} worker{} | {:.0} | {:.0} | {:.2} |",
            if workers > 1 { "s" } else { "" },
            rates[k],
            rates[k] * mb_per_item,
            rates[k] / bare
        );
    }
    println!("| {what}: 2 workers / 1 | {:.2}x | | |", rates[1] / rates[0]);
}
