//! The plan's items grouped by image: a stream reads a survey one image at a time (one prefetch
//! of all its stamps), so the plan numbers its items image by image, by the image each item's
//! stamps start from (its first band that has the position), in catalog order within an image.
//! The order depends on the inputs alone, never on the catalog's batch sizes.
//!
//! A distribution sort with bounded memory: as items are placed, each batch is split by ranges
//! of images into a few temporary files (a range holds about [`ITEMS_PER_RANGE`] items when the
//! catalog is spread over the images); then each range's file is read back, its items put in
//! image order (a stable counting sort) and appended to the plan. Memory holds one range, not
//! the plan.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use torchfits_core::{Error, ErrorKind, Result};

use super::store::{PlanBytes, PlanFile, PlanWriter};

/// Items of a range of images, for a catalog spread evenly over them.
const ITEMS_PER_RANGE: u64 = 1 << 22;
/// Rows of each batch of the grouped plan.
const BLOCK: usize = 1 << 16;

/// Where each band's files start when the files are numbered band after band, from the number
/// of files of each band.
pub(crate) fn first_images(files: impl Iterator<Item = usize>) -> Vec<usize> {
    files.scan(0, |at, n| Some(std::mem::replace(at, *at + n))).collect()
}

/// The image item `row` of `batch` starts from, numbered band after band (`first_image[b]` is
/// where band `b`'s files start): its first band with an image (`-1` in a band's image column
/// where the band lacks the position). None for an item no band has.
pub(crate) fn first_image(batch: &RecordBatch, row: usize, first_image: &[usize]) -> Option<usize> {
    first_image.iter().enumerate().find_map(|(b, &first)| {
        let image = batch.column(1 + 3 * b).as_primitive_opt::<Int32Type>()?.value(row);
        usize::try_from(image).ok().map(|i| first + i)
    })
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Parameter, format!("cannot group the plan by image ({what}): {e}"))
}

/// Writes a plan's batches (in catalog order) to the plan file at `path`, grouped by image.
pub(crate) struct GroupingWriter {
    path: PathBuf,
    first: Vec<usize>,
    /// Images of every band; an item on none sorts after them all.
    images: usize,
    /// Images per range (the last range also holds the items on no image).
    per_range: usize,
    ranges: Vec<Option<PlanWriter>>,
    schema: Option<SchemaRef>,
}

impl GroupingWriter {
    /// A writer of the plan at `path` of a catalog of about `rows` rows, on files numbered
    /// `first` (where each band's start) of `images` images in all.
    pub(crate) fn new(path: &Path, first: Vec<usize>, images: usize, rows: u64) -> GroupingWriter {
        Self::with_ranges_of(path, first, images, rows, ITEMS_PER_RANGE)
    }

    /// [`GroupingWriter::new`] with ranges of about `per_range` items.
    fn with_ranges_of(path: &Path, first: Vec<usize>, images: usize, rows: u64, per_range: u64) -> GroupingWriter {
        let count = rows.div_ceil(per_range.max(1)).clamp(1, images.max(1) as u64) as usize;
        let per_range = (images + 1).div_ceil(count);
        let ranges = (0..(images + 1).div_ceil(per_range)).map(|_| None).collect();
        GroupingWriter { path: path.to_path_buf(), first, images, per_range, ranges, schema: None }
    }

    /// The temporary file of range `r` (named by this process: no other writes it).
    fn range_path(&self, r: usize) -> PathBuf {
        self.path.with_extension(format!("{}-{r}.range", std::process::id()))
    }

    fn key(&self, batch: &RecordBatch, row: usize) -> usize {
        first_image(batch, row, &self.first).unwrap_or(self.images)
    }

