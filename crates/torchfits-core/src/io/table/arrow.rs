//! Table batches as Arrow record batches (feature `arrow`, on by default). Numeric buffers move
//! into Arrow without a copy.
//!
//! The mapping, astropy's reading of FITS tables:
//! - one Arrow column per selected FITS column, named as in TTYPEn;
//! - a repeat count above 1 (or `X` bits), or a TDIM of any size, is a fixed-size list of that
//!   many elements (the TDIM shape flattened), a
//!   variable-length array (`P`, `Q`) a list (a variable-length `A` a string);
//! - complex values are a struct `{re, im}`;
//! - strings are `Utf8` when the batch's bytes are valid UTF-8, `Binary` otherwise;
//! - values are astropy's: an undefined logical (stored 0) is `false`, an integer equal to TNULL
//!   keeps its value; [`TableBatch::into_record_batch_with_nulls`] makes them Arrow nulls instead
//!   (the masks are in [`ColumnData::nulls`] either way).

use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, ListArray, PrimitiveArray, RecordBatch,
    StringArray, StructArray, types,
};
use arrow_buffer::{BooleanBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Fields, Schema};

use crate::io::table::batch::{ColumnData, ColumnValues, TableBatch};
use torchfits_format::error::{Error, Result};

pub use crate::ffi::mmap::map_file;

/// The bytes of the file at `path`, read into memory, as an Arrow buffer (an Arrow IPC file
/// decoded in place with `arrow_ipc`'s `FileDecoder`, for one): what another process does to the
/// file afterwards cannot touch it. At most `limits.max_alloc` bytes. [`map_file`] maps instead,
/// under a contract.
///
/// ```
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let bytes = torchfits_core::table::arrow::read_file(path, &torchfits_core::Limits::default())?;
/// assert_eq!(&bytes[..6], b"SIMPLE");
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn read_file(path: impl AsRef<std::path::Path>, limits: &torchfits_format::Limits) -> Result<arrow_buffer::Buffer> {
    use std::os::unix::fs::FileExt;
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(e, "cannot open the file").in_file(path))?;
    let len = file.metadata().map_err(|e| Error::io(e, "cannot stat the file").in_file(path))?.len();
    let len = usize::try_from(len).map_err(|_| Error::limits("the file does not fit in memory").in_file(path))?;
    let mut bytes: Vec<u8> = limits.zeroed_vec(len, "the file").map_err(|e| e.in_file(path))?;
    file.read_exact_at(&mut bytes, 0).map_err(|e| Error::io(e, "cannot read the file").in_file(path))?;
    Ok(arrow_buffer::Buffer::from_vec(bytes))
}

fn primitive<T: arrow_array::ArrowPrimitiveType>(values: Vec<T::Native>, nulls: Option<NullBuffer>) -> ArrayRef {
    Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls))
}

/// Arrow's validity (true = valid) from our per-element null flags.
fn validity(nulls: Option<Vec<bool>>) -> Option<NullBuffer> {
    nulls.map(|n| NullBuffer::new(BooleanBuffer::from_iter(n.into_iter().map(|null| !null))))
}

fn complex_f32(pairs: Vec<[f32; 2]>) -> ArrayRef {
    let (re, im): (Vec<f32>, Vec<f32>) = pairs.into_iter().map(|[a, b]| (a, b)).unzip();
    complex_struct(primitive::<types::Float32Type>(re, None), primitive::<types::Float32Type>(im, None))
}

fn complex_f64(pairs: Vec<[f64; 2]>) -> ArrayRef {
    let (re, im): (Vec<f64>, Vec<f64>) = pairs.into_iter().map(|[a, b]| (a, b)).unzip();
    complex_struct(primitive::<types::Float64Type>(re, None), primitive::<types::Float64Type>(im, None))
}

fn complex_struct(re: ArrayRef, im: ArrayRef) -> ArrayRef {
    let fields = Fields::from(vec![
        Field::new("re", re.data_type().clone(), false),
        Field::new("im", im.data_type().clone(), false),
    ]);
    Arc::new(StructArray::new(fields, vec![re, im], None))
}

