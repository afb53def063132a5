//! Criterion benches, one group per layer: header parsing, whole-image reads by each path,
//! sections, compressed reads on 1 and 2 threads, pooled against fresh buffers. Fixtures are
//! written at start-up into a temporary folder (by the integration tests' FITS writer); nothing
//! large is committed.
//!
//! `cargo bench --bench layers`

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use torchfits::{BufferPool, FitsFile, Header, OpenOptions, Section};

#[allow(dead_code)]
#[path = "../tests/it/common.rs"]
mod common;

struct Fixtures {
    f32_2k: PathBuf,
    scaled_2k: PathBuf,
}

fn fixtures() -> Fixtures {
    let dir = common::tempdir("bench-layers");
    let shape = [2048usize, 2048];
    let ints = common::pattern(&shape, -30000, 30000);
    let f32s: Vec<f32> = ints.iter().map(|&v| v as f32 * 0.5).collect();
    let f32_2k = dir.join("f32_2k.fits");
    common::write(&f32_2k, &[common::image(true, -32, &shape, &[], common::be(&f32s, f32::to_be_bytes))]);
    let i16s: Vec<i16> = ints.iter().map(|&v| v as i16).collect();
    let scaled_2k = dir.join("scaled_2k.fits");
    let cards = [("BSCALE", "0.01"), ("BZERO", "1000")];
    common::write(&scaled_2k, &[common::image(true, 16, &shape, &cards, common::be(&i16s, i16::to_be_bytes))]);
    Fixtures { f32_2k, scaled_2k }
}

fn header_parse(c: &mut Criterion) {
    let mut raw = String::new();
    for k in 0..200 {
        raw.push_str(&format!("{:<80}", format!("KEY{k:05}= {:>20} / synthetic keyword {k}", k as f64 * 1.5)));
    }
    raw.push_str(&format!("{:<80}", "OBJECT  = 'NGC 1316'"));
    let mut g = c.benchmark_group("header");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("parse_201_cards", |b| b.iter(|| Header::parse(black_box(raw.as_bytes()))));
    g.finish();
}

