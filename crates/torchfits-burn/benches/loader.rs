//! The loader's rate: 64x64 stamps of `img_f32_4096.fits` (the standard benchmark file) through
//! burn's `DataLoader` with 1 and 2 workers, beside the bare rate of the same cutouts read with
//! `read_section_into` into one reused buffer on one thread (a cache of open files, memory-mapped,
//! as the dataset reads).
//!
//! ```sh
//! cargo bench -p torchfits-burn --bench loader -- [--dir bench-data] [--items 20000] [--runs 5]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::tensor::Device;
use torchfits_burn::{CatalogCutoutDataset, StampBatcher, Subset};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{FileCache, FitsFile, OpenOptions, Section, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
            let s = ds.stamp(i).expect("stamp");
            (s.origin.0 as usize, s.origin.1 as usize)
        })
        .collect();

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    // bare: the same cutouts, one thread, one buffer
    let mut cache = FileCache::new(4, OpenOptions::new().mmap(true));
    let mut buf = vec![0f32; 64 * 64];
    let mut bare = Vec::new();
    for _ in 0..runs + 1 {
        let t0 = Instant::now();
        for &(x, y) in &origins {
            let section = Section::new(vec![y..y + 64, x..x + 64]);
            cache.open(&image)?.image(0)?.read_section_into(&section, &mut buf)?;
        }
        bare.push(items as f64 / t0.elapsed().as_secs_f64());
    }
    bare.remove(0);
    let bare = median(bare);
    println!("machine: {} cores", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("{items} stamps of 64x64 f32 from {}, median of {runs} passes", image.display());
    println!("| way | items/s | MB/s (image channel) | vs bare |");
    println!("|---|---|---|---|");
    let mb = |r: f64| r * 64.0 * 64.0 * 4.0 / 1e6;
    println!("| bare read_section_into, 1 thread | {bare:.0} | {:.0} | 1.00 |", mb(bare));
    let device = Device::default();
    let mut rates = Vec::new();
    for workers in [1usize, 2] {
        let loader = DataLoaderBuilder::new(StampBatcher::new())
            .batch_size(64)
            .num_workers(workers)
            .set_device(device.clone())
            .build(Subset::new(ds.clone(), (0..items).collect()));
        let mut r = Vec::new();
        for _ in 0..runs + 1 {
            let t0 = Instant::now();
            let mut n = 0;
            for b in loader.iter() {
                n += b?.indices.len();
            }
            assert_eq!(n, items);
            r.push(items as f64 / t0.elapsed().as_secs_f64());
        }
        r.remove(0);
        let rate = median(r);
        rates.push(rate);
        println!(
            "| DataLoader, {workers} worker{} (CatalogCutoutDataset + StampBatcher, batches of 64 on burn-flex) | {rate:.0} | {:.0} | {:.2} |",
            if workers > 1 { "s" } else { "" },
            mb(rate),
            rate / bare
        );
    }
    println!("\n2 workers / 1 worker: {:.2}x", rates[1] / rates[0]);
    Ok(())
}
