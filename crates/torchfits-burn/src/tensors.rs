//! Tensors straight from FITS files: an image (or a section of it) or a table column, read by the
//! core into a host buffer and uploaded once to a Burn device. On a CubeCL device the pixels go
//! from a pooled staging buffer (reused from read to read) straight into the device buffer; on the
//! CPU backend (Flex) the buffer the core reads into becomes the tensor's own memory (no copy).
//!
//! FITS types become Burn dtypes as they are where the device has them. Float tensors: F32
//! images as F32, F64 as F64; integer images as F32 where every value is exact in it (8 and 16
//! bits), F64 otherwise (32-bit integers exact; 64-bit ones rounded beyond 2^53). Int tensors:
//! every integer type as itself (U8, I8, I16, U16, I32, U32, I64, U64), widened where the device
//! lacks it: 8- and 16-bit types to I32, U32 to I64 (wgpu adapters need not store 8-, 16- or
//! 64-bit integers); a type the device cannot hold even widened is an error, as is a float image
//! read as Int. Table columns alike; logical columns as Bool.
//!
//! ```
//! use burn::tensor::{Device, Int, Tensor};
//! use torchfits_burn::tensors::read_tensor;
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
//! let file = torchfits_core::FitsFile::open(path)?;
//! let device = Device::default();
//! // the DQ image (16-bit integers) as it is, and a section of it as floats
//! let dq: Tensor<2, Int> = read_tensor(&file, "DQ", None, &device)?;
//! assert_eq!(dq.dims(), [48, 64]);
//! let part: Tensor<2> = read_tensor(&file, "DQ", Some(&torchfits_core::Section::new(vec![4..8, 0..16])), &device)?;
//! assert_eq!(part.dims(), [4, 16]);
//! # Ok::<(), torchfits_core::Error>(())
//! ```

use std::sync::LazyLock;

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Bool, DType, Device, Float, FloatDType, Int, IntDType, Tensor, TensorData};
use std::ops::Range;

use torchfits_core::{
    BufferPool, ColumnValues, Dtype, Error, ErrorKind, FitsFile, HduSelector, Pixel, Result, Section,
};

/// Staging buffers for the uploads to CubeCL devices: 256 MiB of idle buffers at most.
static STAGING: LazyLock<BufferPool> = LazyLock::new(|| BufferPool::new(256 << 20));

#[backend_extension(Cube: cfg(any(feature = "wgpu", feature = "cuda")), Flex, Autodiff)]
pub(crate) trait StagingBackend: Backend {
    /// A float tensor of `shape` and `dtype` holding `bytes`, on `anchor`'s device.
    fn staged_float(
        anchor: FloatTensor<Self>,
        bytes: Staged,
        shape: Vec<usize>,
        dtype: FloatDType,
    ) -> FloatTensor<Self>;
    /// An int tensor of `shape` and `dtype` holding `bytes`, on `anchor`'s device.
    fn staged_int(anchor: FloatTensor<Self>, bytes: Staged, shape: Vec<usize>, dtype: IntDType) -> IntTensor<Self>;
}

/// Values on their way to a device: read into a pooled buffer (for a copy to a device), or into
/// tensor data of their own (to become a CPU tensor's memory).
#[doc(hidden)]
pub enum Staged {
    /// The values' bytes, in a buffer that goes back to its pool once copied.
    Pooled(Box<dyn std::ops::Deref<Target = [u8]> + Send>),
    /// The values, owned.
    Host(TensorData),
}

impl Staged {
    /// The values' bytes.
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    fn bytes(&self) -> &[u8] {
        match self {
            Staged::Pooled(b) => b,
            Staged::Host(d) => d.as_bytes(),
        }
    }

    /// The values as tensor data of `shape` and `dtype`.
    fn into_data(self, shape: Vec<usize>, dtype: DType) -> TensorData {
        match self {
            Staged::Pooled(b) => TensorData::from_bytes_vec(b.to_vec(), shape, dtype),
            Staged::Host(d) => d,
        }
    }
}

impl StagingBackend for Flex {
    fn staged_float(
        anchor: FloatTensor<Self>,
        bytes: Staged,
        shape: Vec<usize>,
        dtype: FloatDType,
    ) -> FloatTensor<Self> {
        Self::float_from_data(bytes.into_data(shape, DType::from(dtype)), &anchor.device())
    }

