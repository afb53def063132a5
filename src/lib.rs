//! # torchfits
//!
//! The facade crate: re-exports [`torchfits_core`] (FITS reading). The README follows, and its
//! example is compiled as a doc test.
#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub use torchfits_core::*;
