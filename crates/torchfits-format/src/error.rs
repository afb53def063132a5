//! The one error type of this crate, by blame: a bad file, an unsupported feature, a limit, a
//! caller's mistake or the operating system.

use std::fmt;
use std::path::{Path, PathBuf};

/// Who is at fault for an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file is not valid FITS, or is truncated or corrupt.
    Decoding,
    /// The file is valid FITS but uses something this crate does not read.
    Unsupported,
    /// Reading would exceed a [`crate::Limits`] budget.
    Limits,
    /// The caller asked for something impossible: an HDU that does not exist, a section outside the
    /// image, a buffer of the wrong length.
    Parameter,
    /// The operating system refused: file missing, permission denied, read error.
    Io,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Decoding => "bad FITS data",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Limits => "limit exceeded",
            ErrorKind::Parameter => "invalid argument",
            ErrorKind::Io => "I/O error",
        })
    }
}

/// What cfitsio said when a call failed: its status code, the text for it and its message stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfitsioError {
    /// cfitsio's status code (see `fitsio.h`).
    pub status: i32,
    /// cfitsio's short description of the status (`fits_get_errstatus`).
    pub text: String,
    /// cfitsio's error message stack, oldest first (`fits_read_errmsg`).
    pub messages: Vec<String>,
}

impl fmt::Display for CfitsioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cfitsio status {}: {}", self.status, self.text)?;
        for m in &self.messages {
            write!(f, "; {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CfitsioError {}

/// An error from this crate: what went wrong, where (file and HDU) and why.
///
/// The `Display` form is one line naming the file, the HDU (0-based) and the cause, suitable for a
/// command-line message. cfitsio's status and message stack, or the I/O error, is the
/// [`source`](std::error::Error::source).
///
/// ```
/// use std::path::Path;
/// use torchfits_format::{Error, ErrorKind};
/// let err = Error::parameter("the HDU is a bintable, not an image").in_hdu(4).in_file(Path::new("sample.fits"));
/// assert_eq!(err.kind(), ErrorKind::Parameter);            // the caller asked a table for pixels
/// assert_eq!(err.hdu(), Some(4));
/// assert_eq!(err.to_string(), "sample.fits: HDU 4: the HDU is a bintable, not an image");
/// ```
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    file: Option<PathBuf>,
    hdu: Option<usize>,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message; add the file and HDU with [`Error::in_file`] and
    /// [`Error::in_hdu`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, file: None, hdu: None, message: message.into(), source: None }
    }

    /// A [`Decoding`](ErrorKind::Decoding) error: the input is malformed.
    pub fn decoding(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Decoding, message)
    }

    /// An [`Unsupported`](ErrorKind::Unsupported) error: valid input this crate does not read.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// A [`Parameter`](ErrorKind::Parameter) error: the caller asked for something impossible.
    pub fn parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Parameter, message)
    }

    /// A [`Limits`](ErrorKind::Limits) error: the input asks for more than the limits allow.
    pub fn limits(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limits, message)
    }

    /// An error from cfitsio's status code and message stack.
    pub fn from_cfitsio(err: CfitsioError, what: &str) -> Self {
        let kind = match err.status {
            // FILE_NOT_OPENED, FILE_NOT_CREATED, WRITE_ERROR, READ_ERROR, FILE_NOT_CLOSED, SEEK_ERROR
            104 | 105 | 106 | 108 | 110 | 116 => ErrorKind::Io,
            // MEMORY_ALLOCATION
            113 => ErrorKind::Limits,
            // BAD_HDU_NUM, bad pixel numbers/ranges, NUM_OVERFLOW (caller's output type)
            301 | 302 | 304 | 305 | 306 | 307 | 308 | 319 | 320 | 321 | 412 => ErrorKind::Parameter,
            // BAD_DATATYPE (e.g. decompressing into 64-bit integers); an unknown compression algorithm
            410 => ErrorKind::Unsupported,
            413 if err.messages.iter().any(|m| m.contains("Unknown compression")) => ErrorKind::Unsupported,
            _ => ErrorKind::Decoding,
        };
        let message = format!("{what}: {}", err.text);
        Error { kind, file: None, hdu: None, message, source: Some(Box::new(err)) }
    }

    /// An I/O error with what was being done.
    pub fn io(err: std::io::Error, what: &str) -> Self {
        Error {
            kind: ErrorKind::Io,
            file: None,
            hdu: None,
            message: format!("{what}: {err}"),
            source: Some(Box::new(err)),
        }
    }

    /// Attach the file this error is about (kept if one is already set).
    pub fn in_file(mut self, path: &Path) -> Self {
        if self.file.is_none() {
            self.file = Some(path.to_path_buf());
        }
        self
    }

    /// Attach the 0-based HDU index this error is about (kept if one is already set).
    pub fn in_hdu(mut self, hdu: usize) -> Self {
        if self.hdu.is_none() {
            self.hdu = Some(hdu);
        }
        self
    }

    /// Who is at fault.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The file the error is about, when known.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The 0-based HDU index the error is about, when known.
    pub fn hdu(&self) -> Option<usize> {
        self.hdu
    }

    /// The cause, without the file and HDU.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// cfitsio's status and message stack, when the error came from cfitsio.
    pub fn cfitsio(&self) -> Option<&CfitsioError> {
        self.source.as_ref().and_then(|s| s.downcast_ref::<CfitsioError>())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(hdu) = self.hdu {
            write!(f, "HDU {hdu}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(c) = self.cfitsio()
            && let Some(last) = c.messages.iter().rev().find(|m| !m.trim().is_empty())
        {
            write!(f, " ({})", last.trim())?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}
