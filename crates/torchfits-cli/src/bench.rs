//! `torchfits bench`: times the standard cases of `../shared/peers/README.md` with the peers'
//! semantics: open + read + close, result in native-endian typed memory, warm page cache, the
//! median of N runs after one warm-up.
//!
//! This is a harness over the public API, as a training loop would use it: buffers are reused
//! from one run to the next, as the peers' `raw` case reuses its buffer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use torchfits_core::{Error, ErrorKind, FitsFile, Header, Section};

/// The 256x256 cutout of the cutout cases (rows 1500:1756, cols 2100:2356).
const CUT: [std::ops::Range<usize>; 2] = [1500..1756, 2100..2356];
const SMALL: usize = 64;
const N: usize = 4096;

/// One case: an id and a closure that does open + read + close once.
struct Case {
    id: &'static str,
    run: Box<dyn FnMut() -> Result<(), Error>>,
}

fn full_read<T: torchfits_core::Pixel>(
    path: PathBuf,
    hdu: usize,
) -> Box<dyn FnMut() -> Result<(), Error>> {
    let mut buf: Vec<T> = Vec::new();
    Box::new(move || {
        let mut file = FitsFile::open(&path)?;
        let mut img = file.image(hdu)?;
        buf.resize(img.len(), T::default());
        img.read_into(&mut buf)
    })
}

fn cutout<T: torchfits_core::Pixel>(
    path: PathBuf,
    hdu: usize,
) -> Box<dyn FnMut() -> Result<(), Error>> {
    let mut buf: Vec<T> = vec![T::default(); CUT[0].len() * CUT[1].len()];
    let section = Section::new(CUT.to_vec());
    Box::new(move || {
        let mut file = FitsFile::open(&path)?;
        file.image(hdu)?.read_section_into(&section, &mut buf)
    })
}

fn cases(dir: &Path) -> Vec<Case> {
    let p = |name: &str| dir.join(name);
    let mut out = vec![
        Case {
            id: "img_f32_4096_full",
            run: full_read::<f32>(p("img_f32_4096.fits"), 0),
        },
        Case {
            id: "img_i16_2048_full",
            run: full_read::<i16>(p("img_i16_2048.fits"), 0),
        },
        Case {
            id: "img_u16_2048_full",
            run: full_read::<u16>(p("img_u16_2048.fits"), 0),
        },
        Case {
            id: "img_scaled_i16_2048_full",
            run: full_read::<f32>(p("img_scaled_i16_2048.fits"), 0),
        },
        Case {
            id: "rice_i16_4096_full",
            run: full_read::<i16>(p("rice_i16_4096.fits"), 1),
        },
        Case {
            id: "rice_i16_4096_t256_full",
            run: full_read::<i16>(p("rice_i16_4096_t256.fits"), 1),
        },
        Case {
            id: "rice_f32_4096_full",
            run: full_read::<f32>(p("rice_f32_4096.fits"), 1),
        },
        Case {
            id: "cutout_f32_256",
            run: cutout::<f32>(p("img_f32_4096.fits"), 0),
        },
        Case {
            id: "cutout_rice_i16_256",
            run: cutout::<i16>(p("rice_i16_4096.fits"), 1),
        },
        Case {
            id: "cutout_rice_i16_t256_256",
            run: cutout::<i16>(p("rice_i16_4096_t256.fits"), 1),
        },
    ];
    let img = p("img_f32_4096.fits");
    let sections: Vec<Section> = (0..100)
        .map(|k| {
            let (y, x) = ((k * 977) % (N - SMALL), (k * 1543) % (N - SMALL));
            Section::new(vec![y..y + SMALL, x..x + SMALL])
        })
        .collect();
    let mut stamps: Vec<Vec<f32>> = vec![vec![0f32; SMALL * SMALL]; 100];
    let path = img.clone();
    out.push(Case {
        id: "cutouts_f32_64x100",
        run: Box::new(move || {
            let mut file = FitsFile::open(&path)?;
            let mut image = file.image(0)?;
            for (s, buf) in sections.iter().zip(stamps.iter_mut()) {
                image.read_section_into(s, buf)?;
            }
            Ok(())
        }),
    });
    let path = img.clone();
    out.push(Case {
        id: "header_f32",
        run: Box::new(move || {
            let header: Header = FitsFile::open(&path)?.header(0)?;
            std::hint::black_box(header);
            Ok(())
        }),
    });
    let path = img;
    out.push(Case {
        id: "open_close",
        run: Box::new(move || {
            let file = FitsFile::open(&path)?;
            std::hint::black_box(file);
            Ok(())
        }),
    });
    out
}

/// Median milliseconds of `runs` runs after one warm-up.
fn time(case: &mut Case, runs: usize) -> Result<f64, Error> {
    (case.run)()?;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        (case.run)()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let m = ms.len();
    Ok(if m % 2 == 1 {
        ms[m / 2]
    } else {
        0.5 * (ms[m / 2 - 1] + ms[m / 2])
    })
}

/// Runs every case whose file exists in `dir`; prints one line per case; writes the JSON.
pub fn run(dir: &Path, runs: usize, json_out: Option<&Path>) -> Result<(), Error> {
    if !dir.is_dir() {
        return Err(Error::new(
            ErrorKind::Parameter,
            format!("{}: not a directory", dir.display()),
        ));
    }
    let runs = runs.max(1);
    let mut results = BTreeMap::new();
    for mut case in cases(dir) {
        match time(&mut case, runs) {
            Ok(ms) => {
                println!("{:28} torchfits {:9.3} ms", case.id, ms);
                results.insert(case.id, json!({ "torchfits": (ms * 1e4).round() / 1e4 }));
            }
            Err(e) => eprintln!("{:28} skipped: {e}", case.id),
        }
    }
    if let Some(out) = json_out {
        let doc = json!({ "runs": runs, "cases": results });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot format JSON: {e}")))?;
        std::fs::write(out, text)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", out.display())))?;
    }
    Ok(())
}