/// One column as an Arrow array (flat: `num_rows * per_row` elements, or one string per row).
fn flat_array(column: ColumnData, with_nulls: bool) -> Result<ArrayRef> {
    let nulls = || if with_nulls { validity(column.nulls.clone()) } else { None };
    Ok(match column.values {
        ColumnValues::Bool(v) => Arc::new(BooleanArray::new(BooleanBuffer::from(v), nulls())),
        ColumnValues::U8(v) => primitive::<types::UInt8Type>(v, nulls()),
        ColumnValues::I16(v) => primitive::<types::Int16Type>(v, nulls()),
        ColumnValues::U16(v) => primitive::<types::UInt16Type>(v, nulls()),
        ColumnValues::I32(v) => primitive::<types::Int32Type>(v, nulls()),
        ColumnValues::U32(v) => primitive::<types::UInt32Type>(v, nulls()),
        ColumnValues::I64(v) => primitive::<types::Int64Type>(v, nulls()),
        ColumnValues::U64(v) => primitive::<types::UInt64Type>(v, nulls()),
        ColumnValues::F32(v) => primitive::<types::Float32Type>(v, None),
        // a scaled integer column: TNULL elements
        ColumnValues::F64(v) => primitive::<types::Float64Type>(v, nulls()),
        ColumnValues::ComplexF32(v) => complex_f32(v),
        ColumnValues::ComplexF64(v) => complex_f64(v),
        ColumnValues::Str { offsets, bytes } => {
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            if std::str::from_utf8(&bytes).is_ok() {
                Arc::new(
                    StringArray::try_new(offsets, bytes.into(), None)
                        .map_err(|e| Error::decoding(format!("column {}: {e}", column.name)))?,
                )
            } else {
                Arc::new(
                    BinaryArray::try_new(offsets, bytes.into(), None)
                        .map_err(|e| Error::decoding(format!("column {}: {e}", column.name)))?,
                )
            }
        }
    })
}

impl TableBatch {
    /// The batch as an Arrow record batch (consumes it: numeric buffers move without a copy).
    ///
    /// ```
    /// use torchfits_core::FitsFile;
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let file = FitsFile::open(path)?;
    /// let batch = file.table("CATALOG")?.build()?.next().expect("a batch")?;
    /// let record = batch.into_record_batch()?;
    /// assert_eq!((record.num_rows(), record.num_columns()), (2, 3));
    /// assert_eq!(record.schema().field(0).name(), "ra");
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn into_record_batch(self) -> Result<RecordBatch> {
        self.into_arrow(false)
    }

    /// As [`TableBatch::into_record_batch`], but undefined elements (logicals stored as 0,
    /// integers equal to TNULL, ASCII-table blanks) are Arrow nulls rather than astropy's values.
    pub fn into_record_batch_with_nulls(self) -> Result<RecordBatch> {
        self.into_arrow(true)
    }

    fn into_arrow(self, with_nulls: bool) -> Result<RecordBatch> {
        let num_rows = self.num_rows;
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut arrays = Vec::with_capacity(self.columns.len());
        for column in self.columns {
            let name = column.name.clone();
            let per_row = column.per_row;
            let is_str = matches!(column.values, ColumnValues::Str { .. });
            // a TDIM makes every row an array, even of one element
            let scalar = per_row == 1 && column.shape.is_none();
            let mut column = column;
            let list_offsets = column.list_offsets.take();
            let flat = flat_array(column, with_nulls)?;
            let array: ArrayRef = if let Some(offsets) = list_offsets {
                let item = Arc::new(Field::new("item", flat.data_type().clone(), true));
                Arc::new(
                    ListArray::try_new(item, OffsetBuffer::new(ScalarBuffer::from(offsets)), flat, None)
                        .map_err(|e| Error::decoding(format!("column {name}: {e}")))?,
                )
            } else if scalar || is_str {
                flat
            } else {
                let item = Arc::new(Field::new("item", flat.data_type().clone(), true));
                let size = i32::try_from(per_row).map_err(|_| Error::unsupported("a repeat count over 2^31"))?;
                Arc::new(
                    FixedSizeListArray::try_new(
                        item,
                        size,
                        flat,
                        // a zero-width column (`0J`): Arrow takes the row count from the validity
                        (size == 0).then(|| NullBuffer::new_valid(num_rows)),
                    )
                    .map_err(|e| Error::decoding(format!("column {name}: {e}")))?,
                )
            };
            // nullable whatever this batch holds, so that every batch of a table has one schema
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(array);
        }
        let schema = Arc::new(Schema::new(fields));
        let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(num_rows));
        RecordBatch::try_new_with_options(schema, arrays, &options)
            .map_err(|e| Error::decoding(format!("cannot build the Arrow batch: {e}")))
    }
}