    fn staged_int(anchor: FloatTensor<Self>, bytes: Staged, shape: Vec<usize>, dtype: IntDType) -> IntTensor<Self> {
        Self::int_from_data(bytes.into_data(shape, DType::from(dtype)), &anchor.device())
    }
}

#[cfg(any(feature = "wgpu", feature = "cuda"))]
impl StagingBackend for burn::backend::Cube {
    fn staged_float(
        anchor: FloatTensor<Self>,
        bytes: Staged,
        shape: Vec<usize>,
        dtype: FloatDType,
    ) -> FloatTensor<Self> {
        let handle = crate::transfers::upload(&anchor.client, bytes.bytes());
        burn_cubecl::tensor::CubeTensor::new_contiguous(
            anchor.client,
            anchor.device,
            shape.into(),
            handle,
            DType::from(dtype),
        )
    }

    fn staged_int(anchor: FloatTensor<Self>, bytes: Staged, shape: Vec<usize>, dtype: IntDType) -> IntTensor<Self> {
        let handle = crate::transfers::upload(&anchor.client, bytes.bytes());
        burn_cubecl::tensor::CubeTensor::new_contiguous(
            anchor.client,
            anchor.device,
            shape.into(),
            handle,
            DType::from(dtype),
        )
    }
}

impl<B: StagingBackend, C: CheckpointStrategy> StagingBackend for Autodiff<B, C> {
    fn staged_float(
        anchor: FloatTensor<Self>,
        bytes: Staged,
        shape: Vec<usize>,
        dtype: FloatDType,
    ) -> FloatTensor<Self> {
        let inner = B::staged_float(<Self as AutodiffBackend>::inner(anchor), bytes, shape, dtype);
        <Self as AutodiffBackend>::from_inner(inner)
    }

    fn staged_int(anchor: FloatTensor<Self>, bytes: Staged, shape: Vec<usize>, dtype: IntDType) -> IntTensor<Self> {
        B::staged_int(<Self as AutodiffBackend>::inner(anchor), bytes, shape, dtype)
    }
}

/// Whether `device` keeps tensors in host memory (the CPU backend): the values are then read into
/// a vector that becomes the tensor's own.
pub(crate) fn on_host(device: &Device) -> bool {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if matches!(device.as_dispatch().clone().inner(), burn::backend::DispatchDevice::Cube(_)) {
        return false;
    }
    let _ = device;
    true
}

/// Values of `shape` (read by `fill`) staged for `device`.
fn stage<T: Pixel + burn::tensor::Element>(
    shape: &[usize],
    device: &Device,
    fill: impl FnOnce(&mut [T]) -> Result<()>,
) -> Result<Staged> {
    let len = shape.iter().product();
    if on_host(device) {
        let mut v = vec![T::default(); len];
        fill(&mut v)?;
        crate::transfers::up(std::mem::size_of_val(v.as_slice()));
        return Ok(Staged::Host(TensorData::new(v, shape.to_vec())));
    }
    let mut buffer = STAGING.get::<T>(len)?;
    fill(&mut buffer)?;
    Ok(Staged::Pooled(Box::new(PooledBytes(buffer))))
}

/// A pooled buffer seen as bytes (it goes back to the pool when the upload is done).
struct PooledBytes<T: Pixel>(torchfits_core::PooledBuffer<T>);

impl<T: Pixel> std::ops::Deref for PooledBytes<T> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// The tensor kinds FITS data is read into: [`Float`] and [`Int`] (and [`Bool`] for logical
/// columns).
pub trait FitsKind: burn::tensor::kind::Basic + sealed::Sealed {
    /// The tensor of `shape` on `device` holding an image's (or column's) values, of type `dtype`,
    /// read by `read` into the buffer it is given.
    #[doc(hidden)]
    fn read<const D: usize>(
        dtype: Dtype,
        shape: Vec<usize>,
        device: &Device,
        read: &dyn ReadValues,
    ) -> Result<Tensor<D, Self>>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for burn::tensor::Float {}
    impl Sealed for burn::tensor::Int {}
    impl Sealed for burn::tensor::Bool {}
}

