//! Steady-state reads into pooled buffers allocate nothing (counted by a counting global
//! allocator, which is why this test is a binary of its own).

use std::path::PathBuf;

use torchfits::{BufferPool, OpenOptions, Section};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/sample.fits")
}

#[test]
fn steady_state_read_into_a_pooled_buffer_allocates_nothing() {
    let pool = BufferPool::default();
    for mmap in [false, true] {
        let file = OpenOptions::new().threads(1).mmap(mmap).open(sample()).expect("open");
        let image = file.image("SCI").expect("image");
        let section = Section::new(vec![5..37, 9..41]);
        // warm up: the pool allocates its buffers, the map is made, the thread's scratch grows
        for _ in 0..2 {
            let mut full = pool.get::<f32>(image.len()).expect("buffer");
            image.read_into(&mut full).expect("read");
            let mut cut = pool.get::<f32>(section.len()).expect("buffer");
            image.read_section_into(&section, &mut cut).expect("section");
        }
        let counts = allocation_counter::measure(|| {
            for _ in 0..10 {
                let mut full = pool.get::<f32>(image.len()).expect("buffer");
                image.read_into(&mut full).expect("read");
                let mut cut = pool.get::<f32>(section.len()).expect("buffer");
                image.read_section_into(&section, &mut cut).expect("section");
            }
        });
        assert_eq!(counts.count_total, 0, "mmap {mmap}: {counts:?}");
    }
    // a scaled image (BITPIX 16 -> f32, through the thread's scratch) is allocation-free too
    let path = scaled_image("steady", 32, 64);
    let file = OpenOptions::new().threads(1).open(&path).expect("open");
    let scaled = file.image(0).expect("image");
    let mut buf = pool.get::<f32>(scaled.len()).expect("buffer");
    scaled.read_into(&mut buf).expect("warm");
    let counts = allocation_counter::measure(|| scaled.read_into(&mut buf).expect("read"));
    assert_eq!(counts.count_total, 0, "{counts:?}");
    assert_eq!(&buf[..3], &[10.0, 10.5, 11.0]);
    std::fs::remove_file(&path).ok();
}

/// Writes a scaled 16-bit image (BSCALE 0.5, BZERO 10) of `rows` x `cols` and returns its path.
fn scaled_image(name: &str, rows: usize, cols: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("torchfits-alloc-{}-{name}.fits", std::process::id()));
    let cards = [
        "SIMPLE  =                    T".to_string(),
        "BITPIX  =                   16".to_string(),
        "NAXIS   =                    2".to_string(),
        format!("NAXIS1  = {cols:>20}"),
        format!("NAXIS2  = {rows:>20}"),
        "BSCALE  =                  0.5".to_string(),
        "BZERO   =                 10.0".to_string(),
        "END".to_string(),
    ];
    let mut bytes: Vec<u8> = cards.iter().flat_map(|c| format!("{c:<80}").into_bytes()).collect();
    bytes.resize(2880, b' ');
    bytes.extend((0..rows * cols).flat_map(|i| ((i % 30000) as i16).to_be_bytes()));
    bytes.resize(bytes.len().div_ceil(2880) * 2880, 0);
    std::fs::write(&path, bytes).expect("write");
    path
}

#[test]
fn peak_memory_of_a_full_read_is_the_output_plus_a_bounded_constant() {
    // 1024 x 1024 int16 -> 4 MiB of f32 output; the raw values pass through at most one chunk
    // (256 KiB) of scratch per thread
    let path = scaled_image("peak", 1024, 1024);
    for threads in [1, 2] {
        let file = OpenOptions::new().threads(threads).open(&path).expect("open");
        let image = file.image(0).expect("image");
        let out_bytes = image.len() * 4;
        let counts = allocation_counter::measure(|| {
            let v: Vec<f32> = image.read().expect("read");
            assert_eq!(v[3], 11.5);
        });
        let bound = out_bytes as u64 + threads as u64 * (256 << 10) + (64 << 10);
        assert!(counts.bytes_max <= bound, "threads {threads}: peak {} > {bound}", counts.bytes_max);
    }
    std::fs::remove_file(&path).ok();
}

#[path = "read_every_way.rs"]
mod read_every_way;

/// No file of tests/bad/ makes a read allocate past `Limits::max_alloc` (the peak of live heap
/// bytes, counted by the allocator: a header claiming a 100000 x 100000 tile once made the Rice
/// decoder reserve 40 GB, which the address space's overcommit hid from the bad-input test).
#[test]
fn no_bad_file_allocates_past_the_limit() {
    let mut over = Vec::new();
    for entry in std::fs::read_dir(read_every_way::bad_dir()).expect("tests/bad") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "py") {
            continue;
        }
        let counts = allocation_counter::measure(|| {
            let _ = read_every_way::read_everything(&path);
        });
        if counts.bytes_max > read_every_way::MAX_ALLOC {
            over.push(format!("{}: peak {} bytes", path.display(), counts.bytes_max));
        }
    }
    assert!(over.is_empty(), "{}", over.join("\n"));
}
