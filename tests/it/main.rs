//! Integration tests of the core reader, compiled into one binary.

mod bad;
mod compressed_tables;
mod common;
mod direct;
mod files;
mod headers;
mod images;
mod range_server;
mod remote;
mod shared;
mod tables;
mod wcs;
mod write;