/// Reads values into a buffer of any pixel type (converted as the core converts them).
#[doc(hidden)]
pub trait ReadValues {
    /// Into f32.
    fn f32(&self, out: &mut [f32]) -> Result<()>;
    /// Into f64.
    fn f64(&self, out: &mut [f64]) -> Result<()>;
    /// Into the integer type `dtype` names (its values' bytes), `len` values.
    fn int(&self, dtype: Dtype, shape: &[usize], device: &Device) -> Result<Staged>;
}

impl FitsKind for Float {
    fn read<const D: usize>(
        dtype: Dtype,
        shape: Vec<usize>,
        device: &Device,
        read: &dyn ReadValues,
    ) -> Result<Tensor<D, Float>> {
        let wide = matches!(dtype, Dtype::F64 | Dtype::I32 | Dtype::U32 | Dtype::I64 | Dtype::U64)
            && device.supports_dtype(DType::F64);
        let (staged, out) = if wide {
            (stage::<f64>(&shape, device, |b| read.f64(b))?, FloatDType::F64)
        } else {
            (stage::<f32>(&shape, device, |b| read.f32(b))?, FloatDType::F32)
        };
        let anchor = Tensor::<1>::empty([1], device).into_dispatch();
        let t = <burn::backend::Dispatch as StagingBackend>::staged_float(anchor, staged, shape, out);
        Ok(Tensor::<D, Float>::from_dispatch(t))
    }
}

impl FitsKind for Int {
    fn read<const D: usize>(
        dtype: Dtype,
        shape: Vec<usize>,
        device: &Device,
        read: &dyn ReadValues,
    ) -> Result<Tensor<D, Int>> {
        let (own, out) = int_dtype(dtype, device)?;
        let staged = read.int(own, &shape, device)?;
        let anchor = Tensor::<1>::empty([1], device).into_dispatch();
        let t = <burn::backend::Dispatch as StagingBackend>::staged_int(anchor, staged, shape, out);
        Ok(Tensor::<D, Int>::from_dispatch(t))
    }
}

/// The integer type values of `dtype` are read as on `device`, and its Burn dtype: the type
/// itself where the device has it, else widened (8 and 16 bits to I32, U32 to I64).
fn int_dtype(dtype: Dtype, device: &Device) -> Result<(Dtype, IntDType)> {
    let own = match dtype {
        Dtype::U8 => (Dtype::U8, IntDType::U8),
        Dtype::I8 => (Dtype::I8, IntDType::I8),
        Dtype::I16 => (Dtype::I16, IntDType::I16),
        Dtype::U16 => (Dtype::U16, IntDType::U16),
        Dtype::I32 => (Dtype::I32, IntDType::I32),
        Dtype::U32 => (Dtype::U32, IntDType::U32),
        Dtype::I64 => (Dtype::I64, IntDType::I64),
        Dtype::U64 => (Dtype::U64, IntDType::U64),
        other => {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("{other:?} values read as an Int tensor: read them as Float"),
            ));
        }
    };
    if device.supports_dtype(DType::from(own.1)) {
        return Ok(own);
    }
    let wider = match own.0 {
        Dtype::U8 | Dtype::I8 | Dtype::I16 | Dtype::U16 => (Dtype::I32, IntDType::I32),
        Dtype::U32 => (Dtype::I64, IntDType::I64),
        _ => own,
    };
    if wider != own && device.supports_dtype(DType::from(wider.1)) {
        return Ok(wider);
    }
    Err(Error::new(
        ErrorKind::Unsupported,
        format!("{dtype:?} values: this device holds no integer type that keeps them"),
    ))
}

/// An image section as a [`ReadValues`].
struct ImageValues<'a> {
    image: &'a torchfits_core::ImageReader,
    section: &'a Section,
}

