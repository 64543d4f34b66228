//! `data_path`: the CSV files a run may read, all below one directory (`--data-dir`),
//! opened once at the request and read through a size cap.
//!
//! A path is joined to the directory, made canonical (every `..` and symbolic link
//! resolved), and must then still be below the directory's canonical path; the
//! canonical path is what is opened, and on Linux the opened file's own path
//! (`/proc/self/fd/N`) is checked again, so that a link swapped in between is caught.
//! Every refusal of a path says the same, so an answer never tells whether a file
//! outside the directory exists.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;

use crate::error::ApiError;

/// The directory runs may read CSV files from, and the largest file they may read.
#[derive(Debug, Clone)]
pub struct DataDir {
    /// Canonical.
    root: PathBuf,
    max_bytes: u64,
}

/// A CSV file opened for a run.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// The path as the request gave it (shown in answers; never the directory's).
    pub shown: PathBuf,
    pub file: Arc<File>,
    pub max_bytes: u64,
}

impl DataDir {
    /// `dir`, which must be a directory.
    pub fn new(dir: &Path, max_bytes: u64) -> Result<Self, String> {
        let root = dir
            .canonicalize()
            .map_err(|e| format!("--data-dir {}: {e}", dir.display()))?;
        if !root.is_dir() {
            return Err(format!("--data-dir {}: not a directory", dir.display()));
        }
        Ok(Self { root, max_bytes })
    }

    /// Opens `requested` (relative to the directory, or absolute inside it). Blocking.
    pub fn open(&self, requested: &str) -> Result<DataFile, ApiError> {
        let refused = || {
            ApiError::field(
                "data_path",
                format!(
                    "`{requested}` is not a file below the data directory (data_path is a path \
                     relative to the directory given with --data-dir, and may not leave it)"
                ),
            )
        };
        let canonical = self
            .root
            .join(requested)
            .canonicalize()
            .map_err(|_| refused())?;
        if !canonical.starts_with(&self.root) || !canonical.is_file() {
            return Err(refused());
        }
        let file = File::open(&canonical).map_err(|_| refused())?;
        if !self.still_inside(&file) {
            return Err(refused());
        }
        let meta = file.metadata().map_err(|_| refused())?;
        if !meta.is_file() {
            return Err(refused());
        }
        if meta.len() > self.max_bytes {
            return Err(ApiError::field(
                "data_path",
                format!(
                    "`{requested}` holds {} bytes, more than the {} bytes a run may read \
                     (--max-data-bytes)",
                    meta.len(),
                    self.max_bytes
                ),
            ));
        }
        Ok(DataFile {
            shown: PathBuf::from(requested),
            file: Arc::new(file),
            max_bytes: self.max_bytes,
        })
    }

    /// Whether the opened file is still below the directory (Linux: its path in
    /// `/proc/self/fd`; elsewhere the canonical check before opening stands).
    #[cfg(target_os = "linux")]
    fn still_inside(&self, file: &File) -> bool {
        use std::os::fd::AsRawFd;
        match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            Ok(path) => path.starts_with(&self.root),
            // No /proc (a sandbox): the check before opening stands.
            Err(_) => true,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn still_inside(&self, _file: &File) -> bool {
        true
    }
}

/// The answer to a `data_path` when no `--data-dir` was given.
pub fn disabled() -> ApiError {
    ApiError::field(
        "data_path",
        "reading CSV files is off: start the demo with --data-dir DIR (or \
         BACKTEST_STREAM_DATA_DIR=DIR) and give data_path relative to DIR",
    )
}

/// An error while opening, as a 500 (a blocking task that did not finish).
pub fn internal(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
}

/// Reads at most `max` bytes of a file, and fails past them (a file that grew after it
/// was checked is not read on, nor cut silently in the middle of a line).
pub struct Capped<'a> {
    file: &'a File,
    left: u64,
    max: u64,
}

impl<'a> Capped<'a> {
    pub fn new(file: &'a File, max: u64) -> Self {
        Self {
            file,
            left: max,
            max,
        }
    }
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One byte more tells a file that ends here from one that goes on.
            let mut probe = [0u8; 1];
            return match self.file.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "the file is larger than the {} bytes a run may read (--max-data-bytes)",
                    self.max
                ))),
            };
        }
        let len = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..len])?;
        self.left -= n as u64;
        Ok(n)
    }
}
