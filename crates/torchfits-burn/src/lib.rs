//! # torchfits-burn
//!
//! torchfits on the GPU. For now: the pixel-to-world kernel ([`wcs`]) for the celestial
//! projections of wcslib's zenithal, cylindrical, pseudo-cylindrical, conic and polyconic
//! families, with SIP, and whole coordinate grids of cutouts in one launch; written once in
//! CubeCL for the wgpu and CUDA runtimes (features `wgpu` and `cuda`; neither is on by default).
//! The Burn datasets and batchers come next.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod ffi;
pub mod wcs;