impl ReadValues for ImageValues<'_> {
    fn f32(&self, out: &mut [f32]) -> Result<()> {
        self.image.read_section_into(self.section, out)
    }

    fn f64(&self, out: &mut [f64]) -> Result<()> {
        self.image.read_section_into(self.section, out)
    }

    fn int(&self, dtype: Dtype, len: &[usize], device: &Device) -> Result<Staged> {
        let (i, s) = (self.image, self.section);
        match dtype {
            Dtype::U8 => stage::<u8>(len, device, |b| i.read_section_into(s, b)),
            Dtype::I8 => stage::<i8>(len, device, |b| i.read_section_into(s, b)),
            Dtype::I16 => stage::<i16>(len, device, |b| i.read_section_into(s, b)),
            Dtype::U16 => stage::<u16>(len, device, |b| i.read_section_into(s, b)),
            Dtype::I32 => stage::<i32>(len, device, |b| i.read_section_into(s, b)),
            Dtype::U32 => stage::<u32>(len, device, |b| i.read_section_into(s, b)),
            Dtype::I64 => stage::<i64>(len, device, |b| i.read_section_into(s, b)),
            Dtype::U64 => stage::<u64>(len, device, |b| i.read_section_into(s, b)),
            other => Err(Error::new(ErrorKind::Parameter, format!("{other:?} is not an integer type"))),
        }
    }
}

/// The image of HDU `hdu` of `file` (or its `section`), as a `D`-dimensional tensor on `device`
/// (C order: the last axis is NAXIS1), of kind `K` ([`Float`] or [`Int`]; the dtypes as the
/// module says). An error names the file and the HDU: no image there, a section that does not fit
/// it, `D` not its number of axes, or a kind or type the device cannot hold.
pub fn read_tensor<const D: usize, K: FitsKind>(
    file: &FitsFile,
    hdu: impl Into<HduSelector>,
    section: Option<&Section>,
    device: &Device,
) -> Result<Tensor<D, K>> {
    let image = file.image(hdu)?;
    let full;
    let section = match section {
        Some(s) => s,
        None => {
            full = Section::full(image.shape());
            &full
        }
    };
    let blame = |e: Error| e.in_file(file.path()).in_hdu(image.index());
    section.check(image.shape()).map_err(blame)?;
    let shape = section.shape();
    if shape.len() != D {
        return Err(blame(Error::new(
            ErrorKind::Parameter,
            format!("an image of {} axes read as a tensor of {D} dimensions", shape.len()),
        )));
    }
    let _span = tracing::debug_span!("read_tensor", hdu = image.index(), pixels = section.len()).entered();
    K::read::<D>(image.dtype(), shape, device, &ImageValues { image: &image, section }).map_err(blame)
}

impl FitsKind for Bool {
    fn read<const D: usize>(
        dtype: Dtype,
        shape: Vec<usize>,
        device: &Device,
        read: &dyn ReadValues,
    ) -> Result<Tensor<D, Bool>> {
        if dtype != Dtype::U8 {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("{dtype:?} values read as a Bool tensor: only logical columns are"),
            ));
        }
        Ok(Int::read::<D>(dtype, shape, device, read)?.bool())
    }
}

/// A column's values as a [`ReadValues`] (logical values as U8 0 or 1).
struct ColumnValuesOf<'a>(&'a ColumnValues);

