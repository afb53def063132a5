//! Integration tests of the core reader, compiled into one binary.

mod bad;
mod common;
mod direct;
mod files;
mod headers;
mod images;
mod shared;
mod tables;
mod wcs;
mod write;
