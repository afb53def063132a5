//! The plan's items grouped by image: a stream reads a survey one image at a time (one prefetch
//! of all its stamps), so the plan numbers its items image by image. The placed items are
//! written in catalog order first, then reordered by a stable counting sort on the image each
//! item's stamps start from (its first band that has the position), so that the order depends
//! on the inputs alone, never on the catalog's batch sizes.

use std::path::Path;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use torchfits_core::{Error, ErrorKind, Result};

use super::store::{PlanBytes, PlanFile, PlanWriter};

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

/// Writes the items of the plan file at `placed` (in catalog order) to a plan file at `path`,
/// grouped by image (stable: catalog order within an image), with `metadata`.
pub(crate) fn write_grouped(
    placed: &Path,
    path: &Path,
    first: &[usize],
    images: usize,
    metadata: &[(&str, String)],
) -> Result<()> {
    let file = PlanFile::open(placed, PlanBytes::Read)?;
    let total = file.starts.last().copied().unwrap_or(0);
    if u32::try_from(total).is_err() {
        return Err(Error::new(ErrorKind::Unsupported, format!("a plan of {total} items: at most 2^32 - 1")));
    }
    // the stable counting sort: where each image's items start, then each item's place
    let key = |b: &RecordBatch, r: usize| first_image(b, r, first).unwrap_or(images);
    let mut next = vec![0usize; images + 2];
    for batch in &file.batches {
        for r in 0..batch.num_rows() {
            next[key(batch, r) + 1] += 1;
        }
    }
    for k in 1..next.len() {
        next[k] += next[k - 1];
    }
    let mut order = vec![0u32; total];
    let mut item = 0u32;
    for batch in &file.batches {
        for r in 0..batch.num_rows() {
            let slot = &mut next[key(batch, r)];
            order[*slot] = item;
            (*slot, item) = (*slot + 1, item + 1);
        }
    }
    let batches: Vec<&RecordBatch> = file.batches.iter().collect();
    let mut writer = PlanWriter::create(path, &file.schema)?;
    for block in order.chunks(BLOCK) {
        let at: Vec<(usize, usize)> = block
            .iter()
            .map(|&i| {
                let b = file.starts.partition_point(|&s| s <= i as usize) - 1;
                (b, i as usize - file.starts[b])
            })
            .collect();
        let grouped = arrow_select::interleave::interleave_record_batch(&batches, &at)
            .map_err(|e| Error::new(ErrorKind::Parameter, format!("cannot group the plan by image: {e}")))?;
        writer.write(&grouped)?;
    }
    writer.finish(metadata)?;
    drop(file);
    std::fs::remove_file(placed)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot remove the ungrouped plan: {e}")).in_file(placed))
}
