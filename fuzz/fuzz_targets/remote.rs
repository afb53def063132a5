//! The remote byte source against a store whose every answer is fuzzed: the object's bytes and,
//! for each request in turn, what the "server" says (honest; an error; not found; a precondition
//! failure; or a lie about the range, the object's size, its version, or a body longer or shorter
//! than the range, in chunks of any size). The file is then read every way. Whatever the answers,
//! a read is the object's bytes or an error naming it: never a panic, a hang or an allocation of
//! what a lie claims.
#![no_main]

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use libfuzzer_sys::fuzz_target;
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, Extensions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// One answer, from 8 bytes of the input.
#[derive(Debug, Clone, Copy)]
struct Answer([u8; 8]);

/// A store serving one object, answering each request as the next scripted answer says (honestly
/// once the script runs out).
struct Scripted {
    object: Bytes,
    answers: Vec<Answer>,
    next: Mutex<usize>,
}

impl fmt::Debug for Scripted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scripted({} bytes, {} answers)", self.object.len(), self.answers.len())
    }
}

impl fmt::Display for Scripted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

fn refused(what: &str) -> object_store::Error {
    object_store::Error::NotImplemented { operation: what.to_string(), implementer: "the fuzz store".to_string() }
}

impl Scripted {
    fn answer(&self, location: &Path, options: &GetOptions) -> object_store::Result<GetResult> {
        let answer = {
            let mut next = self.next.lock().expect("the script's lock");
            *next += 1;
            self.answers.get(*next - 1).copied()
        };
        let len = self.object.len() as u64;
        let asked = match &options.range {
            Some(GetRange::Bounded(r)) => r.start.min(len)..r.end.min(len),
            _ => 0..len,
        };
        let Some(Answer([kind, a, b, c, d, e, chunk, etag])) = answer else {
            return Ok(self.result(location, len, asked.clone(), self.object.slice(asked.start as usize..asked.end as usize), 16 << 10, 0));
        };
        let body = |r: &Range<u64>| self.object.slice(r.start.min(len) as usize..r.end.min(len) as usize);
        let chunk = (usize::from(chunk) + 1) * 97;
        match kind % 10 {
            0..=3 => Ok(self.result(location, len, asked.clone(), body(&asked), chunk, etag % 2)),
            4 => Err(object_store::Error::Generic { store: "fuzz", source: "500 Internal Server Error".into() }),
            5 => Err(object_store::Error::NotFound { path: location.to_string(), source: "404".into() }),
            6 => Err(object_store::Error::Precondition { path: location.to_string(), source: "412".into() }),
            // a size far from the truth (up to 2^63), with the bytes of the range
            7 => {
                let claimed = u64::from_le_bytes([a, b, c, d, e, 0, 0, 0]) << (a % 24);
                Ok(self.result(location, claimed, asked.clone(), body(&asked), chunk, etag))
            }
            // another range than asked, its bytes
            8 => {
                let start = asked.start.saturating_add(u64::from(a)).saturating_sub(u64::from(b));
                let got = start..start.saturating_add(u64::from(u16::from_le_bytes([c, d])));
                Ok(self.result(location, len, got.clone(), body(&got), chunk, etag % 2))
            }
            // the range asked for with a body shorter or longer (junk after the object's bytes)
            _ => {
                let mut bytes = body(&asked).to_vec();
                if a % 2 == 0 {
                    bytes.truncate(usize::from(u16::from_le_bytes([b, c])));
                } else {
                    bytes.extend(std::iter::repeat_n(e, usize::from(u16::from_le_bytes([b, c])) * usize::from(d % 64 + 1)));
                }
                Ok(self.result(location, len, asked.clone(), Bytes::from(bytes), chunk, etag % 2))
            }
        }
    }

    /// An answer of `body` for `range` of an object of `size` bytes at version `etag`, its body
    /// in chunks of `chunk` bytes.
    fn result(&self, location: &Path, size: u64, range: Range<u64>, body: Bytes, chunk: usize, etag: u8) -> GetResult {
        let chunks: Vec<object_store::Result<Bytes>> =
            (0..body.len()).step_by(chunk.max(1)).map(|at| Ok(body.slice(at..(at + chunk).min(body.len())))).collect();
        GetResult {
            payload: GetResultPayload::Stream(stream::iter(chunks).boxed()),
            meta: ObjectMeta {
                location: location.clone(),
                last_modified: chrono::DateTime::from_timestamp(1_765_000_000 + i64::from(etag), 0).unwrap_or_default(),
                size,
                e_tag: Some(format!("\"v{etag}\"")),
                version: None,
            },
            range,
            attributes: Attributes::default(),
            extensions: Extensions::default(),
        }
    }
}

#[async_trait]
impl ObjectStore for Scripted {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> object_store::Result<PutResult> {
        Err(refused("put"))
    }

    async fn put_multipart_opts(&self, _: &Path, _: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(refused("put_multipart"))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.answer(location, &options)
    }

    fn delete_stream(&self, _: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        stream::iter([Err(refused("delete"))]).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        stream::iter([Err(refused("list"))]).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> object_store::Result<ListResult> {
        Err(refused("list"))
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(refused("copy"))
    }
}

fuzz_target!(|data: &[u8]| {
    // the first byte: how many answers are scripted (8 bytes each); the rest is the object
    let Some((&n, rest)) = data.split_first() else { return };
    let script_len = (usize::from(n) * 8).min(rest.len());
    let (script, object) = rest.split_at(script_len);
    let answers = script.chunks_exact(8).map(|c| Answer(c.try_into().expect("8 bytes"))).collect();
    let store = Arc::new(Scripted { object: Bytes::copy_from_slice(object), answers, next: Mutex::new(0) });
    // every object is new to the shared block cache (its key is the name and the version)
    torchfits_core::remote::clear_cache();
    let name = "https://fuzz.invalid/object.fits";
    let file = torchfits_core::OpenOptions::new().limits(torchfits_fuzz::limits()).open_store(name, store, Path::from("object.fits"));
    match file {
        Ok(file) => torchfits_fuzz::read_file_everything(&file, "object.fits"),
        Err(e) => assert!(e.to_string().contains("object.fits"), "the error does not name the object: {e}"),
    }
});
