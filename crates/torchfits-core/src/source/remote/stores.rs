//! The stores that URLs name: S3, GCS, Azure and HTTP clients made from the environment (and an
//! HTTP URL's credentials), one per bucket or host, shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreScheme, RetryConfig};
use torchfits_format::error::{Error, Result};

use super::{redact, scrub};

/// The store serving `url` and the object's path in it. Stores are made once per bucket (or
/// host, and credentials) and shared, so that files of one bucket share a connection pool;
/// credentials come from the environment as `object_store` reads them (`AWS_*`, `GOOGLE_*`,
/// `AZURE_*`), or for HTTP from the URL's `user:password@`, sent as a Basic `Authorization`
/// header marked sensitive: the store's own URL (which its HTTP client logs) never holds them.
pub(crate) fn store_for(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let mut parsed = url::Url::parse(url).map_err(|e| Error::parameter(format!("not a URL ({e})")))?;
    let (scheme, path) =
        ObjectStoreScheme::parse(&parsed).map_err(|e| Error::parameter(format!("not an object store URL ({e})")))?;
    let user = percent_decoded(parsed.username());
    let password = parsed.password().map(percent_decoded);
    let credentials =
        (!user.is_empty() || password.is_some()).then(|| format!("{user}:{}", password.unwrap_or_default()));
    if credentials.is_some() && scheme != ObjectStoreScheme::Http {
        return Err(Error::parameter(
            "credentials in the URL of a bucket are not used: give them in the environment (AWS_*, GOOGLE_*, AZURE_*)",
        ));
    }
    // a URL whose user and password cannot be cleared has none to hide
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    let root = parsed[..url::Position::BeforePath].to_string();
    // the key of the store: its root and its credentials (kept in this map only)
    let key = format!("{root}\n{}", credentials.as_deref().unwrap_or(""));
    static STORES: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let stores = STORES.get_or_init(Mutex::default);
    if let Some(store) = stores.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return Ok((Arc::clone(store), path));
    }
    let store = build_store(&scheme, &root, credentials.as_deref())?;
    stores.lock().unwrap_or_else(PoisonError::into_inner).insert(key, Arc::clone(&store));
    Ok((store, path))
}

/// `text` with its `%XX` escapes decoded (a URL's user and password are escaped in it).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                at += 3;
            }
            _ => {
                out.push(b);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 4648 base64 of `bytes` (a Basic credential).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for k in 0..4 {
            let symbol = ALPHABET.get((n >> (18 - 6 * k) & 63) as usize).copied().unwrap_or(b'=');
            out.push(if k <= chunk.len() { char::from(symbol) } else { '=' });
        }
    }
    out
}

/// HTTP client options: plain `http://` allowed (local servers, tests), and `credentials`
/// (`user:password`) as a Basic `Authorization` header that logs never show.
fn http_options(credentials: Option<&str>) -> Result<ClientOptions> {
    let options = ClientOptions::new().with_allow_http(true);
    let Some(credentials) = credentials else { return Ok(options) };
    let mut value = object_store::HeaderValue::from_str(&format!("Basic {}", base64(credentials.as_bytes())))
        .map_err(|_| Error::parameter("the URL's user or password cannot be sent in a header"))?;
    value.set_sensitive(true);
    let mut headers = object_store::HeaderMap::new();
    headers.insert("authorization", value);
    Ok(options.with_default_headers(headers))
}

/// Retries on 5xx answers, timeouts and dropped connections: up to 5, backing off from 50 ms to
/// 2 s, for at most 30 s in all.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(30),
    }
}

/// A store for the bucket or host at `root` (`s3://bucket`, `https://host:port`), with HTTP's
/// `credentials` (`user:password`).
fn build_store(scheme: &ObjectStoreScheme, root: &str, credentials: Option<&str>) -> Result<Arc<dyn ObjectStore>> {
    let err =
        |e: object_store::Error| Error::parameter(scrub(&format!("cannot make a store for {}: {e}", redact(root))));
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(root)
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(root)
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(root)
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
        ObjectStoreScheme::Http => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(root)
                .with_client_options(http_options(credentials)?)
                .with_retry(retry_config())
                .build()
                .map_err(err)?,
        ),
        _ => return Err(Error::unsupported(format!("{}: not an object store this crate reads from", redact(root)))),
    };
    Ok(store)
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_encoded_as_rfc_4648_says() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"Aladdin:open sesame"), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(super::percent_decoded("p%40ss%3Aw%zz"), "p@ss:w%zz");
    }
}
