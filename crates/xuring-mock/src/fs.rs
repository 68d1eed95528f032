//! The mock's filesystem: directories, regular files and symbolic links by path, in memory.
//!
//! Paths resolve like Linux's, component by component from `/` (the mock's working directory
//! is `/`, so relative paths start there too): `.` and empty components are skipped, `..`
//! goes up (never above `/`), symbolic links are followed (at most [`MAX_LINKS`] of them,
//! `ELOOP` past that), a component under a file is `ENOTDIR`, a missing one `ENOENT`.

use std::collections::BTreeMap;

use xuring_core::Errno;

/// How many symbolic links one path may go through (Linux's `MAXSYMLINKS`).
const MAX_LINKS: u32 = 40;

/// An inode number.
pub(crate) type Ino = u64;

/// The root directory's inode.
const ROOT: Ino = 1;

/// What an inode is.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A directory: its entries by name.
    Dir(BTreeMap<Vec<u8>, Ino>),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
}

/// An inode: what it is and its permission bits.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    /// Permission bits (`0o7777` at most).
    pub(crate) perm: u32,
}

impl Node {
    /// `st_mode`: the file type and the permission bits.
    pub(crate) fn mode(&self) -> u32 {
        let ty = match self.kind {
            Kind::File(_) => libc::S_IFREG,
            Kind::Dir(_) => libc::S_IFDIR,
            Kind::Symlink(_) => libc::S_IFLNK,
        };
        ty | self.perm
    }

    /// `st_size`: a file's length, a link's target length, a directory's nominal 4096.
    pub(crate) fn size(&self) -> u64 {
        match &self.kind {
            Kind::File(data) => data.len() as u64,
            Kind::Dir(_) => 4096,
            Kind::Symlink(target) => target.len() as u64,
        }
    }
}

/// Where a path led: the directory holding its last component, that component, and the inode
/// it names if it exists.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) dir: Ino,
    pub(crate) name: Vec<u8>,
    pub(crate) node: Option<Ino>,
}

/// `openat2`'s path resolution rules (`RESOLVE_*`) that the mock models. `RESOLVE_NO_XDEV`
/// and `RESOLVE_NO_MAGICLINKS` need nothing (one filesystem, no magic links), and
/// `RESOLVE_CACHED` always succeeds (everything is "cached").
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Resolve {
    /// `RESOLVE_BENEATH`: `EXDEV` for an absolute path or link, or `..` above the start.
    pub(crate) beneath: bool,
    /// `RESOLVE_IN_ROOT`: the start is `/` for this lookup (`..` stops there).
    pub(crate) in_root: bool,
    /// `RESOLVE_NO_SYMLINKS`: `ELOOP` for any symbolic link on the way.
    pub(crate) no_symlinks: bool,
}

/// The filesystem: every inode by number, `/` at [`ROOT`]. Files that only an fd reaches (a
/// [`set_file`](crate::MockControl::set_file)) are inodes no directory names.
#[derive(Debug)]
pub(crate) struct Fs {
    nodes: BTreeMap<Ino, Node>,
    next_ino: Ino,
}

impl Default for Fs {
    fn default() -> Fs {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ROOT,
            Node {
                kind: Kind::Dir(BTreeMap::new()),
                perm: 0o755,
            },
        );
        Fs {
            nodes,
            next_ino: ROOT + 1,
        }
    }
}

/// The components of `path`, without empty ones and `.`.
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

impl Fs {
    /// `/`.
    pub(crate) fn root(&self) -> Ino {
        ROOT
    }

    pub(crate) fn node(&self, ino: Ino) -> &Node {
        &self.nodes[&ino]
    }

    pub(crate) fn node_mut(&mut self, ino: Ino) -> &mut Node {
        self.nodes.get_mut(&ino).expect("a live inode")
    }

