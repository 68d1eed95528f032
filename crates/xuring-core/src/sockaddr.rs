//! Socket addresses stored inline in a task, in the kernel's `sockaddr_in`/`sockaddr_in6`
//! layout, converted to and from `std::net::SocketAddr` without `unsafe`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Room for a `sockaddr_in6` (28 bytes), the largest address xuring passes.
const CAPACITY: usize = size_of::<libc::sockaddr_in6>();

/// A socket address in kernel layout, with its length; the kernel reads it (connect) or
/// writes it (accept) while the task is in flight.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(4))]
pub struct SockAddrBuf {
    bytes: [u8; CAPACITY],
    len: u32,
}

impl Default for SockAddrBuf {
    fn default() -> Self {
        Self::empty()
    }
}

impl SockAddrBuf {
    /// Room for any address, length set to the capacity (for accept to fill in).
    pub const fn empty() -> SockAddrBuf {
        SockAddrBuf {
            bytes: [0; CAPACITY],
            len: CAPACITY as u32,
        }
    }

    /// `addr` in kernel layout.
    pub fn new(addr: SocketAddr) -> SockAddrBuf {
        let mut buf = SockAddrBuf::empty();
        let family = match addr {
            SocketAddr::V4(_) => libc::AF_INET,
            SocketAddr::V6(_) => libc::AF_INET6,
        } as libc::sa_family_t;
        buf.bytes[0..2].copy_from_slice(&family.to_ne_bytes());
        buf.bytes[2..4].copy_from_slice(&addr.port().to_be_bytes());
        match addr {
            SocketAddr::V4(v4) => {
                buf.bytes[4..8].copy_from_slice(&v4.ip().octets());
                buf.len = size_of::<libc::sockaddr_in>() as u32;
            }
            SocketAddr::V6(v6) => {
                buf.bytes[4..8].copy_from_slice(&v6.flowinfo().to_be_bytes());
                buf.bytes[8..24].copy_from_slice(&v6.ip().octets());
                buf.bytes[24..28].copy_from_slice(&v6.scope_id().to_ne_bytes());
                buf.len = size_of::<libc::sockaddr_in6>() as u32;
            }
        }
        buf
    }

    /// The address, if it is IPv4 or IPv6 and complete.
    pub fn to_socket_addr(&self) -> Option<SocketAddr> {
        let family = libc::sa_family_t::from_ne_bytes([self.bytes[0], self.bytes[1]]);
        let port = u16::from_be_bytes([self.bytes[2], self.bytes[3]]);
        let len = self.len as usize;
        match i32::from(family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                let ip = Ipv4Addr::new(self.bytes[4], self.bytes[5], self.bytes[6], self.bytes[7]);
                Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                let flowinfo = u32::from_be_bytes(self.bytes[4..8].try_into().ok()?);
                let octets: [u8; 16] = self.bytes[8..24].try_into().ok()?;
                let scope = u32::from_ne_bytes(self.bytes[24..28].try_into().ok()?);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(octets),
                    port,
                    flowinfo,
                    scope,
                )))
            }
            _ => None,
        }
    }

    /// The same bytes, `len` of them valid (the length the kernel wrote back elsewhere, as
    /// `recvmsg` does in its header).
    pub(crate) fn with_len(mut self, len: u32) -> SockAddrBuf {
        self.len = len.min(CAPACITY as u32);
        self
    }

    /// The address bytes, for the kernel.
    pub fn as_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }

    /// The address bytes, for the kernel to fill.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }

    /// The address length (in: the room; out: what the kernel wrote).
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the length is zero.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length field, for the kernel to update (accept's `addrlen`).
    pub fn len_mut(&mut self) -> *mut u32 {
        &mut self.len
    }

    /// Sets the address (for a backend that fills it, like the mock).
    pub fn set(&mut self, addr: SocketAddr) {
        *self = SockAddrBuf::new(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6() {
        for addr in [
            "127.0.0.1:8080".parse::<SocketAddr>().expect("v4"),
            "[::1]:443".parse().expect("v6"),
            "[fe80::1%3]:9".parse().expect("scoped v6"),
        ] {
            let buf = SockAddrBuf::new(addr);
            assert_eq!(buf.to_socket_addr(), Some(addr));
        }
        assert_eq!(SockAddrBuf::new("1.2.3.4:5".parse().expect("v4")).len(), 16);
    }

    #[test]
    fn matches_the_kernel_layout_of_sockaddr_in() {
        let buf = SockAddrBuf::new("10.1.2.3:258".parse().expect("v4"));
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 258u16.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([10, 1, 2, 3]),
            },
            sin_zero: [0; 8],
        };
        let mut expected = [0u8; 16];
        expected[0..2].copy_from_slice(&sin.sin_family.to_ne_bytes());
        expected[2..4].copy_from_slice(&sin.sin_port.to_ne_bytes());
        expected[4..8].copy_from_slice(&sin.sin_addr.s_addr.to_ne_bytes());
        assert_eq!(&buf.bytes[..16], &expected);
    }

    #[test]
    fn unknown_families_are_none() {
        let mut buf = SockAddrBuf::empty();
        buf.bytes[0..2].copy_from_slice(&(libc::AF_UNIX as libc::sa_family_t).to_ne_bytes());
        assert_eq!(buf.to_socket_addr(), None);
    }
}
