//! `Errno`: a small `Copy` error code, as the kernel reports it.

use core::fmt;

macro_rules! errnos {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: Errno = Errno(libc::$name);
            )*

            /// The symbolic name (`"EINTR"`), if this is one of the common codes.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( libc::$name => Some(stringify!($name)), )*
                    _ => None,
                }
            }
        }
    };
}

/// An error number (`errno`) from a syscall or a completion's negative `res`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Errno(i32);

// EAGAIN == EWOULDBLOCK and EDEADLK == EDEADLOCK on Linux: only one name of each pair appears.
errnos![
    EPERM,
    ENOENT,
    ESRCH,
    EINTR,
    EIO,
    ENXIO,
    E2BIG,
    ENOEXEC,
    EBADF,
    ECHILD,
    EAGAIN,
    ENOMEM,
    EACCES,
    EFAULT,
    EBUSY,
    EEXIST,
    EXDEV,
    ENODEV,
    ENOTDIR,
    EISDIR,
    EINVAL,
    ENFILE,
    EMFILE,
    ENOTTY,
    EFBIG,
    ENOSPC,
    ESPIPE,
    EROFS,
    EMLINK,
    EPIPE,
    ERANGE,
    ENAMETOOLONG,
    ENOSYS,
    ENOTEMPTY,
    ELOOP,
    EOVERFLOW,
    EOPNOTSUPP,
    ENOTSOCK,
    EDESTADDRREQ,
    EMSGSIZE,
    EPROTOTYPE,
    ENOPROTOOPT,
    EPROTONOSUPPORT,
    EAFNOSUPPORT,
    EADDRINUSE,
    EADDRNOTAVAIL,
    ENETDOWN,
    ENETUNREACH,
    ECONNABORTED,
    ECONNRESET,
    ENOBUFS,
    EISCONN,
    ENOTCONN,
    ETIMEDOUT,
    ECONNREFUSED,
    EHOSTUNREACH,
    EALREADY,
    EINPROGRESS,
    ECANCELED,
    ETIME,
    EBADFD,
    EOWNERDEAD,
];

impl Errno {
    /// The error with this number. `code` should be positive.
    pub const fn from_raw(code: i32) -> Errno {
        Errno(code)
    }

    /// The number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The calling thread's `errno` after a failed libc call.
    pub fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    /// Decodes a kernel return value: `>= 0` is a result, `< 0` is `-errno`.
    #[inline]
    pub const fn result(res: i32) -> Result<u32, Errno> {
        if res >= 0 {
            Ok(res as u32)
        } else {
            Err(Errno(res.wrapping_neg()))
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::io::Error::from_raw_os_error(self.0);
        match self.name() {
            Some(name) => write!(f, "{name}: {text}"),
            None => write!(f, "errno {}: {text}", self.0),
        }
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> std::io::Error {
        std::io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_splits_negative_errno() {
        assert_eq!(Errno::result(0), Ok(0));
        assert_eq!(Errno::result(4096), Ok(4096));
        assert_eq!(Errno::result(-libc::EAGAIN), Err(Errno::EAGAIN));
        assert_eq!(Errno::result(i32::MIN), Err(Errno::from_raw(i32::MIN)));
    }

    #[test]
    fn names_and_display() {
        assert_eq!(Errno::ECANCELED.name(), Some("ECANCELED"));
        assert_eq!(format!("{:?}", Errno::ENOENT), "ENOENT");
        assert_eq!(format!("{:?}", Errno::from_raw(4000)), "Errno(4000)");
        assert!(Errno::EINTR.to_string().starts_with("EINTR: "));
        let io: std::io::Error = Errno::ENOENT.into();
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
