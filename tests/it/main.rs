//! Integration tests of the core reader, compiled into one binary.

mod common;
mod files;
mod headers;
mod images;