/// `batch` with the string columns that `schema` types as `Utf8` but `batch` holds as `Binary`
/// (bytes that are not UTF-8) turned into `Utf8`, invalid bytes replaced by U+FFFD; returns how
/// many strings were changed. This keeps one schema (the first batch's) for a whole stream.
pub fn conform_strings(batch: RecordBatch, schema: &Arc<Schema>) -> Result<(RecordBatch, usize)> {
    if batch.schema().as_ref() == schema.as_ref() {
        return Ok((batch, 0));
    }
    let mut changed = 0;
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (array, field) in batch.columns().iter().zip(schema.fields()) {
        match (array.data_type(), field.data_type()) {
            (DataType::Binary, DataType::Utf8) => {
                let binary =
                    array.as_any().downcast_ref::<BinaryArray>().ok_or_else(|| Error::decoding("binary column"))?;
                let strings: StringArray = binary
                    .iter()
                    .map(|b| {
                        b.map(|b| match std::str::from_utf8(b) {
                            Ok(s) => s.to_string(),
                            Err(_) => {
                                changed += 1;
                                String::from_utf8_lossy(b).into_owned()
                            }
                        })
                    })
                    .collect();
                columns.push(Arc::new(strings) as ArrayRef);
            }
            _ => columns.push(array.clone()),
        }
    }
    let batch = RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::decoding(format!("a batch does not match the first batch's columns: {e}")))?;
    Ok((batch, changed))
}

/// One Arrow array (one value per row, or the flat values of a list) as column values and
/// per-value undefined flags.
fn values_of(name: &str, array: &dyn Array) -> Result<(ColumnValues, Option<Vec<bool>>)> {
    use arrow_array::cast::AsArray;
    let nulls = array.logical_nulls().filter(|n| n.null_count() > 0).map(|n| n.iter().map(|valid| !valid).collect());
    let unsupported =
        |t: &DataType| Error::unsupported(format!("column {name}: Arrow type {t} has no FITS column type here"));
    macro_rules! prim {
        ($t:ty, $variant:ident) => {
            ColumnValues::$variant(array.as_primitive::<$t>().values().to_vec())
        };
    }
    let values =
        match array.data_type() {
            DataType::Boolean => ColumnValues::Bool(array.as_boolean().values().iter().collect()),
            DataType::UInt8 => prim!(types::UInt8Type, U8),
            DataType::Int8 => {
                ColumnValues::I16(array.as_primitive::<types::Int8Type>().values().iter().map(|&v| v.into()).collect())
            }
            DataType::Int16 => prim!(types::Int16Type, I16),
            DataType::UInt16 => prim!(types::UInt16Type, U16),
            DataType::Int32 => prim!(types::Int32Type, I32),
            DataType::UInt32 => prim!(types::UInt32Type, U32),
            DataType::Int64 => prim!(types::Int64Type, I64),
            DataType::UInt64 => prim!(types::UInt64Type, U64),
            DataType::Float16 => ColumnValues::F32(
                array.as_primitive::<types::Float16Type>().values().iter().map(|v| v.to_f32()).collect(),
            ),
            DataType::Float32 => prim!(types::Float32Type, F32),
            DataType::Float64 => prim!(types::Float64Type, F64),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => {
                let n = array.len();
                let mut offsets = Vec::with_capacity(n + 1);
                let mut bytes = Vec::new();
                offsets.push(0i32);
                for i in 0..n {
                    if array.is_valid(i) {
                        let s: &[u8] = match array.data_type() {
                            DataType::Utf8 => array.as_string::<i32>().value(i).as_bytes(),
                            DataType::LargeUtf8 => array.as_string::<i64>().value(i).as_bytes(),
                            DataType::Binary => array.as_binary::<i32>().value(i),
                            _ => array.as_binary::<i64>().value(i),
                        };
                        bytes.extend_from_slice(s);
                    }
                    offsets.push(i32::try_from(bytes.len()).map_err(|_| {
                        Error::unsupported(format!("column {name}: over 2 GiB of strings in one batch"))
                    })?);
                }
                ColumnValues::Str { offsets, bytes }
            }
            DataType::Struct(fields)
                if fields.len() == 2
                    && fields.first().is_some_and(|f| f.name() == "re")
                    && fields.get(1).is_some_and(|f| f.name() == "im") =>
            {
                let s = array.as_struct();
                match (values_of(name, s.column(0).as_ref())?.0, values_of(name, s.column(1).as_ref())?.0) {
                    (ColumnValues::F32(re), ColumnValues::F32(im)) => {
                        ColumnValues::ComplexF32(re.into_iter().zip(im).map(|(a, b)| [a, b]).collect())
                    }
                    (ColumnValues::F64(re), ColumnValues::F64(im)) => {
                        ColumnValues::ComplexF64(re.into_iter().zip(im).map(|(a, b)| [a, b]).collect())
                    }
                    _ => return Err(unsupported(array.data_type())),
                }
            }
            other => return Err(unsupported(other)),
        };
    Ok((values, nulls))
}