/// Converts every value of a numeric column to `$t` (`as`: exact for the types the kinds pick).
macro_rules! convert_column {
    ($values:expr, $out:expr, $t:ty) => {{
        let out: &mut [$t] = $out;
        match $values {
            ColumnValues::Bool(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = u8::from(x) as $t),
            ColumnValues::U8(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::I16(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::U16(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::I32(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::U32(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::I64(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::U64(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::F32(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            ColumnValues::F64(v) => out.iter_mut().zip(v).for_each(|(o, &x)| *o = x as $t),
            _ => return Err(Error::new(ErrorKind::Unsupported, "a string or complex column has no tensor type")),
        }
        Ok(())
    }};
}

impl ReadValues for ColumnValuesOf<'_> {
    fn f32(&self, out: &mut [f32]) -> Result<()> {
        convert_column!(self.0, out, f32)
    }

    fn f64(&self, out: &mut [f64]) -> Result<()> {
        convert_column!(self.0, out, f64)
    }

    fn int(&self, dtype: Dtype, shape: &[usize], device: &Device) -> Result<Staged> {
        let v = self.0;
        match dtype {
            Dtype::U8 => stage::<u8>(shape, device, |b| convert_column!(v, b, u8)),
            Dtype::I16 => stage::<i16>(shape, device, |b| convert_column!(v, b, i16)),
            Dtype::U16 => stage::<u16>(shape, device, |b| convert_column!(v, b, u16)),
            Dtype::I32 => stage::<i32>(shape, device, |b| convert_column!(v, b, i32)),
            Dtype::U32 => stage::<u32>(shape, device, |b| convert_column!(v, b, u32)),
            Dtype::I64 => stage::<i64>(shape, device, |b| convert_column!(v, b, i64)),
            Dtype::U64 => stage::<u64>(shape, device, |b| convert_column!(v, b, u64)),
            other => Err(Error::new(ErrorKind::Parameter, format!("{other:?} is not an integer type of a column"))),
        }
    }
}

/// The FITS type of a column's values (logical values as U8), or None for strings and complex
/// numbers.
fn column_dtype(values: &ColumnValues) -> Option<Dtype> {
    Some(match values {
        ColumnValues::Bool(_) | ColumnValues::U8(_) => Dtype::U8,
        ColumnValues::I16(_) => Dtype::I16,
        ColumnValues::U16(_) => Dtype::U16,
        ColumnValues::I32(_) => Dtype::I32,
        ColumnValues::U32(_) => Dtype::U32,
        ColumnValues::I64(_) => Dtype::I64,
        ColumnValues::U64(_) => Dtype::U64,
        ColumnValues::F32(_) => Dtype::F32,
        ColumnValues::F64(_) => Dtype::F64,
        _ => return None,
    })
}

/// Column `column` of the table in HDU `hdu` of `file` (its `rows`, or all), as a tensor on
/// `device` of kind `K` ([`Float`], [`Int`], or [`Bool`] for logical columns): `[rows]` for a
/// scalar column (`D` = 1), `[rows, repeat]` for a vector one, `[rows, ...TDIM]` for one with a
/// TDIM shape. An error names the file and the HDU: no such column, a string, complex or
/// variable-length column, `D` not the column's rank, or a kind or type the device cannot hold.
///
/// ```
/// use burn::tensor::{Device, Tensor};
/// use torchfits_burn::tensors::read_column_tensor;
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let file = torchfits_core::FitsFile::open(path)?;
/// let flux: Tensor<1> = read_column_tensor(&file, "CATALOG", "flux", None, &Device::default())?;
/// assert_eq!(flux.dims(), [2]);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn read_column_tensor<const D: usize, K: FitsKind>(
    file: &FitsFile,
    hdu: impl Into<HduSelector>,
    column: &str,
    rows: Option<Range<u64>>,
    device: &Device,
) -> Result<Tensor<D, K>> {
    let index = file.resolve(hdu)?;
    let table = file.table(index)?;
    let blame = |e: Error| e.in_file(file.path()).in_hdu(index);
    let mut reader = table.with_columns(&[column]).map_err(blame)?;
    if let Some(r) = rows {
        reader = reader.with_rows(r).map_err(blame)?;
    }
    let n =
        usize::try_from(reader.selected_rows()).map_err(|_| blame(Error::new(ErrorKind::Limits, "too many rows")))?;
    let _span = tracing::debug_span!("read_column_tensor", hdu = index, rows = n).entered();
    let batch = reader.with_batch_rows(n.max(1)).build().map_err(blame)?.next().transpose().map_err(blame)?;
    let Some(data) = batch.and_then(|b| b.columns.into_iter().next()) else {
        return Err(blame(Error::new(ErrorKind::Parameter, format!("no column {column:?}"))));
    };
    let unsupported = |why: &str| blame(Error::new(ErrorKind::Unsupported, format!("column {column:?}: {why}")));
    if data.list_offsets.is_some() {
        return Err(unsupported("variable-length arrays have no tensor shape"));
    }
    let dtype =
        column_dtype(&data.values).ok_or_else(|| unsupported("strings and complex numbers have no tensor type"))?;
    let mut shape = vec![n];
    match (&data.shape, data.per_row) {
        (Some(dims), _) => shape.extend(dims.iter().copied()),
        (None, 1) => {}
        (None, r) => shape.push(r),
    }
    if shape.len() != D {
        return Err(blame(Error::new(
            ErrorKind::Parameter,
            format!("column {column:?} of shape {shape:?} read as a tensor of {D} dimensions"),
        )));
    }
    if shape.iter().product::<usize>() != data.values.len() {
        return Err(blame(Error::new(
            ErrorKind::Decoding,
            format!("column {column:?}: its values do not fill {shape:?}"),
        )));
    }
    K::read::<D>(dtype, shape, device, &ColumnValuesOf(&data.values)).map_err(blame)
}