    /// Splits `batch` by ranges of images into their files.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.schema.get_or_insert_with(|| batch.schema());
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.ranges.len()];
        for r in 0..batch.num_rows() {
            let range = (self.key(batch, r) / self.per_range).min(self.ranges.len() - 1);
            rows[range].push(r as u32);
        }
        for (range, rows) in rows.into_iter().enumerate().filter(|(_, rows)| !rows.is_empty()) {
            let part = arrow_select::take::take_record_batch(batch, &UInt32Array::from(rows))
                .map_err(|e| failed("splitting a batch", e))?;
            if self.ranges[range].is_none() {
                self.ranges[range] = Some(PlanWriter::create(&self.range_path(range), &batch.schema())?);
            }
            if let Some(writer) = &mut self.ranges[range] {
                writer.write(&part)?;
            }
        }
        Ok(())
    }

    /// Puts each range's items in image order into the plan file, with `metadata`; `empty` is
    /// the schema of a plan without items.
    pub(crate) fn finish(mut self, metadata: &[(&str, String)], empty: SchemaRef) -> Result<()> {
        let mut plan = PlanWriter::create(&self.path, self.schema.as_ref().unwrap_or(&empty))?;
        for r in 0..self.ranges.len() {
            let Some(writer) = self.ranges[r].take() else { continue };
            writer.finish(&[])?;
            let path = self.range_path(r);
            self.append_in_order(&path, r * self.per_range, &mut plan)?;
            std::fs::remove_file(&path).map_err(|e| {
                Error::new(ErrorKind::Io, format!("cannot remove a temporary part of the plan: {e}")).in_file(&path)
            })?;
        }
        plan.finish(metadata)
    }

    /// The items of the range file at `path` (images from `first_key`), in image order (stable),
    /// appended to `plan`.
    fn append_in_order(&self, path: &Path, first_key: usize, plan: &mut PlanWriter) -> Result<()> {
        let file = PlanFile::open(path, PlanBytes::Read)?;
        let total = file.starts.last().copied().unwrap_or(0);
        // where each image's items start in the range, then each item's place
        let mut next = vec![0usize; self.per_range + 2];
        let slot = |b: &RecordBatch, r: usize| self.key(b, r).saturating_sub(first_key).min(self.per_range);
        for batch in &file.batches {
            for r in 0..batch.num_rows() {
                next[slot(batch, r) + 1] += 1;
            }
        }
        for k in 1..next.len() {
            next[k] += next[k - 1];
        }
        let mut order = vec![(0usize, 0usize); total];
        for (b, batch) in file.batches.iter().enumerate() {
            for r in 0..batch.num_rows() {
                let at = &mut next[slot(batch, r)];
                order[*at] = (b, r);
                *at += 1;
            }
        }
        let batches: Vec<&RecordBatch> = file.batches.iter().collect();
        for block in order.chunks(BLOCK) {
            let grouped = arrow_select::interleave::interleave_record_batch(&batches, block)
                .map_err(|e| failed("ordering a range", e))?;
            plan.write(&grouped)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Int32Array, UInt64Array};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn items_come_out_image_by_image_in_catalog_order_across_ranges_and_batches() {
        let dir = std::env::temp_dir().join(format!("torchfits-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("t.plan.arrow");
        let schema = Arc::new(Schema::new(vec![
            Field::new("row", DataType::UInt64, false),
            Field::new("image", DataType::Int32, false),
            Field::new("x", DataType::Float32, false),
            Field::new("y", DataType::Float32, false),
        ]));
        // 60 rows on 7 images (-1: on none), in batches of 11, into ranges of about 8 items
        let image = |row: u64| if row % 13 == 5 { -1 } else { ((row * 5) % 7) as i32 };
        let mut w = GroupingWriter::with_ranges_of(&path, vec![0], 7, 60, 8);
        assert!(w.ranges.len() > 2, "{} ranges", w.ranges.len());
        for start in (0..60u64).step_by(11) {
            let rows: Vec<u64> = (start..(start + 11).min(60)).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(UInt64Array::from(rows.clone())),
                    Arc::new(Int32Array::from(rows.iter().map(|&r| image(r)).collect::<Vec<_>>())),
                    Arc::new(Float32Array::from(vec![0.0; rows.len()])),
                    Arc::new(Float32Array::from(vec![0.0; rows.len()])),
                ],
            )
            .expect("batch");
            w.write(&batch).expect("write");
        }
        w.finish(&[], schema.clone()).expect("finish");
        let plan = PlanFile::open(&path, PlanBytes::Read).expect("the plan");
        let got: Vec<u64> = plan
            .batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<arrow_array::types::UInt64Type>().values().to_vec())
            .collect();
        let mut want: Vec<u64> = (0..60).collect();
        want.sort_by_key(|&r| if image(r) < 0 { 7 } else { image(r) as usize });
        assert_eq!(got, want);
        let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 1, "only the plan is left: {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
