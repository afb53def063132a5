//! Files whose headers and descriptors claim more bytes than they hold (tests/bad/claim_*: a few
//! kB claiming 4 GB or 1 TiB of tiles, heaps and rows): `torchfits read` exits 1 with one line
//! naming the file, the HDU and the cause, under a 2 GiB address-space limit, and no command's
//! peak memory reaches 64 MiB. `info` lists the headers (they are whole, as astropy lists them)
//! and warns about what the file lacks. Its own binary, so that the peak memory of its children is
//! the commands' alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// 2 GiB of address space, in ulimit's KiB.
const ADDRESS_SPACE_KIB: u64 = 2 << 20;
/// The most resident memory a command may reach on one of these files.
const PEAK_RSS_BYTES: u64 = 64 << 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `torchfits args` under the address-space limit.
fn limited(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_torchfits"))
        .args(args)
        .output()
        .expect("run torchfits")
}

/// The largest resident set of any child this process has waited for, in bytes.
fn peak_rss_of_children() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `rusage` into the pointer it is given, which is valid for it.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: getrusage succeeded, so it filled the struct (and zeroed memory is a valid rusage).
    let usage = unsafe { usage.assume_init() };
    (usage.ru_maxrss.max(0) as u64) * 1024
}

#[test]
fn files_that_claim_more_than_they_hold_fail_cleanly_in_bounded_memory() {
    let dir = repo().join("tests/bad");
    let out = std::env::temp_dir().join(format!("torchfits-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("a scratch directory");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/bad")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("claim_"))
        .collect();
    names.sort();
    assert!(names.len() >= 13, "the crafted files are there: {names:?}");
    let mut wrong = Vec::new();
    for name in &names {
        let file = dir.join(name).display().to_string();
        let target = out.join(if name.contains("table") { "o.parquet" } else { "o.npy" }).display().to_string();
        let o = limited(&["read", &file, "--hdu", "1", "-o", &target]);
        let err = String::from_utf8_lossy(&o.stderr);
        let line = err.lines().next().unwrap_or("");
        let causes = ["truncated", "limit", "outside", "claims", "holds", "more than"];
        if o.status.code() != Some(1) || !line.contains(name.as_str()) || !line.contains("HDU 1") {
            wrong.push(format!("read {name}: exit {:?}: {line}", o.status.code()));
        } else if !causes.iter().any(|c| line.contains(c)) {
            wrong.push(format!("read {name}: no cause: {line}"));
        }
        let o = limited(&["info", &file]);
        let err = String::from_utf8_lossy(&o.stderr);
        match o.status.code() {
            Some(0) if err.contains(name.as_str()) && err.contains("HDU 1") && err.contains("truncated") => {}
            Some(1) if err.contains(name.as_str()) && err.contains("HDU 1") => {}
            code => wrong.push(format!("info {name}: exit {code:?}: {}", err.lines().next().unwrap_or(""))),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let peak = peak_rss_of_children();
    assert!(peak > 0 && peak < PEAK_RSS_BYTES, "a command reached {peak} bytes resident");
    std::fs::remove_dir_all(&out).ok();
}
