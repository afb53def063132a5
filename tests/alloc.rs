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
        let mut file = OpenOptions::new()
            .threads(1)
            .mmap(mmap)
            .open(sample())
            .expect("open");
        let mut image = file.image("SCI").expect("image");
        let section = Section::new(vec![5..37, 9..41]);
        // warm up: the pool allocates its buffers, the map is made, the thread's scratch grows
        for _ in 0..2 {
            let mut full = pool.get::<f32>(image.len()).expect("buffer");
            image.read_into(&mut full).expect("read");
            let mut cut = pool.get::<f32>(section.len()).expect("buffer");
            image
                .read_section_into(&section, &mut cut)
                .expect("section");
        }
        let counts = allocation_counter::measure(|| {
            for _ in 0..10 {
                let mut full = pool.get::<f32>(image.len()).expect("buffer");
                image.read_into(&mut full).expect("read");
                let mut cut = pool.get::<f32>(section.len()).expect("buffer");
                image
                    .read_section_into(&section, &mut cut)
                    .expect("section");
            }
        });
        assert_eq!(counts.count_total, 0, "mmap {mmap}: {counts:?}");
    }
    // a scaled image (BITPIX 16 -> f32, through the thread's scratch) is allocation-free too
    let path = std::env::temp_dir().join(format!("torchfits-alloc-{}.fits", std::process::id()));
    let cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                   16",
        "NAXIS   =                    2",
        "NAXIS1  =                   64",
        "NAXIS2  =                   32",
        "BSCALE  =                  0.5",
        "BZERO   =                 10.0",
        "END",
    ];
    let mut bytes: Vec<u8> = cards
        .iter()
        .flat_map(|c| format!("{c:<80}").into_bytes())
        .collect();
    bytes.resize(2880, b' ');
    bytes.extend((0..64 * 32).flat_map(|i: i16| i.to_be_bytes()));
    bytes.resize(bytes.len().div_ceil(2880) * 2880, 0);
    std::fs::write(&path, bytes).expect("write");
    let mut file = OpenOptions::new().threads(1).open(&path).expect("open");
    let mut scaled = file.image(0).expect("image");
    let mut buf = pool.get::<f32>(scaled.len()).expect("buffer");
    scaled.read_into(&mut buf).expect("warm");
    let counts = allocation_counter::measure(|| scaled.read_into(&mut buf).expect("read"));
    assert_eq!(counts.count_total, 0, "{counts:?}");
    assert_eq!(&buf[..3], &[10.0, 10.5, 11.0]);
    std::fs::remove_file(&path).ok();
}
