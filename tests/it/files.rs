//! Opening files: HDU listing and selection, literal paths, errors that name the file and HDU.

use torchfits::write::Algorithm;
use torchfits::{Compression, ErrorKind, FitsFile, HduKind, HduSelector, OpenOptions, WriteOptions};

use crate::common::{self, be, card, image, write};

#[test]
fn lists_hdus_with_kinds_names_and_shapes() {
    let file = FitsFile::open(common::sample()).expect("open");
    let hdus = file.hdus().expect("hdus");
    let summary: Vec<_> = hdus
        .iter()
        .map(|h| (h.index, h.kind, h.extname.as_deref(), h.compressed, h.shape.clone(), h.nrows, h.ncols))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, HduKind::Image, None, false, Some(vec![]), None, None),
            (1, HduKind::Image, Some("SCI"), false, Some(vec![48, 64]), None, None),
            (2, HduKind::Image, Some("DQ"), false, Some(vec![48, 64]), None, None),
            (3, HduKind::Image, Some("SCI_RICE"), true, Some(vec![48, 64]), None, None),
            (4, HduKind::BinTable, Some("CATALOG"), false, None, Some(2), Some(3)),
        ]
    );
    assert_eq!(hdus[3].bitpix, Some(32));
    assert_eq!(file.hdu_count().expect("count"), 5);
}

#[test]
fn selects_by_index_name_and_version() {
    let dir = common::tempdir("select");
    let path = dir.join("multi.fits");
    let px = |v: i16| be(&[v; 4], i16::to_be_bytes);
    write(
        &path,
        &[
            image(true, 16, &[], &[], vec![]),
            image(false, 16, &[2, 2], &[("EXTNAME", "'SCI     '"), ("EXTVER", "1")], px(1)),
            image(false, 16, &[2, 2], &[("EXTNAME", "'SCI     '"), ("EXTVER", "2")], px(2)),
            image(false, 16, &[2, 2], &[("EXTNAME", "'err'")], px(3)),
        ],
    );
    let mut file = FitsFile::open(&path).expect("open");
    let first =
        |file: &FitsFile, sel: HduSelector| -> i16 { file.image(sel).expect("image").read::<i16>().expect("read")[0] };
    assert_eq!(first(&mut file, HduSelector::Index(2)), 2);
    assert_eq!(first(&mut file, "SCI".into()), 1);
    assert_eq!(first(&mut file, "sci".into()), 1);
    assert_eq!(first(&mut file, ("SCI", 2).into()), 2);
    assert_eq!(first(&mut file, "SCI,2".parse().expect("selector")), 2);
    assert_eq!(first(&mut file, "ERR".into()), 3);
    assert_eq!(first(&mut file, "ERR,1".parse().expect("selector")), 3);
    assert_eq!(file.resolve("PRIMARY").expect("primary"), 0);
    for bad in [HduSelector::from("NOPE"), HduSelector::from(("SCI", 3)), HduSelector::Index(9)] {
        let err = file.hdu(bad.clone()).expect_err("no such HDU");
        assert_eq!(err.kind(), ErrorKind::Parameter, "{bad}");
        assert!(err.to_string().contains("multi.fits"), "{err}");
    }
}

#[test]
fn paths_are_opened_literally() {
    let dir = common::tempdir("literal");
    let sample = std::fs::read(common::sample()).expect("sample");
    for name in ["a[1].fits", "!x.fits", "b.fits[SCI]", "c.fits(+1)", "mem:y.fits"] {
        let path = dir.join(name);
        std::fs::write(&path, &sample).expect("copy");
        let file = FitsFile::open(&path).expect(name);
        assert_eq!(file.hdu_count().expect("count"), 5, "{name} is the whole file");
        assert_eq!(file.path(), path.as_path());
    }
    // "!x.fits" was not clobbered by opening it
    assert_eq!(std::fs::read(dir.join("!x.fits")).expect("still there"), sample);
    // a name with filter syntax that is not a file is not found, rather than interpreted
    std::fs::write(dir.join("plain.fits"), &sample).expect("copy");
    let err = FitsFile::open(dir.join("plain.fits[1]")).expect_err("no such file");
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    // ... unless the caller opts in to cfitsio's syntax
    let file =
        OpenOptions::new().cfitsio_extended_syntax(true).open(dir.join("plain.fits[SCI]")).expect("extended syntax");
    assert!(file.image(0).is_ok());
}

