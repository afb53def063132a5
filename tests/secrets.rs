//! Credentials planted in URLs (`user:password@` and a signed query string) appear in no error,
//! no path and no log line of any remote read, fault or not: every log line of the process is
//! kept (TRACE, every crate's, object_store's retries included) and searched.

#[path = "it/range_server.rs"]
mod range_server;

use std::io::Write;
use std::sync::{Arc, Mutex};

use range_server::{Fault, RangeServer};
use torchfits::{FitsFile, OpenOptions, Section};

/// Everything the process logs.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("the log").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PASSWORD: &str = "PLANTED-PASSWORD";
const SIGNATURE: &str = "PLANTED-SIGNATURE";
const USER: &str = "PLANTED-USER";
/// `Basic` and base64 of `PLANTED-USER:PLANTED-PASSWORD`.
const BASIC: &str = "Basic UExBTlRFRC1VU0VSOlBMQU5URUQtUEFTU1dPUkQ=";

/// A 64 x 64 float image.
fn image() -> Vec<u8> {
    let card = |s: &str| format!("{s:<80}");
    let mut bytes: Vec<u8> = [
        "SIMPLE  =                    T",
        "BITPIX  =                  -32",
        "NAXIS   =                    2",
        "NAXIS1  =                   64",
        "NAXIS2  =                   64",
        "END",
    ]
    .iter()
    .flat_map(|c| card(c).into_bytes())
    .collect();
    bytes.resize(2880, b' ');
    bytes.extend((0..64 * 64).flat_map(|k| (k as f32).to_be_bytes()));
    bytes.resize(bytes.len().div_ceil(2880) * 2880, 0);
    bytes
}

/// What every read of the object at `url` says: each error, and each path shown.
fn everything_said(url: &str) -> Vec<String> {
    let mut said = Vec::new();
    let mut note = |r: torchfits::Result<String>| said.push(r.unwrap_or_else(|e| format!("{e} / {e:?}")));
    note(OpenOptions::new().open_url(url).map(|f| f.path().display().to_string()));
    note(OpenOptions::new().urls(true).open(url).map(|f| format!("{:?}", f.source_id())));
    note(FitsFile::open_url(url).and_then(|f| f.header(0)).map(|h| h.len().to_string()));
    note(
        FitsFile::open_url(url)
            .and_then(|f| f.image(0)?.read_section::<f32>(&Section::new(vec![3..40, 5..60])))
            .map(|v| v.len().to_string()),
    );
    note(FitsFile::open_url(url).and_then(|f| f.hdus()).map(|h| h.len().to_string()));
    note(torchfits::remote::open_object(url).map(|o| format!("{o:?}")));
    note(torchfits::glob(&url.replace("object.fits", "obj*.fits")).map(|v| format!("{v:?}")));
    said
}

#[test]
fn planted_secrets_appear_in_no_error_path_or_log_line() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
    let bytes = image();
    let faults = [
        Fault::None,
        Fault::Drop { after: 0, times: 2 },
        Fault::Status500 { after: 0, times: usize::MAX },
        Fault::Truncate { after: 0, times: usize::MAX },
        Fault::Replace { after: 0, if_match: true },
        Fault::LongBody { after: 0 },
        Fault::Endless { after: 0 },
    ];
    let mut said = Vec::new();
    for fault in faults {
        torchfits::remote::clear_cache();
        let server = RangeServer::start(bytes.clone(), image(), fault);
        let url = server.object_url().replace("http://", &format!("http://{USER}:{PASSWORD}@"))
            + &format!("?X-Amz-Signature={SIGNATURE}&X-Amz-Credential={USER}");
        said.extend(everything_said(&url).into_iter().map(|s| format!("{fault:?}: {s}")));
        assert!(server.requests() > 0 && server.bytes() > 0, "{fault:?}: the server was asked");
        // the credentials reached the server, as a Basic Authorization header
        assert_eq!(server.authorization().as_deref(), Some(BASIC), "{fault:?}");
    }
    // the reads happened: something was read, something failed, and the log has lines
    assert!(said.iter().any(|s| s.starts_with("None") && s.ends_with("2035")), "{said:#?}");
    assert!(said.iter().any(|s| s.contains("500")), "{said:#?}");
    let log = String::from_utf8_lossy(&lines.0.lock().expect("the log")).into_owned();
    assert!(log.lines().count() > 10, "{log}");
    for secret in [PASSWORD, SIGNATURE, USER] {
        let leaks: Vec<&String> = said.iter().filter(|s| s.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} in {leaks:#?}");
        let logged: Vec<&str> = log.lines().filter(|l| l.contains(secret)).collect();
        assert!(logged.is_empty(), "{secret} logged: {logged:#?}");
    }
}
