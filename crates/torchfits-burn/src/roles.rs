//! What each plane of an item is: pixels the model reads, a flag, integer flags, or a weight;
//! and where it comes from ([`Channel`], the layout the datasets report).

/// The role of one plane of an item: of an HDU ([`crate::DatasetBuilder::channel`]), or of a
/// plane the dataset or a transform makes ([`ChannelRole::Flag`]). Only science planes are
/// transformed: masks and weights travel beside them, exact, in their own tensors of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelRole {
    /// Pixels the model reads: `StampBatch::images`, where the batcher's NaN fill, stretch and
    /// normalisation apply.
    #[default]
    Science,
    /// Integer flags (bit masks): `StampBatch::masks`, read as 64-bit integers (exact for every
    /// FITS integer type), never transformed.
    Mask,
    /// Inverse variance: `StampBatch::weights`, never stretched or normalised.
    InverseVariance,
    /// Variance: `StampBatch::weights` as [`ChannelRole::InverseVariance`] (the batch's
    /// `weight_roles` says which each plane is).
    Variance,
    /// A 0/1 float plane the dataset or a transform makes, 1.0 where a pixel has no value (off
    /// its image, NaN): `StampBatch::images`, after the science channels. Not an HDU's role.
    Flag,
}

impl ChannelRole {
    /// Whether the role is a weight plane (inverse variance or variance).
    pub fn is_weight(self) -> bool {
        matches!(self, ChannelRole::InverseVariance | ChannelRole::Variance)
    }
}

/// One plane of a dataset's items, as its batches hold them: its role and where it comes from.
/// The datasets report theirs (`channels()`); [`crate::StampBatcher::channels`] gives the layout
/// of a batch's `images` after the transforms, which is the model's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// What the plane is.
    pub role: ChannelRole,
    /// The band it belongs to (survey stamps); for datasets without bands, its HDU.
    pub band: String,
    /// The HDU it is read from (a flag plane: the HDU whose pixels it flags).
    pub hdu: String,
}

impl Channel {
    /// A plane of `role` from `band`, read from the HDU of that name.
    pub fn new(role: ChannelRole, band: impl Into<String>) -> Self {
        let band = band.into();
        Channel { role, hdu: band.clone(), band }
    }

    /// A plane of `role` of `band`, read from HDU `hdu`.
    pub fn of(role: ChannelRole, band: impl Into<String>, hdu: impl std::fmt::Display) -> Self {
        Channel { role, band: band.into(), hdu: hdu.to_string() }
    }

    /// Whether the plane is in the batch's `images` (science and flag planes), not in its
    /// `masks` or `weights`.
    pub fn in_images(&self) -> bool {
        matches!(self.role, ChannelRole::Science | ChannelRole::Flag)
    }
}
