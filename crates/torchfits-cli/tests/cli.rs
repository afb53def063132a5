//! The `torchfits` command as a user runs it: outputs, exit codes and error lines.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn torchfits(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torchfits")).args(args).output().expect("run torchfits")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample() -> String {
    repo().join("examples/data/sample.fits").display().to_string()
}

/// A fresh directory under the target directory: a rerun replaces it.
fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn info_json_lists_every_hdu() {
    let v = stdout_json(&torchfits(&["info", &sample(), "--json"]));
    let hdus = v["hdus"].as_array().expect("hdus");
    assert_eq!(hdus.len(), 5);
    assert_eq!(hdus[1]["extname"], "SCI");
    assert_eq!(hdus[1]["shape"], serde_json::json!([48, 64]));
    assert_eq!(hdus[1]["dtype"], "float32");
    assert_eq!(hdus[3]["compressed"], true);
    assert_eq!(hdus[3]["kind"], "image");
    assert_eq!(hdus[4]["kind"], "bintable");
    assert_eq!(hdus[4]["nrows"], 2);
    assert_eq!(hdus[4]["shape"], serde_json::Value::Null);
    let text = torchfits(&["info", &sample()]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("SCI_RICE"));
}

#[test]
fn header_json_is_typed_and_selects_by_name() {
    let v = stdout_json(&torchfits(&["header", &sample(), "--hdu", "SCI", "--json"]));
    let cards = v["cards"].as_array().expect("cards");
    let find = |k: &str| cards.iter().find(|c| c["keyword"] == k).map(|c| c["value"].clone());
    assert_eq!(find("BITPIX"), Some(serde_json::json!(-32)));
    assert_eq!(find("EXPTIME"), Some(serde_json::json!(30.0)));
    assert_eq!(find("CTYPE1"), Some(serde_json::json!("RA---TAN")));
    let v = stdout_json(&torchfits(&["header", &sample(), "--hdu", "SCI_RICE,1", "--json"]));
    let bitpix =
        v["cards"].as_array().expect("cards").iter().find(|c| c["keyword"] == "BITPIX").map(|c| c["value"].clone());
    assert_eq!(bitpix, Some(serde_json::json!(32)));
}

#[test]
fn read_writes_npy_with_shape_and_dtype() {
    let dir = tempdir("read");
    let out = dir.join("cut.npy");
    let o = torchfits(&["read", &sample(), "--hdu", "3", "--section", "10:12,5:8", "-o", out.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).expect("npy");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + hlen]);
    assert!(header.contains("'<i4'") && header.contains("(2, 3)"), "{header}");
    assert_eq!(bytes.len(), 10 + hlen + 2 * 3 * 4);
}

