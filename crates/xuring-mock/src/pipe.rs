//! The mock's pipes: a bounded byte queue between a read end and a write end.

/// How many bytes a pipe holds before a write waits (Linux's default pipe size).
pub(crate) const CAPACITY: usize = 64 * 1024;

/// A pipe's bytes and which of its ends are still open.
#[derive(Debug)]
pub(crate) struct Pipe {
    /// Written, not yet read.
    pub(crate) data: Vec<u8>,
    /// The read end is open: writes have someone to read them (else `EPIPE`).
    pub(crate) reader: bool,
    /// The write end is open: an empty pipe may still get bytes (else reads return 0).
    pub(crate) writer: bool,
}

impl Pipe {
    /// An empty pipe with both ends open.
    pub(crate) fn new() -> Pipe {
        Pipe {
            data: Vec::new(),
            reader: true,
            writer: true,
        }
    }

    /// Room for more bytes.
    pub(crate) fn room(&self) -> usize {
        CAPACITY.saturating_sub(self.data.len())
    }
}
