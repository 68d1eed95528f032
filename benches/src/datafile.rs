//! The data file that `read4k` and `randread` read: written once, read once to warm the page
//! cache, removed when dropped unless it was asked for by path. Also the random offsets both
//! sides read at.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::BenchError;
use crate::raw::BLOCK;

/// Where data files go: `$XURING_BENCH_DIR`, else the system's temporary directory.
pub fn data_dir() -> PathBuf {
    std::env::var_os("XURING_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A file of pseudo-random bytes, in the page cache, deleted on drop if this process made it
/// as a temporary file.
#[derive(Debug)]
pub struct DataFile {
    path: PathBuf,
    file: File,
    len: u64,
    keep: bool,
}

impl DataFile {
    /// Creates a file of `len` bytes (rounded up to 4 KiB) in [`data_dir`], then reads it
    /// back once so that it is in the page cache.
    pub fn create(len: u64) -> Result<DataFile, BenchError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let len = len.max(BLOCK as u64).div_ceil(BLOCK as u64) * BLOCK as u64;
        let path = data_dir().join(format!(
            "xuring-bench-{}-{}.dat",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        DataFile::make(path, len, false)
    }

    /// The file at `path`: if it exists, all of it that is whole 4 KiB blocks (at least one);
    /// if not, a new file of `len` bytes (rounded up to 4 KiB), which is kept. Either way it
    /// is read once, so that it is in the page cache.
    pub fn at(path: &Path, len: u64) -> Result<DataFile, BenchError> {
        match File::open(path) {
            Ok(file) => {
                let found = file
                    .metadata()
                    .map_err(|e| BenchError::Io("stat the data file", e))?
                    .len();
                let len = found / BLOCK as u64 * BLOCK as u64;
                if len == 0 {
                    return Err(BenchError::Other(format!(
                        "{} holds {found} bytes, less than one 4 KiB block",
                        path.display()
                    )));
                }
                let mut data = DataFile {
                    path: path.to_owned(),
                    file,
                    len,
                    keep: true,
                };
                data.warm()?;
                Ok(data)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let len = len.max(BLOCK as u64).div_ceil(BLOCK as u64) * BLOCK as u64;
                DataFile::make(path.to_owned(), len, true)
            }
            Err(e) => Err(BenchError::Io("open the data file", e)),
        }
    }

    /// Creates `path` (which must not exist) with `len` bytes of pseudo-random data and warms
    /// it; removes it again on failure, and on drop unless `keep`.
    fn make(path: PathBuf, len: u64, keep: bool) -> Result<DataFile, BenchError> {
        let io = |what| move |e| BenchError::Io(what, e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("create the data file"))?;
        // From here on, `Drop` removes the file whatever fails (until it is complete).
        let mut data = DataFile {
            path,
            file: file.try_clone().map_err(io("dup the data file"))?,
            len,
            keep: false,
        };
        let mut chunk = vec![0u8; 1 << 20];
        let mut rng = XorShift::new(0x5eed);
        let mut written = 0;
        while written < len {
            for word in chunk.chunks_exact_mut(8) {
                word.copy_from_slice(&rng.next().to_le_bytes());
            }
            let n = (len - written).min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])
                .map_err(io("write the data file"))?;
            written += n as u64;
        }
        data.warm()?;
        data.keep = keep;
        Ok(data)
    }

    /// Reads the whole file once (sequentially), to bring it into the page cache.
    pub fn warm(&mut self) -> Result<(), BenchError> {
        let mut file =
            File::open(&self.path).map_err(|e| BenchError::Io("open the data file", e))?;
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(BenchError::Io("read the data file", e)),
            }
        }
    }

    /// The open file (read-write if this process made it, else read-only).
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty (never: at least one block).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `count` pseudo-random 4 KiB-aligned offsets within the file, the same for every caller
    /// with the same `seed`.
    pub fn random_offsets(&self, count: usize, seed: u64) -> Rc<[u64]> {
        let blocks = self.len / BLOCK as u64;
        let mut rng = XorShift::new(seed);
        (0..count.max(1))
            .map(|_| (rng.next() % blocks) * BLOCK as u64)
            .collect()
    }
}

impl Drop for DataFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// xorshift64*: fast, deterministic, good enough to scatter offsets.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_file_is_aligned_warm_and_removed() {
        let file = DataFile::create(10_000).expect("data file");
        assert_eq!(file.len(), 3 * BLOCK as u64);
        let offsets = file.random_offsets(100, 1);
        assert!(
            offsets
                .iter()
                .all(|o| o % BLOCK as u64 == 0 && *o < file.len())
        );
        assert_eq!(offsets, file.random_offsets(100, 1));
        let path = file.path().to_owned();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
    }
}