fn full_reads(c: &mut Criterion) {
    let fx = fixtures();
    let mut g = c.benchmark_group("full_read_2048x2048");
    g.sample_size(20);
    for (name, path, bytes) in [("f32", &fx.f32_2k, 4u64), ("scaled_i16_to_f32", &fx.scaled_2k, 4)] {
        g.throughput(Throughput::Bytes(2048 * 2048 * bytes));
        for (way, options) in [
            ("pread", OpenOptions::new()),
            ("pread_1_thread", OpenOptions::new().threads(1)),
            ("mmap", OpenOptions::new().mmap(true)),
            ("cfitsio", OpenOptions::new().direct_reads(false)),
        ] {
            let mut buf = vec![0f32; 2048 * 2048];
            g.bench_with_input(BenchmarkId::new(name, way), &options, |b, options| {
                b.iter(|| {
                    let f = options.open(path).expect("open");
                    f.image(0).expect("image").read_into(&mut buf).expect("read");
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("section_256x256");
    g.throughput(Throughput::Bytes(256 * 256 * 4));
    let section = Section::new(vec![900..1156, 700..956]);
    for (way, options) in [("pread", OpenOptions::new()), ("mmap", OpenOptions::new().mmap(true))] {
        let file = options.open(&fx.f32_2k).expect("open");
        let mut buf = vec![0f32; 256 * 256];
        g.bench_function(way, |b| {
            b.iter(|| file.image(0).expect("image").read_section_into(&section, &mut buf).expect("read"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("pool_vs_fresh_2048x2048_f32");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(2048 * 2048 * 4));
    let pool = BufferPool::default();
    let file = OpenOptions::new().open(&fx.f32_2k).expect("open");
    g.bench_function("pooled", |b| {
        b.iter(|| {
            let img = file.image(0).expect("image");
            let mut buf = pool.get::<f32>(img.len()).expect("buffer");
            img.read_into(&mut buf).expect("read");
            black_box(&buf[0]);
        })
    });
    g.bench_function("fresh_vec", |b| {
        b.iter(|| {
            let img = file.image(0).expect("image");
            let buf: Vec<f32> = img.read().expect("read");
            black_box(buf);
        })
    });
    g.finish();
}

fn compressed(c: &mut Criterion) {
    let path = common::compressed_fixture();
    let mut g = c.benchmark_group("compressed_1024x1024_i16");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(1024 * 1024 * 2));
    for name in ["RICE_BIG_I16", "GZIP_BIG_TILES_I16"] {
        for threads in [1usize, 2] {
            let file = OpenOptions::new().threads(threads).open(&path).expect("open");
            let mut buf = vec![0i16; 1024 * 1024];
            g.bench_with_input(BenchmarkId::new(name, format!("{threads}_threads")), &threads, |b, _| {
                b.iter(|| file.image(name).expect("image").read_into(&mut buf).expect("read"))
            });
        }
    }
    g.finish();
    let _ = FitsFile::open(&path);
}

/// The RICE_1 decoder's speed on one core, on the standard file (`bench-data/rice_i16_4096.fits`,
/// made by `peer_bench.py make`; `TORCHFITS_BENCH_DATA` names another folder), beside reading the
/// same file's bytes: a whole-image read on one thread (its time is the decoder's, but for the
/// tile reads and the copy out), and `pread` of the whole file into a reused buffer.
fn rice_one_core(c: &mut Criterion) {
    let dir = std::env::var("TORCHFITS_BENCH_DATA").map_or_else(|_| PathBuf::from("bench-data"), PathBuf::from);
    let path = dir.join("rice_i16_4096.fits");
    let Ok(bytes) = std::fs::metadata(&path).map(|m| m.len()) else {
        eprintln!("rice_one_core: {} not found (python3 ../shared/peers/peer_bench.py make --dir bench-data)", path.display());
        return;
    };
    let mut g = c.benchmark_group("rice_i16_4096_one_core");
    g.sample_size(20);
    let file = OpenOptions::new().threads(1).open(&path).expect("open");
    let image = file.image(1).expect("the compressed image");
    let mut pixels = vec![0i16; image.len()];
    g.throughput(Throughput::Bytes(std::mem::size_of_val(pixels.as_slice()) as u64));
    g.bench_function("decode_full_image", |b| b.iter(|| image.read_into(&mut pixels).expect("read")));
    let mut raw = vec![0u8; bytes as usize];
    let handle = std::fs::File::open(&path).expect("open the file");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("raw_read_of_the_file", |b| {
        b.iter(|| std::os::unix::fs::FileExt::read_exact_at(&handle, &mut raw, 0).expect("read"))
    });
    g.finish();
}

/// Inflating GZIP_1 tiles: zlib-rs (through flate2, what the reader uses) beside zune-inflate (a
/// pure-Rust inflater modelled on libdeflate), on 256 row tiles of int16 sky noise (sigma 10, the
/// standard images' kind), each into a buffer of its known size.
fn gzip_inflaters(c: &mut Criterion) {
    use std::io::{Read, Write};
    let n = 4096usize;
    let mut s = 42u64;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let tiles: Vec<Vec<u8>> = (0..256)
        .map(|_| {
            let raw: Vec<u8> = (0..n)
                .flat_map(|_| {
                    let (u, v) = (uniform().max(1e-12), uniform());
                    let x = 1000.0 + 10.0 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                    (x as i16).to_be_bytes()
                })
                .collect();
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&raw).expect("compress");
            e.finish().expect("compress")
        })
        .collect();
    let mut g = c.benchmark_group("gzip_tiles_256x4096_i16");
    g.sample_size(20);
    g.throughput(Throughput::Bytes((256 * n * 2) as u64));
    let mut out = Vec::with_capacity(n * 2 + 1);
    g.bench_function("zlib_rs", |b| {
        b.iter(|| {
            for code in &tiles {
                out.clear();
                flate2::read::GzDecoder::new(&code[..]).take(n as u64 * 2 + 1).read_to_end(&mut out).expect("inflate");
            }
        })
    });
    g.bench_function("zune_inflate", |b| {
        b.iter(|| {
            for code in &tiles {
                let options = zune_inflate::DeflateOptions::default().set_size_hint(n * 2).set_limit(n * 2 + 1);
                black_box(zune_inflate::DeflateDecoder::new_with_options(code, options).decode_gzip().expect("inflate"));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, header_parse, full_reads, compressed, rice_one_core, gzip_inflaters);
criterion_main!(benches);