/// Writing takes names literally too, plain and tile-compressed (cfitsio's tile writer opens the
/// temporary file by name): `!` does not mean "clobber", `[..]` opens no extension, `mem:` makes
/// no memory file, `|` runs nothing; each file lands under its own name and nowhere else.
#[test]
fn paths_are_written_literally() {
    let dir = common::tempdir("literal-write");
    let names = ["!w.fits", "a[1].fits", "b.fits[SCI]", "mem:c.fits", "pipe|d.fits", "e.fits(+1)"];
    let pixels: Vec<i16> = (0..64 * 48).map(|i| (i % 1000) as i16).collect();
    for name in names {
        for compress in [None, Some(Algorithm::Rice), Some(Algorithm::Gzip1)] {
            let path = dir.join(name);
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect(name);
            let mut img = w.image(&pixels, &[48, 64]);
            if let Some(c) = compress {
                img = img.compress(Compression::new(c));
            }
            img.write().expect(name);
            w.finish().expect(name);
            let file = FitsFile::open(&path).expect(name);
            let n = file.hdu_count().expect("count");
            let back: Vec<i16> = file.image(n - 1).expect("image").read().expect("read");
            assert_eq!(back, pixels, "{name} {compress:?}");
        }
    }
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    found.sort_unstable();
    let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    want.sort_unstable();
    assert_eq!(found, want, "no other file was made");
}

#[test]
fn errors_name_the_file_and_cause() {
    let dir = common::tempdir("errors");
    let missing = dir.join("missing.fits");
    let err = FitsFile::open(&missing).expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(err.to_string().contains("missing.fits"), "{err}");

    let junk = dir.join("junk.fits");
    std::fs::write(&junk, vec![b'x'; 5000]).expect("write");
    let err = FitsFile::open(&junk).expect_err("not FITS");
    assert_eq!(err.kind(), ErrorKind::Decoding);
    assert!(err.to_string().contains("junk.fits"), "{err}");
    assert!(err.to_string().contains("not a FITS file"), "{err}");
    assert!(err.cfitsio().is_none(), "refused before cfitsio: {err}");

    // a truncated image: the header is fine, the data is cut short
    let truncated = dir.join("truncated.fits");
    let values: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
    write(&truncated, &[image(true, -32, &[100, 100], &[], be(&values, f32::to_be_bytes))]);
    let bytes = std::fs::read(&truncated).expect("read");
    std::fs::write(&truncated, &bytes[..2880 + 2880 * 3]).expect("truncate");
    let file = FitsFile::open(&truncated).expect("header is intact");
    let err = file.image(0).expect("image").read::<f32>().expect_err("truncated data");
    assert_eq!(err.kind(), ErrorKind::Decoding, "{err}");
    assert!(err.to_string().contains("truncated.fits") && err.to_string().contains("HDU 0"), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn files_cfitsio_refuses_still_list_their_headers() {
    // NAXIS before BITPIX: not standard, but astropy reads it; so do we (headers, not data)
    let dir = common::tempdir("order");
    let path = dir.join("order.fits");
    let mut cards = vec![card("SIMPLE", "T"), card("NAXIS", "0"), card("BITPIX", "8"), card("OBJECT", "'odd'")];
    cards.push(format!("{:<80}", "END"));
    let mut bytes: Vec<u8> = cards.concat().into_bytes();
    bytes.resize(2880, b' ');
    std::fs::write(&path, bytes).expect("write");
    let file = FitsFile::open(&path).expect("opens");
    let hdus = file.hdus().expect("hdus");
    assert_eq!(hdus.len(), 1);
    assert_eq!(hdus[0].shape, Some(vec![]));
    assert_eq!(file.header(0).expect("header").get_str("OBJECT"), Some("odd"));
}

#[test]
fn file_cache_is_lru_and_reopens_rewritten_files() {
    use torchfits::FileCache;
    let dir = common::tempdir("cache");
    let px = |v: i16| be(&[v; 6], i16::to_be_bytes);
    let paths: Vec<_> = ["a.fits", "b.fits", "c.fits"].iter().map(|n| dir.join(n)).collect();
    for (k, p) in paths.iter().enumerate() {
        write(p, &[image(true, 16, &[2, 3], &[], px(k as i16))]);
    }
    let mut cache = FileCache::new(2, OpenOptions::new());
    let first = |cache: &mut FileCache, p: &std::path::Path| -> i16 {
        cache.open(p).expect("open").image(0).expect("image").read::<i16>().expect("read")[0]
    };
    assert_eq!(first(&mut cache, &paths[0]), 0);
    assert_eq!(first(&mut cache, &paths[1]), 1);
    assert_eq!(first(&mut cache, &paths[0]), 0); // a hit; b is now least recently used
    assert_eq!(first(&mut cache, &paths[2]), 2); // evicts b
    assert!(cache.contains(&paths[0]) && cache.contains(&paths[2]) && !cache.contains(&paths[1]));
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.evicted, s.reopened), (1, 3, 1, 0));

    // a rewritten file (new size and content) is opened again, not read through the old index
    write(&paths[0], &[image(true, 16, &[4, 3], &[], be(&[7i16; 12], i16::to_be_bytes))]);
    let file = cache.open(&paths[0]).expect("reopen");
    assert_eq!(file.image(0).expect("image").shape(), &[4, 3]);
    assert_eq!(first(&mut cache, &paths[0]), 7);
    assert_eq!(cache.stats().reopened, 1);
    assert_eq!(cache.len(), 2);

    // a file that vanished is an error, not a stale read
    std::fs::remove_file(&paths[2]).expect("remove");
    assert_eq!(cache.open(&paths[2]).expect_err("gone").kind(), ErrorKind::Io);
}

