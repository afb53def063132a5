//! Listing the objects under a prefix that match a pattern: a dataset's `glob` over a bucket.

use futures_util::StreamExt;
use torchfits_format::error::{Error, Result};

use super::{redact, runtime, scrub, store_for};
use crate::source::wildcard;

/// The most objects [`list`] returns: a listing that matches more is an error, so that a prefix
/// of millions of keys (or a server that pages without end) costs bounded memory and time.
pub const MAX_LISTED: usize = 1_000_000;

/// The URLs of the objects matching `pattern` (`*` and `?` in the last path segment only, as in
/// a local glob), in name order: the prefix before the segment is listed once, as a stream, and
/// only the matching names are kept. More than [`MAX_LISTED`] matches is an error.
///
/// ```no_run
/// let files = torchfits_core::remote::list("s3://survey/tiles/*.fits")?;
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn list(pattern: &str) -> Result<Vec<String>> {
    list_at_most(pattern, MAX_LISTED)
}

/// [`list`] with another bound than [`MAX_LISTED`] on the matches (and on ten times as many
/// keys listed in all).
pub fn list_at_most(pattern: &str, most: usize) -> Result<Vec<String>> {
    let shown = redact(pattern);
    let (dir, name) = pattern.rsplit_once('/').ok_or_else(|| Error::parameter(format!("{shown}: not a URL")))?;
    let parsed = url::Url::parse(dir).map_err(|e| Error::parameter(format!("{shown}: not a URL ({e})")))?;
    let root = parsed[..url::Position::BeforePath].to_string();
    let depth = parsed.path_segments().map_or(0, |s| s.filter(|s| !s.is_empty()).count());
    let (store, prefix) = store_for(&format!("{dir}/"))?;
    let name = name.to_string();
    let examined_most = most.saturating_mul(10);
    let listed = runtime::block_on(async move {
        let mut stream = store.list(Some(&prefix));
        let (mut urls, mut examined) = (Vec::new(), 0usize);
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| std::io::Error::other(scrub(&e.to_string())))?;
            examined += 1;
            let matches = meta.location.filename().is_some_and(|f| wildcard(name.as_bytes(), f.as_bytes()))
                && meta.location.parts().count() == depth + 1;
            if matches {
                urls.push(format!("{root}/{}", meta.location));
            }
            if urls.len() > most || examined > examined_most {
                return Ok(Err(Error::limits(format!(
                    "{shown}: more than {most} objects match (or more than {examined_most} are listed): narrow the pattern"
                ))));
            }
        }
        Ok::<_, std::io::Error>(Ok(urls))
    })
    .map_err(|e| Error::io(e, "cannot list"))?
    .map_err(|e| Error::io(e, &format!("cannot list {}", redact(dir))))?;
    let mut urls = listed?;
    urls.sort();
    Ok(urls)
}