#[test]
fn bad_input_exits_1_with_one_line_naming_file_and_hdu() {
    let dir = tempdir("bad");
    let out = dir.join("x.npy");
    let out = out.to_str().expect("utf8");
    for (args, needle) in [
        (vec!["info".to_string(), "/nonexistent/x.fits".into()], "/nonexistent/x.fits"),
        (vec!["read".into(), sample(), "--hdu".into(), "CATALOG".into(), "-o".into(), out.into()], "HDU 4"),
        (
            vec![
                "read".into(),
                sample(),
                "--hdu".into(),
                "1".into(),
                "--section".into(),
                "0:5".into(),
                "-o".into(),
                out.into(),
            ],
            "HDU 1",
        ),
        (vec!["header".into(), sample(), "--hdu".into(), "NOPE".into()], "NOPE"),
        (vec!["read".into(), sample(), "--hdu".into(), "0".into(), "-o".into(), out.into()], "HDU 0"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = torchfits(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains("sample.fits") || err.contains("/nonexistent/x.fits"), "names the file: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(torchfits(&[]).status.code(), Some(2));
    assert_eq!(torchfits(&["info"]).status.code(), Some(2));
    assert_eq!(torchfits(&["read", &sample()]).status.code(), Some(2));
    assert_eq!(torchfits(&["header", &sample(), "--hdu", "SCI,x"]).status.code(), Some(2));
}

#[test]
fn literal_file_names() {
    let dir = tempdir("literal");
    let path = dir.join("a[1].fits");
    std::fs::copy(repo().join("examples/data/sample.fits"), &path).expect("copy");
    let v = stdout_json(&torchfits(&["info", path.to_str().expect("utf8"), "--json"]));
    assert_eq!(v["hdus"].as_array().map(Vec::len), Some(5));
}

#[test]
fn preview_writes_a_png() {
    let dir = tempdir("preview");
    for stretch in ["zscale", "asinh", "linear"] {
        let out = dir.join(format!("{stretch}.png"));
        let o =
            torchfits(&["preview", &sample(), "--hdu", "SCI", "--stretch", stretch, "-o", out.to_str().expect("utf8")]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let png = std::fs::read(&out).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width 64, height 48
        assert_eq!(u32::from_be_bytes([png[16], png[17], png[18], png[19]]), 64);
        assert_eq!(u32::from_be_bytes([png[20], png[21], png[22], png[23]]), 48);
    }
    let o = torchfits(&["preview", &sample(), "--hdu", "CATALOG", "-o", dir.join("t.png").to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn tables_go_to_parquet_or_arrow_with_columns_rows_and_filters() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempdir("tables");
    let pq = dir.join("cat.parquet");
    let pq_s = pq.to_str().expect("utf8");
    let o = torchfits(&["read", &sample(), "--hdu", "CATALOG", "-o", pq_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = |p: &Path| {
        let r = SerializedFileReader::new(std::fs::File::open(p).expect("open")).expect("parquet");
        let m = r.metadata();
        let cols: Vec<String> =
            m.file_metadata().schema_descr().columns().iter().map(|c| c.name().to_string()).collect();
        (m.file_metadata().num_rows(), cols)
    };
    assert_eq!(meta(&pq), (2, vec!["ra".to_string(), "dec".to_string(), "flux".to_string()]));
    let o = torchfits(&["read", &sample(), "--hdu", "4", "--columns", "flux,ra", "--where", "flux > 400", "-o", pq_s]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(meta(&pq), (1, vec!["flux".to_string(), "ra".to_string()]));
    let o = torchfits(&["read", &sample(), "--hdu", "4", "--rows", "1:", "-o", pq_s]);
    assert!(o.status.success());
    assert_eq!(meta(&pq).0, 1);
    let ipc = dir.join("cat.arrow");
    let o = torchfits(&["read", &sample(), "--hdu", "4", "-o", ipc.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(&std::fs::read(&ipc).expect("ipc")[..6], b"ARROW1");
    // bad filters, columns and outputs are one-line errors with exit 1
    for args in [vec!["--where", "flux >"], vec!["--columns", "nope"], vec!["--rows", "5:9"]] {
        let s = sample();
        let mut all = vec!["read", s.as_str(), "--hdu", "4"];
        all.extend(args.iter().copied());
        all.extend(["-o", pq_s]);
        let o = torchfits(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("HDU 4"), "{args:?}: {err}");
    }
    let o = torchfits(&["read", &sample(), "--hdu", "SCI", "-o", pq_s]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn tables_go_to_csv_with_a_header_line() {
    let dir = tempdir("csv");
    let csv = dir.join("cat.csv");
    let o =
        torchfits(&["read", &sample(), "--hdu", "CATALOG", "--columns", "ra,flux", "-o", csv.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&csv).expect("csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "ra,flux");
    let header = stdout_json(&torchfits(&["header", &sample(), "--hdu", "CATALOG", "--json"]));
    assert!(header["cards"].as_array().is_some_and(|c| !c.is_empty()));
    let o = torchfits(&["read", &sample(), "--hdu", "SCI", "-o", csv.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1), "an image is not written as CSV");
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    // a header longer than a pipe holds (3000 cards), read by a reader that takes one line and
    // goes away, as `torchfits header F | head -1` does
    let dir = tempdir("pipe");
    let path = dir.join("long_header.fits");
    let mut cards: Vec<String> = vec![
        format!("{:<8}= {:>20}", "SIMPLE", "T"),
        format!("{:<8}= {:>20}", "BITPIX", 8),
        format!("{:<8}= {:>20}", "NAXIS", 0),
    ];
    cards.extend((0..3000).map(|k| format!("COMMENT card {k} of a long header")));
    cards.push("END".into());
    let mut bytes: Vec<u8> = cards.iter().flat_map(|c| format!("{c:<80}").into_bytes()).collect();
    bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
    std::fs::write(&path, bytes).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_torchfits"))
        .args(["header", path.to_str().expect("utf8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run torchfits");
    let mut first = [0u8; 8];
    child.stdout.take().expect("stdout").read_exact(&mut first).expect("a first line");
    // the read end is closed here; every later write fails with EPIPE (SIGPIPE is ignored by
    // Rust programs)
    let out = child.wait_with_output().expect("wait");
    assert_eq!(&first, b"SIMPLE  ", "{first:?}");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn write_round_trips_npy_and_parquet_and_never_clobbers() {
    let dir = tempdir("write");
    let s = |p: &Path| p.display().to_string();
    // an image read to .npy, written back (RICE), read again: the same bytes
    let npy = dir.join("sci.npy");
    assert!(torchfits(&["read", &sample(), "--hdu", "DQ", "-o", &s(&npy)]).status.success());
    let fits = dir.join("dq.fits");
    let out = torchfits(&["write", &s(&npy), "-o", &s(&fits), "--compress", "rice", "--extname", "DQ", "--checksum"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = dir.join("again.npy");
    assert!(torchfits(&["read", &s(&fits), "--hdu", "DQ", "-o", &s(&again)]).status.success());
    assert_eq!(std::fs::read(&npy).expect("npy"), std::fs::read(&again).expect("again"));
    let verified = torchfits(&["verify", &s(&fits)]);
    assert!(verified.status.success());
    assert!(String::from_utf8_lossy(&verified.stdout).contains("HDU 1: CHECKSUM valid, DATASUM valid"));
    // an existing output: exit 1, one line, the file untouched; --overwrite replaces it
    let before = std::fs::read(&fits).expect("fits");
    let refused = torchfits(&["write", &s(&npy), "-o", &s(&fits)]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("dq.fits") && err.contains("exists") && err.lines().count() == 1, "{err}");
    assert_eq!(std::fs::read(&fits).expect("fits"), before);
    assert!(torchfits(&["write", &s(&npy), "-o", &s(&fits), "--overwrite"]).status.success());
    // a changed byte: verify exits 1
    let mut bytes = before.clone();
    let n = bytes.len();
    bytes[n - 2880 - 7] ^= 0x55;
    let bad = dir.join("bad.fits");
    std::fs::write(&bad, &bytes).expect("write");
    assert_eq!(torchfits(&["verify", &s(&bad)]).status.code(), Some(1));
    // a table to Parquet, back to FITS, back to Parquet: the same table
    let pq = dir.join("cat.parquet");
    assert!(torchfits(&["read", &sample(), "--hdu", "CATALOG", "-o", &s(&pq)]).status.success());
    let cat = dir.join("cat.fits");
    let out = torchfits(&["write", &s(&pq), "-o", &s(&cat), "--extname", "CATALOG"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pq2 = dir.join("cat2.parquet");
    assert!(torchfits(&["read", &s(&cat), "--hdu", "CATALOG", "-o", &s(&pq2)]).status.success());
    let rows = |p: &Path| {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let r = SerializedFileReader::new(std::fs::File::open(p).expect("open")).expect("parquet");
        r.get_row_iter(None).expect("rows").map(|row| row.expect("row").to_string()).collect::<Vec<_>>()
    };
    assert_eq!(rows(&pq), rows(&pq2));
    // the table tile-compressed (tiles of 1 row: several tiles), read back decompressed
    let packed = dir.join("cat.fits.fz");
    let args = ["write", &s(&pq), "-o", &s(&packed), "--extname", "CATALOG", "--compress", "rice", "--tile", "1"];
    let out = torchfits(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pq3 = dir.join("cat3.parquet");
    let back = torchfits(&["read", &s(&packed), "--hdu", "CATALOG", "--decompress-tables", "-o", &s(&pq3)]);
    assert!(back.status.success(), "{}", String::from_utf8_lossy(&back.stderr));
    assert_eq!(rows(&pq), rows(&pq3));
    // an input it cannot write: exit 1; an image's compression or quantisation on a table: exit 1
    let txt = dir.join("x.txt");
    std::fs::write(&txt, "x").expect("write");
    assert_eq!(torchfits(&["write", &s(&txt), "-o", &s(&dir.join("x.fits"))]).status.code(), Some(1));
    let (pq_s, y) = (s(&pq), s(&dir.join("y.fits")));
    for image_only in [&["--compress", "plio"][..], &["--compress", "gzip", "--quantize-level", "4"]] {
        let mut args = vec!["write", &pq_s, "-o", &y];
        args.extend_from_slice(image_only);
        assert_eq!(torchfits(&args).status.code(), Some(1), "{image_only:?}");
    }
    assert!(!dir.join("x.fits").exists() && !dir.join("y.fits").exists());
}

/// Every file of the bad-input corpus (tests/bad/) through every command that reads a file:
/// exit status 0 or 1 (never a signal, a panic or a usage error), and an error line that names
/// the file. (The corpus's expected outcomes are checked through the API in tests/it/bad.rs.)
#[test]
fn every_command_takes_every_bad_file_cleanly() {
    let dir = repo().join("tests/bad");
    let out = tempdir("bad");
    let pixels = out.join("pix.npy");
    std::fs::write(&pixels, npy_f64(&[0.0, 0.0, 1.5, 2.5], &[2, 2])).expect("pixels");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/bad")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "make.py")
        .collect();
    names.sort();
    assert!(names.len() >= 30, "the corpus is there");
    let mut wrong = Vec::new();
    for name in &names {
        let file = dir.join(name).display().to_string();
        let npy = out.join("o.npy").display().to_string();
        let pq = out.join("o.parquet").display().to_string();
        let png = out.join("o.png").display().to_string();
        let pix = pixels.display().to_string();
        let runs: Vec<Vec<&str>> = vec![
            vec!["info", &file],
            vec!["info", &file, "--json"],
            vec!["header", &file],
            vec!["header", &file, "--hdu", "1", "--json"],
            vec!["read", &file, "-o", &npy],
            vec!["read", &file, "--hdu", "1", "-o", &npy],
            vec!["read", &file, "--hdu", "1", "-o", &pq],
            vec!["verify", &file],
            vec!["preview", &file, "-o", &png],
            vec!["wcs", "pix2world", &file, "--pixels", &pix, "-o", &npy],
        ];
        for args in runs {
            let o = torchfits(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            match o.status.code() {
                Some(0) => {}
                Some(1) if err.contains(name.as_str()) && !err.contains("panicked") => {}
                code => wrong.push(format!("{args:?}: exit {code:?}: {}", err.lines().next().unwrap_or(""))),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every HDU of a file of compressed images following one whose ZTILE1 is 0 (cfitsio divided by
/// zero in its header parsing when a handle was moved past it: SIGFPE): `read` and `preview` exit
/// 0, or 1 with a line naming the file and an HDU.
#[test]
fn read_and_preview_of_every_hdu_after_a_zero_tile_end_cleanly() {
    let file = repo().join("tests/bad/compressed_ztile_zero.fits").display().to_string();
    let out = tempdir("ztile");
    let (npy, png) = (out.join("o.npy").display().to_string(), out.join("o.png").display().to_string());
    let mut wrong = Vec::new();
    for hdu in 0..9 {
        let hdu = hdu.to_string();
        for args in [vec!["read", &file, "--hdu", &hdu, "-o", &npy], vec!["preview", &file, "--hdu", &hdu, "-o", &png]]
        {
            let o = torchfits(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            match o.status.code() {
                Some(0) => {}
                Some(1) if err.contains("compressed_ztile_zero.fits") && err.contains("HDU ") => {}
                code => wrong.push(format!("{args:?}: exit {code:?}: {}", err.lines().next().unwrap_or(""))),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A little-endian float64 .npy of `shape`.
fn npy_f64(values: &[f64], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut head = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({},), }}", dims.join(", "));
    while (10 + head.len() + 1) % 64 != 0 {
        head.push(' ');
    }
    head.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(head.len() as u16).to_le_bytes());
    out.extend_from_slice(head.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// `torchfits` with `RUST_LOG` set.
fn torchfits_logged(filter: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torchfits")).env("RUST_LOG", filter).args(args).output().expect("run torchfits")
}

#[test]
fn logs_are_quiet_by_default_and_say_what_the_library_did_when_asked() {
    let out = tempdir("logs");
    let npy = out.join("o.npy").display().to_string();
    let gz = out.join("sample.fits.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut e, &std::fs::read(repo().join("examples/data/sample.fits")).expect("sample"))
        .expect("deflate");
    std::fs::write(&gz, e.finish().expect("deflate")).expect("write");
    let gz = gz.display().to_string();
    let quiet = torchfits(&["read", &gz, "--hdu", "SCI", "-o", &npy]);
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", String::from_utf8_lossy(&quiet.stderr));
    let verbose = torchfits(&["-v", "read", &gz, "--hdu", "SCI", "-o", &npy]);
    let err = String::from_utf8_lossy(&verbose.stderr);
    assert!(verbose.status.success() && err.contains("a gzip file: inflated") && err.contains("open"), "{err}");
    let traced = torchfits_logged("torchfits=trace", &["read", &gz, "--hdu", "SCI", "-o", &npy]);
    let err = String::from_utf8_lossy(&traced.stderr);
    assert!(err.contains("read_image") && err.contains("time.busy"), "{err}");
}

#[cfg(feature = "gpu")]
#[test]
fn rust_log_shows_which_points_went_to_wcslib_on_the_device_path() {
    let out = tempdir("logs-wgpu");
    let pixels = out.join("pix.npy");
    let grid: Vec<f64> =
        (0..100).flat_map(|k| [f64::from(k % 10) * 20.0 - 50.0, f64::from(k / 10) * 20.0 - 50.0]).collect();
    std::fs::write(&pixels, npy_f64(&grid, &[100, 2])).expect("pixels");
    let (pix, npy) = (pixels.display().to_string(), out.join("w.npy").display().to_string());
    // the quad-cube: no kernel, every point to wcslib on the host
    let csc = repo().join("../shared/corpus/wcs/maps/1904-66_CSC.hdr").display().to_string();
    let args = ["wcs", "pix2world", "--header-file", &csc, "--pixels", &pix, "--device", "wgpu", "-o", &npy];
    let o = torchfits_logged("torchfits=debug", &args);
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("wgpu") {
        eprintln!("no wgpu device here ({err}): not checked");
        return;
    }
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("does not compute this WCS") && err.contains("100") && err.contains("wcslib on the host"),
        "{err}"
    );
    // without RUST_LOG, no line of torchfits' (the Vulkan loader may say things of its own)
    let o = torchfits(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !err.contains("DEBUG") && !err.contains("wcslib"), "{err}");
}

/// The directory nginx serves and its URL, when the tests run under scripts/remote_servers.py
/// (in CI they always do: a missing server fails the test).
fn http_server() -> Option<(PathBuf, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("TORCHFITS_TEST_HTTP_ROOT"), var("TORCHFITS_TEST_HTTP_URL")) {
        (Some(root), Some(url)) => Some((root.into(), url)),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the remote test servers are not running: run the tests through scripts/remote_servers.py")
        }
        _ => {
            eprintln!("remote CLI test skipped: no servers (run through scripts/remote_servers.py)");
            None
        }
    }
}

#[test]
fn info_header_read_and_preview_take_a_url_as_they_take_a_path() {
    let Some((root, url)) = http_server() else { return };
    let dir = root.join("cli");
    std::fs::create_dir_all(&dir).expect("the served directory");
    std::fs::copy(sample(), dir.join("sample.fits")).expect("serve sample.fits");
    let remote = format!("{url}/cli/sample.fits");
    let out = tempdir("remote");
    let (local_npy, remote_npy) = (out.join("local.npy"), out.join("remote.npy"));
    for (file, npy) in [(sample(), &local_npy), (remote.clone(), &remote_npy)] {
        let o = torchfits(&["read", &file, "--hdu", "SCI", "--section", "4:20,8:40", "-o", &npy.display().to_string()]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(&local_npy).expect("local"), std::fs::read(&remote_npy).expect("remote"));
    let header = |file: &str| stdout_json(&torchfits(&["header", file, "--hdu", "SCI", "--json"]));
    assert_eq!(header(&sample()), header(&remote));
    let hdus = |file: &str| stdout_json(&torchfits(&["info", file, "--json"]))["hdus"].clone();
    assert_eq!(hdus(&sample()), hdus(&remote));
    let png = out.join("remote.png").display().to_string();
    let o = torchfits(&["preview", &remote, "--hdu", "SCI", "-o", &png]);
    assert!(o.status.success() && std::fs::metadata(&png).is_ok(), "{}", String::from_utf8_lossy(&o.stderr));
    // a missing object: one line naming the URL, exit status 1
    let o = torchfits(&["info", &format!("{url}/cli/missing.fits")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("/cli/missing.fits") && err.contains("404") && err.lines().count() == 1, "{err}");
}

#[cfg(feature = "survey")]
#[test]
fn stamps_decodes_a_surveys_stamps_into_the_cache_a_stream_reads() {
    let dir = tempdir("stamps");
    let cache = dir.join("cache");
    let (s, c) = (sample(), cache.to_string_lossy().into_owned());
    let args = ["stamps", &s, "--catalog-hdu", "CATALOG", "--images", &s, "--hdu", "SCI", "--size", "8", "--cache", &c];
    let out = torchfits(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("2 stamps of 8x8 in ") && said.contains("1 of 1 shards cached"), "{said}");
    // one shard file of the two stamps' records, in the folder the line names
    let folder = PathBuf::from(said.trim_start_matches("2 stamps of 8x8 in ").split(" (").next().expect("a folder"));
    let shards: Vec<_> = std::fs::read_dir(&folder).expect("the cache folder").flatten().collect();
    assert_eq!(shards.len(), 1);
    let len = shards[0].metadata().expect("a shard file").len();
    assert!(len > 2 * 2 * 8 * 8 * 4, "{len} bytes for two stamps of a science and a flag plane");
    // a second run finds them there and says the same
    let again = torchfits(&args);
    assert_eq!(String::from_utf8_lossy(&again.stdout).split(" (").next(), said.split(" (").next());
    let none = torchfits(&["stamps", &s, "--cache", &c]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--images or --band"));
}

/// A table of 2000 rows (`mag` E, `id` J, `name` 8A) compressed by cfitsio's
/// `fits_compress_table` in tiles of 300 rows.
fn compressed_table(dir: &Path) -> PathBuf {
    use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
    let plain = dir.join("plain.fits");
    let packed = dir.join("packed.fits.fz");
    let names: Vec<String> = (0..2000).map(|i| format!("s{i}")).collect();
    let batch = TableBatch::new(vec![
        ColumnData::new("mag", ColumnValues::F32((0..2000).map(|i| 15.0 + (i % 100) as f32 / 10.0).collect())),
        ColumnData::new("id", ColumnValues::I32((0..2000).collect())),
        ColumnData::strings("name", &names),
    ])
    .expect("batch");
    let mut header = torchfits_core::Header::new();
    header.set("FZTILELN", 300, None).expect("set");
    let mut w = torchfits_core::WriteOptions::new().create(&plain).expect("create");
    w.write_table(&batch, "CATALOG", Some(&header)).expect("table");
    w.finish().expect("finish");
    let cin = std::ffi::CString::new(plain.to_str().expect("utf8")).expect("path");
    let cout = std::ffi::CString::new(format!("!{}", packed.display())).expect("path");
    let mut status = 0;
    // SAFETY: cfitsio's documented calls on the pointers it hands out, both closed here
    unsafe {
        let (mut fin, mut fout) = (std::ptr::null_mut(), std::ptr::null_mut());
        fitsio_sys::ffopen(&mut fin, cin.as_ptr(), 0, &mut status);
        fitsio_sys::ffinit(&mut fout, cout.as_ptr(), &mut status);
        fitsio_sys::ffcopy(fin, fout, 0, &mut status);
        let mut kind = 0;
        fitsio_sys::ffmahd(fin, 2, &mut kind, &mut status);
        fitsio_sys::fits_compress_table(fin, fout, &mut status);
        let mut close = 0;
        fitsio_sys::ffclos(fout, &mut close);
        fitsio_sys::ffclos(fin, &mut close);
    }
    assert_eq!(status, 0, "cfitsio compresses the table");
    packed
}

#[test]
fn a_compressed_table_shows_as_stored_and_reads_decompressed_when_asked() {
    let dir = tempdir("compressed-table");
    let packed = compressed_table(&dir);
    let file = packed.to_str().expect("utf8");
    let table = |v: serde_json::Value| v["hdus"][1].clone();
    // as astropy shows it: a row of compressed cells per tile
    let stored = table(stdout_json(&torchfits(&["info", file, "--json"])));
    assert_eq!((stored["nrows"].as_u64(), stored["compressed"].as_bool()), (Some(7), Some(false)));
    let held = table(stdout_json(&torchfits(&["info", file, "--json", "--decompress-tables"])));
    assert_eq!((held["nrows"].as_u64(), held["compressed"].as_bool()), (Some(2000), Some(true)));
    let header = stdout_json(&torchfits(&["header", file, "--hdu", "1", "--json", "--decompress-tables"]));
    let naxis2 = header["cards"].as_array().expect("cards").iter().find(|c| c["keyword"] == "NAXIS2").cloned();
    assert_eq!(naxis2.expect("NAXIS2")["value"].as_i64(), Some(2000));
    let out = dir.join("rows.parquet");
    let o = out.to_str().expect("utf8");
    let read = torchfits(&["read", file, "--hdu", "1", "--decompress-tables", "--where", "id >= 1990", "-o", o]);
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&out).expect("open")).expect("parquet");
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 10);
}
