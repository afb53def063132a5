pub use torchfits_core::*;
