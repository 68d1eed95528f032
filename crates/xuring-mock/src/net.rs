//! The mock's sockets: stream sockets that listen at an address, connect to one and carry
//! bytes to their peer; datagram sockets that connect to anything and carry nothing.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A socket's number in the mock (not an fd: a connection waiting to be accepted has none).
pub(crate) type SockId = u64;

/// What a socket is doing.
#[derive(Debug)]
pub(crate) enum State {
    /// Made by `socket`, neither connected nor listening.
    Fresh,
    /// Listening at its address: connections wait here to be accepted, each the accepting
    /// side's socket and the connecting side's address.
    Listening(VecDeque<(SockId, SocketAddr)>),
    /// One end of a connection.
    Connected {
        /// The other end (gone once it is closed).
        peer: SockId,
        /// Sent by the peer, not yet received.
        rx: Vec<u8>,
        /// The peer closed: once `rx` is drained, receives return 0 and sends `EPIPE`.
        hung_up: bool,
        /// Nothing more will arrive (the peer shut down its writing side, or this end its
        /// reading side): once `rx` is drained, receives return 0.
        eof: bool,
        /// This end shut down its writing side: sends fail with `EPIPE`.
        wr_shut: bool,
    },
    /// A datagram socket, connected to this address if it is.
    Datagram(Option<SocketAddr>),
}

/// A socket.
#[derive(Debug)]
pub(crate) struct Socket {
    /// `AF_*`.
    pub(crate) domain: i32,
    /// Its own address, once it has one (listening, or connected).
    pub(crate) local: Option<SocketAddr>,
    pub(crate) state: State,
}

/// The loopback address of `addr`'s family (for an unspecified address).
pub(crate) fn loopback(addr: SocketAddr) -> IpAddr {
    match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// Whether a listener at `listening` takes connections to `to`: the same port and family,
/// and the same address or a wildcard one.
pub(crate) fn reaches(listening: SocketAddr, to: SocketAddr) -> bool {
    listening.port() == to.port()
        && listening.is_ipv4() == to.is_ipv4()
        && (listening.ip() == to.ip() || listening.ip().is_unspecified())
}
