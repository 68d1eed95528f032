//! A message header inline in a send-to or receive-from op: one buffer and one address, the
//! `msghdr` the kernel reads (`SENDMSG`) or fills in (`RECVMSG`, which writes back the
//! address's length).

use core::fmt;

use crate::SockAddrBuf;

/// What a send-to or receive-from op hands the kernel besides its buffer: the header and the
/// address. Boxed (the op stays small enough for a 256-byte task) and reused by the ring
/// across ops, so these ops allocate only in warm-up.
#[derive(Debug)]
pub(crate) struct MsgSpace {
    pub(crate) hdr: MsgHdr,
    pub(crate) addr: SockAddrBuf,
}

impl MsgSpace {
    /// A fresh space.
    pub(crate) fn boxed() -> Box<MsgSpace> {
        Box::new(MsgSpace {
            hdr: MsgHdr::new(),
            addr: SockAddrBuf::empty(),
        })
    }
}

/// A `msghdr` and its one `iovec`. Its pointers are set at prep time ([`point`](Self::point)),
/// when the op sits in its task, which does not move while the op is in flight, so they stay
/// valid until the completion.
pub(crate) struct MsgHdr {
    hdr: libc::msghdr,
    iov: libc::iovec,
}

impl MsgHdr {
    /// An empty header: null pointers, zero lengths.
    pub(crate) fn new() -> MsgHdr {
        MsgHdr {
            // SAFETY: `msghdr` is plain data (pointers, lengths, flags and, on some targets,
            // padding), for which all zeroes is a valid value: null pointers and zero lengths.
            hdr: unsafe { core::mem::zeroed() },
            iov: libc::iovec {
                iov_base: core::ptr::null_mut(),
                iov_len: 0,
            },
        }
    }

    /// Points the header at `len` bytes at `base` and the address at `addr`, `addr_len` bytes
    /// long (for a receive: its room), and returns the header's address for the SQE.
    pub(crate) fn point(&mut self, base: *mut u8, len: usize, addr: *mut u8, addr_len: u32) -> u64 {
        self.iov = libc::iovec {
            iov_base: base.cast(),
            iov_len: len,
        };
        self.hdr.msg_name = addr.cast();
        self.hdr.msg_namelen = addr_len;
        self.hdr.msg_iov = &raw mut self.iov;
        self.hdr.msg_iovlen = 1;
        self.hdr.msg_control = core::ptr::null_mut();
        self.hdr.msg_controllen = 0;
        self.hdr.msg_flags = 0;
        // Exposed, as every address an SQE carries: the executor of the ring (the kernel, or
        // the readiness executor in this process) turns it back into a pointer.
        (&raw mut self.hdr).expose_provenance() as u64
    }

    /// The address length the kernel wrote back after a receive (0: no address).
    pub(crate) fn name_len(&self) -> u32 {
        self.hdr.msg_namelen
    }

    /// Sets the address length, as the kernel does after a receive (for a backend that fills
    /// the op in itself, like the mock).
    pub(crate) fn set_name_len(&mut self, len: u32) {
        self.hdr.msg_namelen = len;
    }
}

impl fmt::Debug for MsgHdr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsgHdr")
            .field("len", &self.iov.iov_len)
            .field("namelen", &self.hdr.msg_namelen)
            .finish_non_exhaustive()
    }
}
