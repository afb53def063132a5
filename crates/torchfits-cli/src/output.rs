//! What the command prints on standard output. A reader that goes away (`torchfits header F |
//! head`) closes the pipe; the write then fails with `BrokenPipe`, which ends the command quietly
//! with status 0, as `cat` and `rg` do.

use std::io::Write;

use torchfits_core::Error;

/// Writes one line (the formatted `args`, then a newline) to standard output.
pub fn line(args: std::fmt::Arguments<'_>) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).and_then(|()| out.write_all(b"\n")).map_err(|e| Error::io(e, "cannot write the output"))
}

/// Whether `e` is a write to a pipe whose reader has gone.
pub fn is_closed_pipe(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// `println!` that returns the write's error (a closed pipe included) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
