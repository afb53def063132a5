//! What each image channel of an item is: pixels the model reads, integer flags, or a weight.

/// The role of one channel (an HDU) of an [`crate::ImagingDataset`]
/// ([`crate::ImagingBuilder::roles`]). Only science planes are transformed: masks and weights
/// travel beside them, exact, in their own tensors of the batch.
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
}

impl ChannelRole {
    /// Whether the role is a weight plane (inverse variance or variance).
    pub fn is_weight(self) -> bool {
        matches!(self, ChannelRole::InverseVariance | ChannelRole::Variance)
    }
}