impl TableBatch {
    /// A batch from an Arrow record batch (values copied): the reverse of
    /// [`TableBatch::into_record_batch`]. Numbers, booleans, strings and binaries, fixed-size
    /// lists (arrays per row), lists (variable-length arrays), `{re, im}` structs (complex);
    /// Arrow nulls become undefined values. Other Arrow types are an `Unsupported` error.
    ///
    /// ```
    /// use torchfits_core::FitsFile;
    /// use torchfits_core::table::TableBatch;
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let file = FitsFile::open(path)?;
    /// let batch = file.table("CATALOG")?.build()?.next().expect("a batch")?;
    /// let again = TableBatch::from_record_batch(&batch.clone().into_record_batch()?)?;
    /// assert_eq!(again.columns, batch.columns);
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn from_record_batch(batch: &RecordBatch) -> Result<TableBatch> {
        use arrow_array::cast::AsArray;
        let schema = batch.schema();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name().clone();
            let column = match array.data_type() {
                DataType::FixedSizeList(_, size) => {
                    let list = array.as_fixed_size_list();
                    let (values, mut nulls) = values_of(&name, list.values().as_ref())?;
                    let per = usize::try_from(*size).unwrap_or(0);
                    // a null row: all its elements undefined
                    if let Some(rows) = list.logical_nulls().filter(|n| n.null_count() > 0) {
                        let mask = nulls.get_or_insert_with(|| vec![false; values.len()]);
                        for (r, valid) in rows.iter().enumerate() {
                            if !valid {
                                mask.iter_mut().skip(r * per).take(per).for_each(|m| *m = true);
                            }
                        }
                    }
                    let mut c = ColumnData::new(name, values).with_per_row(per);
                    c.nulls = nulls;
                    c
                }
                DataType::List(_) | DataType::LargeList(_) => {
                    let (offsets, child): (Vec<i64>, ArrayRef) = if let DataType::List(_) = array.data_type() {
                        let l = array.as_list::<i32>();
                        (l.value_offsets().iter().map(|&o| o.into()).collect(), l.values().clone())
                    } else {
                        let l = array.as_list::<i64>();
                        (l.value_offsets().to_vec(), l.values().clone())
                    };
                    // the child array may be longer than the rows use: take the used range
                    let (first, last) = (offsets.first().copied().unwrap_or(0), offsets.last().copied().unwrap_or(0));
                    let used = child.slice(first as usize, (last - first) as usize);
                    let (values, nulls) = values_of(&name, used.as_ref())?;
                    let offsets = offsets
                        .iter()
                        .map(|&o| i32::try_from(o - first))
                        .collect::<std::result::Result<Vec<i32>, _>>()
                        .map_err(|_| {
                            Error::unsupported(format!("column {name}: over 2^31 list elements in one batch"))
                        })?;
                    let mut c = ColumnData::list(name, values, offsets);
                    c.nulls = nulls;
                    c
                }
                _ => {
                    let (values, nulls) = values_of(&name, array.as_ref())?;
                    let mut c = ColumnData::new(name, values);
                    c.nulls = nulls;
                    c
                }
            };
            columns.push(column);
        }
        let mut out = TableBatch::new(columns)?;
        out.num_rows = batch.num_rows();
        Ok(out)
    }
}
