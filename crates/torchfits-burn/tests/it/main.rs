//! torchfits-burn's integration tests as one binary: each test binary links Burn and its wgpu
//! runtime, so one binary is one link and one copy on disk instead of one per file.

mod common;
mod data;
mod datasets;
#[cfg(feature = "wgpu")]
mod device;
mod failures;
mod groups;
#[cfg(feature = "wgpu")]
mod kernel;
mod learner;
mod plan;
mod roles;
mod spectra;
mod stream;
mod targets;
mod tensor_io;
mod tensor_wcs;
mod transforms;
