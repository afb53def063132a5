//! The plan on disk: an Arrow IPC file written batch by batch as the plan is made (to a
//! temporary name, renamed when complete), and read back whole into memory, or memory-mapped
//! where the caller takes on the map's contract ([`SurveyPlanner::map_plan`]), its batches
//! decoded in place (zero-copy). The map is this crate's one `unsafe` outside `kernels`.

// Indexing: the trailer and the footer are cut at offsets checked against the map's length,
// and `starts` is never empty.
#![allow(clippy::indexing_slicing)]

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::convert::try_fb_to_schema;
use arrow_ipc::reader::{FileDecoder, read_footer_length};
use arrow_ipc::root_as_footer;
use arrow_ipc::writer::FileWriter;
use arrow_schema::SchemaRef;
use torchfits_core::{Error, ErrorKind, Limits, Result};

use super::SurveyPlanner;

/// How a plan file is read back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum PlanBytes {
    /// Read whole into memory: nothing another process does to the file can reach the plan.
    #[default]
    Read,
    /// Memory-mapped: only the pages read become resident (see [`SurveyPlanner::map_plan`]).
    Mapped,
}

impl SurveyPlanner {
    /// Memory-maps the plan file instead of reading it into memory (the default): a plan of
    /// 10^8 items is 2.7 GB, and mapped only the pages its items touch become resident, and
    /// opening it from the cache costs no read.
    ///
    /// # Safety
    ///
    /// While the plan (or a dataset made from it) lives, no process may truncate or write its
    /// file in the plan cache (a read of a lost page raises SIGBUS; a write changes the plan
    /// under its readers). The planner itself only ever writes a new file and renames it into
    /// place, which leaves a mapped plan whole: the contract is about other programs and people.
    #[allow(unsafe_code, reason = "an opt-in whose contract the caller takes on")]
    pub unsafe fn map_plan(mut self) -> Self {
        self.plan_bytes = PlanBytes::Mapped;
        self
    }
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("{what}: {e}")).in_file(path)
}

/// Writes a plan file.
pub(crate) struct PlanWriter {
    writer: FileWriter<BufWriter<File>>,
    partial: PathBuf,
    path: PathBuf,
}

impl PlanWriter {
    /// A plan file at `path` (written as `path` + `.partial` until [`PlanWriter::finish`]).
    pub(crate) fn create(path: &Path, schema: &SchemaRef) -> Result<PlanWriter> {
        let partial = path.with_extension("partial");
        let file = File::create(&partial).map_err(|e| io(&partial, "cannot create the plan", e))?;
        let writer = FileWriter::try_new(BufWriter::with_capacity(1 << 22, file), schema)
            .map_err(|e| io(&partial, "cannot write the plan", e))?;
        Ok(PlanWriter { writer, partial, path: path.to_path_buf() })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| io(&self.partial, "cannot write the plan", e))
    }

    /// Writes the footer with `metadata` and gives the file its name.
    pub(crate) fn finish(mut self, metadata: &[(&str, String)]) -> Result<()> {
        for (k, v) in metadata {
            self.writer.write_metadata(*k, v.clone());
        }
        self.writer.finish().map_err(|e| io(&self.partial, "cannot finish the plan", e))?;
        let file = self.writer.into_inner().map_err(|e| io(&self.partial, "cannot finish the plan", e))?;
        file.into_inner()
            .map_err(|e| io(&self.partial, "cannot finish the plan", e.error()))?
            .sync_all()
            .map_err(|e| io(&self.partial, "cannot finish the plan", e))?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| io(&self.path, "cannot name the plan", e))
    }
}

/// A plan file, memory-mapped: its record batches (their buffers point into the map) and its
/// footer's metadata.
#[derive(Debug)]
pub(crate) struct PlanFile {
    pub(crate) path: PathBuf,
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
    /// The first item of each batch, and the total at the end.
    pub(crate) starts: Vec<usize>,
    pub(crate) metadata: HashMap<String, String>,
}

impl PlanFile {
    /// Reads (or maps) and decodes the plan file at `path`.
    pub(crate) fn open(path: &Path, bytes: PlanBytes) -> Result<PlanFile> {
        let bad = |what: &str| Error::new(ErrorKind::Decoding, format!("not a plan file: {what}")).in_file(path);
        let buffer = match bytes {
            PlanBytes::Read => torchfits_core::table::arrow::read_file(path, &Limits::default())?,
            // SAFETY: the caller of `SurveyPlanner::map_plan` took on that no process truncates
            // or writes the plan file while the plan lives; the planner only renames new files
            // into place.
            #[allow(unsafe_code, reason = "the map's contract is the caller's (SurveyPlanner::map_plan)")]
            PlanBytes::Mapped => unsafe { torchfits_core::table::arrow::map_file(path)? },
        };
        let len = buffer.len();
        if len < 10 {
            return Err(bad("too short"));
        }
        let trailer: [u8; 10] = buffer[len - 10..].try_into().map_err(|_| bad("no trailer"))?;
        let footer_len = read_footer_length(trailer).map_err(|_| bad("no footer"))?;
        let footer_start = (len - 10).checked_sub(footer_len).ok_or_else(|| bad("a footer longer than the file"))?;
        let footer = root_as_footer(&buffer[footer_start..len - 10]).map_err(|_| bad("an unreadable footer"))?;
        let schema = Arc::new(
            try_fb_to_schema(footer.schema().ok_or_else(|| bad("no schema"))?)
                .map_err(|_| bad("an unreadable schema"))?,
        );
        let mut metadata = HashMap::new();
        for kv in footer.custom_metadata().into_iter().flatten() {
            if let (Some(k), Some(v)) = (kv.key(), kv.value()) {
                metadata.insert(k.to_string(), v.to_string());
            }
        }
        let decoder = FileDecoder::new(schema.clone(), footer.version());
        let mut batches = Vec::new();
        let mut starts = vec![0usize];
        for block in footer.recordBatches().into_iter().flatten() {
            let block_len = block.bodyLength() as usize + block.metaDataLength() as usize;
            let offset = block.offset() as usize;
            if offset.checked_add(block_len).is_none_or(|end| end > footer_start) {
                return Err(bad("a batch outside the file"));
            }
            let data = buffer.slice_with_length(offset, block_len);
            let batch = decoder
                .read_record_batch(block, &data)
                .map_err(|e| io(path, "cannot read the plan", e))?
                .ok_or_else(|| bad("an empty batch block"))?;
            starts.push(starts[starts.len() - 1] + batch.num_rows());
            batches.push(batch);
        }
        Ok(PlanFile { path: path.to_path_buf(), schema, batches, starts, metadata })
    }
}