    /// A new inode, named by no directory yet.
    pub(crate) fn make(&mut self, kind: Kind, perm: u32) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                kind,
                perm: perm & 0o7777,
            },
        );
        ino
    }

    /// Names `ino` as `name` in directory `dir`.
    pub(crate) fn link(&mut self, dir: Ino, name: Vec<u8>, ino: Ino) {
        if let Kind::Dir(entries) = &mut self.node_mut(dir).kind {
            entries.insert(name, ino);
        }
    }

    /// Removes the entry `name` from directory `dir`. The inode stays (an fd may still reach
    /// it).
    pub(crate) fn unlink(&mut self, dir: Ino, name: &[u8]) {
        if let Kind::Dir(entries) = &mut self.node_mut(dir).kind {
            entries.remove(name);
        }
    }

    /// How many directory entries name `ino` (a file's link count).
    pub(crate) fn names_of(&self, ino: Ino) -> u32 {
        self.nodes
            .values()
            .map(|node| match &node.kind {
                Kind::Dir(entries) => entries.values().filter(|&&e| e == ino).count() as u32,
                _ => 0,
            })
            .sum()
    }

    /// Whether directory `dir` is `ancestor` or lies below it.
    pub(crate) fn is_within(&self, dir: Ino, ancestor: Ino) -> bool {
        if dir == ancestor {
            return true;
        }
        // A directory has one name: find its parent, up to the root.
        let mut at = dir;
        while at != ROOT {
            let parent = self.nodes.iter().find_map(|(&ino, node)| match &node.kind {
                Kind::Dir(entries) if entries.values().any(|&e| e == at) => Some(ino),
                _ => None,
            });
            match parent {
                Some(p) if p == ancestor => return true,
                Some(p) => at = p,
                None => return false,
            }
        }
        false
    }

    /// Resolves `path` from `/`, following a final symbolic link if `follow`.
    pub(crate) fn lookup(&self, path: &[u8], follow: bool) -> Result<Found, Errno> {
        self.lookup_at(ROOT, path, follow, Resolve::default())
    }

    /// The directories from `/` down to `dir` (`ENOENT` for a directory no longer named).
    fn chain_to(&self, dir: Ino) -> Result<Vec<Ino>, Errno> {
        let mut chain = vec![dir];
        let mut at = dir;
        while at != ROOT {
            let parent = self.nodes.iter().find_map(|(&ino, node)| match &node.kind {
                Kind::Dir(entries) if entries.values().any(|&e| e == at) => Some(ino),
                _ => None,
            });
            at = parent.ok_or(Errno::ENOENT)?;
            chain.push(at);
        }
        chain.reverse();
        Ok(chain)
    }

    /// Resolves `path` relative to directory `start` (an absolute path from `/`), following
    /// a final symbolic link if `follow`, under `openat2`'s `RESOLVE_*` rules in `how`.
    pub(crate) fn lookup_at(
        &self,
        start: Ino,
        path: &[u8],
        follow: bool,
        how: Resolve,
    ) -> Result<Found, Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut dirs = self.chain_to(start)?;
        // Where `..` and absolute paths stop: `/`, or the start with BENEATH or IN_ROOT.
        let floor = if how.beneath || how.in_root {
            dirs.len()
        } else {
            1
        };
        let mut todo = components(path);
        todo.reverse();
        if path.first() == Some(&b'/') {
            if how.beneath {
                return Err(Errno::EXDEV);
            }
            dirs.truncate(floor);
        }
        let mut links = 0;
        while let Some(name) = todo.pop() {
            let dir = *dirs.last().expect("the floor is never popped");
            if name == b".." {
                if dirs.len() > floor {
                    dirs.pop();
                } else if how.beneath {
                    return Err(Errno::EXDEV);
                }
                continue;
            }
            let last = todo.is_empty();
            let Kind::Dir(entries) = &self.node(dir).kind else {
                return Err(Errno::ENOTDIR);
            };
            let Some(&ino) = entries.get(&name) else {
                return if last {
                    Ok(Found {
                        dir,
                        name,
                        node: None,
                    })
                } else {
                    Err(Errno::ENOENT)
                };
            };
            match &self.node(ino).kind {
                Kind::Symlink(target) if !last || follow => {
                    if how.no_symlinks {
                        return Err(Errno::ELOOP);
                    }
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::ELOOP);
                    }
                    if target.first() == Some(&b'/') {
                        if how.beneath {
                            return Err(Errno::EXDEV);
                        }
                        dirs.truncate(floor);
                    }
                    let mut more = components(target);
                    more.reverse();
                    if more.is_empty() && last {
                        // A link to `/` (or to `.`): what it names is the directory itself.
                        let dir = *dirs.last().expect("the floor is never popped");
                        return Ok(Found {
                            dir,
                            name: Vec::new(),
                            node: Some(dir),
                        });
                    }
                    todo.extend(more);
                }
                Kind::Dir(_) if !last => dirs.push(ino),
                _ if last => {
                    return Ok(Found {
                        dir,
                        name,
                        node: Some(ino),
                    });
                }
                _ => return Err(Errno::ENOTDIR),
            }
        }
        // The path named a directory through `..`, `.` or `/` alone.
        let dir = *dirs.last().expect("the floor is never popped");
        Ok(Found {
            dir,
            name: Vec::new(),
            node: Some(dir),
        })
    }

    /// Creates the directories of `path` that are missing (like `mkdir -p`). Returns the
    /// last one.
    pub(crate) fn make_dirs(&mut self, path: &[u8]) -> Result<Ino, Errno> {
        let mut dir = ROOT;
        let mut walked = Vec::new();
        for name in components(path) {
            walked.push(b'/');
            walked.extend_from_slice(&name);
            let found = self.lookup(&walked, true)?;
            dir = match found.node {
                Some(ino) if matches!(self.node(ino).kind, Kind::Dir(_)) => ino,
                Some(_) => return Err(Errno::ENOTDIR),
                None => {
                    let ino = self.make(Kind::Dir(BTreeMap::new()), 0o755);
                    self.link(found.dir, found.name, ino);
                    ino
                }
            };
        }
        Ok(dir)
    }

    /// Makes `path` name a new inode of `kind`, creating missing parent directories and
    /// replacing whatever the path named before.
    pub(crate) fn put(&mut self, path: &[u8], kind: Kind, perm: u32) -> Result<Ino, Errno> {
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Errno::EINVAL);
        }
        let dir = self.make_dirs(parent)?;
        let ino = self.make(kind, perm);
        self.link(dir, name.to_vec(), ino);
        Ok(ino)
    }
}