/// A zip file of one member, `data` stored (method 0) or deflated (8), as its local header and
/// data (what cfitsio and torchfits read; a zip tool also writes a central directory).
fn zip_member(data: &[u8], method: u16) -> Vec<u8> {
    use std::io::Write;
    let body = if method == 8 {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("deflate");
        e.finish().expect("deflate")
    } else {
        data.to_vec()
    };
    let mut out = b"PK\x03\x04".to_vec();
    for v in [20u16, 0, method, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u32, body.len() as u32, data.len() as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&6u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(b"x.fits");
    out.extend_from_slice(&body);
    out
}

#[test]
fn zipped_files_read_as_the_file_they_hold_and_a_zip_bomb_is_refused() {
    let dir = common::tempdir("zip");
    let sample = std::fs::read(common::sample()).expect("sample");
    let want: Vec<f32> =
        FitsFile::open(common::sample()).expect("open").image("SCI").expect("image").read().expect("read");
    for method in [0, 8] {
        let path = dir.join(format!("sample-{method}.fits.zip"));
        std::fs::write(&path, zip_member(&sample, method)).expect("write");
        for options in [OpenOptions::new(), OpenOptions::new().mmap(true)] {
            let file = options.open(&path).expect("open the zip file");
            let got: Vec<f32> = file.image("SCI").expect("image").read().expect("read");
            assert_eq!(got, want, "method {method}");
        }
    }
    // 64 MiB of zeros in about 64 KiB, under an 8 MiB limit: refused while it inflates
    let bomb = dir.join("bomb.fits.zip");
    let mut zeros = b"SIMPLE  =".to_vec();
    zeros.resize(64 << 20, 0);
    std::fs::write(&bomb, zip_member(&zeros, 8)).expect("write");
    let limits = torchfits::Limits::default().with_max_alloc(8 << 20);
    let err = OpenOptions::new().limits(limits).open(&bomb).expect_err("a bomb");
    assert_eq!(err.kind(), ErrorKind::Limits, "{err}");
    assert!(err.to_string().contains("bomb.fits.zip"), "{err}");
    // a member compressed some other way is named, not guessed at
    let mut other = zip_member(&sample, 8);
    other[8] = 12; // bzip2
    std::fs::write(dir.join("bz.fits.zip"), other).expect("write");
    let err = FitsFile::open(dir.join("bz.fits.zip")).expect_err("bzip2");
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
}

/// A byte source whose reads past `sane` bytes panic, as a decoder's bug might.
#[derive(Debug)]
struct PanicsPast {
    bytes: Vec<u8>,
    sane: u64,
}

impl torchfits::ByteSource for PanicsPast {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        assert!(offset + buf.len() as u64 <= self.sane, "a bug met at byte {offset}");
        buf.copy_from_slice(&self.bytes[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }

    fn id(&self) -> torchfits::SourceId {
        torchfits::SourceId { location: "panics".into(), version: "1".into() }
    }
}

/// A panic while a tile band decodes, on the calling thread as on the others, is an error of the
/// read, not an unwinding through the caller.
#[test]
fn a_panic_while_tiles_decode_is_an_error_on_every_thread() {
    let dir = common::tempdir("tile-panic");
    let path = dir.join("tiles.fits");
    let pixels: Vec<i16> = (0..256 * 256).map(|k| (k % 1000) as i16).collect();
    let mut w = WriteOptions::new().create(&path).expect("create");
    w.image(&pixels, &[256, 256]).compress(Compression::new(Algorithm::Rice).tile(&[16, 256])).write().expect("write");
    w.finish().expect("finish");
    let bytes = std::fs::read(&path).expect("read");
    // the headers and the table of tiles read; the last tile's code (the last bytes before the
    // zero padding: the heap ends the file) panics, on the calling thread with one thread
    let sane = bytes.iter().rposition(|&b| b != 0).expect("data") as u64;
    for threads in [1, 2] {
        let source = std::sync::Arc::new(PanicsPast { bytes: bytes.clone(), sane });
        let file = OpenOptions::new().threads(threads).open_source("panics.fits", source).expect("open");
        let image = file.image(1).expect("image");
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| image.read::<i16>()));
        let err = got.expect("no panic reaches the caller").expect_err("a panicked decode");
        assert!(err.to_string().contains("panicked") && err.to_string().contains("panics.fits"), "{threads}: {err}");
    }
}
