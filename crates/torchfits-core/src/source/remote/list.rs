//! Listing the objects under a prefix that match a pattern: a dataset's `glob` over a bucket.

use futures_util::TryStreamExt;
use torchfits_format::error::{Error, Result};

use super::{redact, runtime, store_for};
use crate::source::wildcard;

/// The URLs of the objects matching `pattern` (`*` and `?` in the last path segment only, as in
/// a local glob), in name order: the prefix before the segment is listed once.
///
/// ```no_run
/// let files = torchfits_core::remote::list("s3://survey/tiles/*.fits")?;
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn list(pattern: &str) -> Result<Vec<String>> {
    let shown = redact(pattern);
    let (dir, name) = pattern.rsplit_once('/').ok_or_else(|| Error::parameter(format!("{shown}: not a URL")))?;
    let (store, prefix) = store_for(&format!("{dir}/"))?;
    let listed = runtime::block_on(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })
        .map_err(|e| Error::io(e, "cannot list"))?
        .map_err(|e| Error::io(std::io::Error::other(e.to_string()), &format!("cannot list {}", redact(dir))))?;
    let parsed = url::Url::parse(dir).map_err(|e| Error::parameter(format!("{shown}: not a URL ({e})")))?;
    let root = &parsed[..url::Position::BeforePath];
    let depth = parsed.path_segments().map_or(0, |s| s.filter(|s| !s.is_empty()).count());
    let mut urls: Vec<String> = listed
        .into_iter()
        .filter(|meta| meta.location.filename().is_some_and(|f| wildcard(name.as_bytes(), f.as_bytes())))
        .filter(|meta| meta.location.parts().count() == depth + 1)
        .map(|meta| format!("{root}/{}", meta.location))
        .collect();
    urls.sort();
    Ok(urls)
}
