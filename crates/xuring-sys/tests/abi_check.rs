//! The Rust ABI of `xuring_sys` compared with the system's `<linux/io_uring.h>`.
//!
//! A C program is generated from the Rust side (one `printf` per struct size, alignment, field
//! offset, field size and constant), compiled with the system C compiler against
//! `/usr/include/linux/io_uring.h`, and run; its output is compared with the Rust values and
//! every mismatch is reported at once.
//!
//! Besides the values, the test checks coverage in both directions:
//! - every member of every mirrored C struct, as read from the header's text, is mapped to a
//!   Rust field (union members included), and every Rust field is named by the mapping (a
//!   destructuring pattern without `..` fails to compile when a Rust field is added);
//! - every `#define` of the header is either compared or listed in [`NOT_MIRRORED`] with the
//!   reason;
//! - `IORING_OP_LAST` and `IORING_REGISTER_LAST` equal the length of the gap-free Rust lists.
//!
//! The test never skips: without the header or a C compiler it fails and says what to install.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use xuring_sys::abi;
use xuring_sys::{
    AcceptFlags, CancelFlags, CqRingFlags, CqeFlags, EnterFlags, FeatureFlags, FsyncFlags,
    MsgRingFlags, OPCODE_COUNT, Opcode, PollFlags, RecvSendFlags, SetupFlags, SqRingFlags,
    SqeFlags, TimeoutFlags,
};

const IO_URING_H: &str = "/usr/include/linux/io_uring.h";
const TIME_TYPES_H: &str = "/usr/include/linux/time_types.h";
const INSTALL_HINT: &str = "install the kernel headers and a C compiler \
     (`apt-get install linux-libc-dev gcc libc6-dev`; the CI script `.ci/run` installs them). \
     This test never skips.";

/// `#define`s of `<linux/io_uring.h>` that xuring-sys deliberately has no Rust value for.
const NOT_MIRRORED: &[(&str, &str)] = &[
    ("LINUX_IO_URING_H", "the header's include guard"),
    (
        "IORING_URING_CMD_FIXED",
        "sqe.uring_cmd_flags: there is no URING_CMD flag family (URING_CMD is unused)",
    ),
    (
        "IORING_SEND_ZC_REPORT_USAGE",
        "RecvSendFlags has no SEND_ZC_REPORT_USAGE (zero-copy send is unused)",
    ),
    (
        "IORING_NOTIF_USAGE_ZC_COPIED",
        "a cqe.res value of zero-copy notifications (unused)",
    ),
    (
        "IORING_RSRC_REGISTER_SPARSE",
        "struct io_uring_rsrc_register is not mirrored",
    ),
];

// ---------------------------------------------------------------------------------------------
// Checks: one C expression each, with what the Rust side expects of its value.
// ---------------------------------------------------------------------------------------------

/// What the Rust side expects of the value of a C expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Eq(i128),
    AtMost(i128),
    AtLeast(i128),
}

impl Expect {
    fn holds(self, c: i128) -> bool {
        match self {
            Expect::Eq(r) => c == r,
            Expect::AtMost(r) => c <= r,
            Expect::AtLeast(r) => c >= r,
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Eq(r) => write!(f, "== {r}"),
            Expect::AtMost(r) => write!(f, "<= {r}"),
            Expect::AtLeast(r) => write!(f, ">= {r}"),
        }
    }
}

/// One comparison: `key` is printed by the C program next to the value of `c_expr`.
#[derive(Clone, Debug)]
struct Check {
    key: String,
    c_expr: String,
    expect: Expect,
    what: String,
}

impl Check {
    fn new(key: String, c_expr: String, expect: Expect, what: String) -> Check {
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_:.[]".contains(&b)),
            "check key {key:?} must be printable inside a C string literal without escapes"
        );
        Check {
            key,
            c_expr,
            expect,
            what,
        }
    }
}

/// What the C side made of a list of checks.
#[derive(Debug, Default)]
struct CEval {
    /// The program's output: `key value` lines.
    stdout: String,
    /// Checks whose line the compiler rejected, with its error.
    rejected: BTreeMap<String, String>,
}

/// Compares the C side's values with the Rust expectations; one line per mismatch.
fn compare(checks: &[Check], eval: &CEval) -> Vec<String> {
    let mut mismatches = Vec::new();
    let mut values: BTreeMap<&str, i128> = BTreeMap::new();
    for line in eval.stdout.lines() {
        let parsed = line
            .rsplit_once(' ')
            .and_then(|(k, v)| v.parse::<i128>().ok().map(|v| (k, v)));
        match parsed {
            Some((key, value)) => {
                if values.insert(key, value).is_some() {
                    mismatches.push(format!("{key}: printed twice by the C program"));
                }
            }
            None => mismatches.push(format!("unparsable C output line {line:?}")),
        }
    }
    let mut known = BTreeSet::new();
    for check in checks {
        known.insert(check.key.as_str());
        if let Some(error) = eval.rejected.get(&check.key) {
            mismatches.push(format!(
                "{}: the C compiler rejects `{}`: {error} ({})",
                check.key, check.c_expr, check.what
            ));
            continue;
        }
        match values.get(check.key.as_str()) {
            None => mismatches.push(format!(
                "{}: no value from the C program ({})",
                check.key, check.what
            )),
            Some(&c) if !check.expect.holds(c) => mismatches.push(format!(
                "{}: C says {c}, Rust expects {} ({})",
                check.key, check.expect, check.what
            )),
            Some(_) => {}
        }
    }
    for key in values.keys() {
        if !known.contains(key) {
            mismatches.push(format!("{key}: printed by the C program but not checked"));
        }
    }
    mismatches
}

/// Keys listed more than once (e.g. a C name used twice in the Rust tables).
fn duplicate_keys(checks: &[Check]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    checks
        .iter()
        .filter(|c| !seen.insert(c.key.as_str()))
        .map(|c| format!("{}: listed twice on the Rust side ({})", c.key, c.what))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The C side: generate, compile, run.
// ---------------------------------------------------------------------------------------------

/// The system C compiler: `cc`, else `gcc`.
fn c_compiler() -> &'static str {
    for cc in ["cc", "gcc"] {
        let works = Command::new(cc)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return cc;
        }
    }
    panic!("no C compiler: neither `cc` nor `gcc` runs; {INSTALL_HINT}");
}

/// Reads a system header, failing with the install hint when it is missing.
fn read_header(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}; {INSTALL_HINT}"))
}

/// The C program for `checks`, and the source line of each check.
fn c_program(checks: &[&Check]) -> (String, Vec<usize>) {
    let mut src = format!(
        "/* Generated by crates/xuring-sys/tests/abi_check.rs. */\n\
         #include <stddef.h>\n\
         #include <stdio.h>\n\
         #include \"{IO_URING_H}\"\n\
         #include \"{TIME_TYPES_H}\"\n\
         int main(void) {{\n"
    );
    let mut lines = Vec::with_capacity(checks.len());
    for check in checks {
        lines.push(src.lines().count() + 1);
        writeln!(
            src,
            "    printf(\"%s %lld\\n\", \"{}\", (long long)({}));",
            check.key, check.c_expr
        )
        .expect("writing to a String");
    }
    src.push_str("    return 0;\n}\n");
    (src, lines)
}

/// A fresh directory under the target's temporary directory.
fn scratch_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "abi_check-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Compiles and runs the C program for `checks`.
///
/// A check whose line does not compile (a name the header lacks, a member that is not there)
/// is recorded as rejected and the program is rebuilt without it, so that one bad name does
/// not hide the other mismatches. Any other compiler or run failure panics.
fn evaluate_in_c(checks: &[Check], tag: &str) -> CEval {
    let cc = c_compiler();
    let dir = scratch_dir(tag);
    let src_path = dir.join("abi_check.c");
    let exe_path = dir.join("abi_check");
    let mut eval = CEval::default();
    let mut active: Vec<&Check> = checks.iter().collect();
    for _attempt in 0..4 {
        let (src, lines) = c_program(&active);
        std::fs::write(&src_path, &src)
            .unwrap_or_else(|e| panic!("write {}: {e}", src_path.display()));
        let out = Command::new(cc)
            .env("LC_ALL", "C")
            .arg("-std=gnu11")
            .arg("-o")
            .arg(&exe_path)
            .arg(&src_path)
            .output()
            .unwrap_or_else(|e| panic!("run {cc}: {e}; {INSTALL_HINT}"));
        if out.status.success() {
            let run = Command::new(&exe_path)
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e}", exe_path.display()));
            assert!(
                run.status.success(),
                "{} failed ({}): {}",
                exe_path.display(),
                run.status,
                String::from_utf8_lossy(&run.stderr)
            );
            eval.stdout = String::from_utf8(run.stdout).expect("the C program prints ASCII");
            let _ = std::fs::remove_dir_all(&dir);
            return eval;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("{}:", src_path.display());
        let mut bad_lines: BTreeMap<usize, String> = BTreeMap::new();
        let mut unattributed = false;
        for line in stderr.lines() {
            if !line.contains(" error: ") {
                continue;
            }
            let line_no = line
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse::<usize>().ok());
            match line_no.and_then(|n| lines.iter().position(|&l| l == n)) {
                Some(i) => {
                    let msg = line.split_once(" error: ").map_or(line, |(_, m)| m);
                    bad_lines.entry(i).or_insert_with(|| msg.to_owned());
                }
                None => unattributed = true,
            }
        }
        assert!(
            !unattributed && !bad_lines.is_empty(),
            "{cc} failed on {} outside the generated checks (missing headers? {INSTALL_HINT}):\n{stderr}",
            src_path.display()
        );
        for (i, msg) in bad_lines.iter().rev() {
            eval.rejected.insert(active[*i].key.clone(), msg.clone());
            active.remove(*i);
        }
    }
    panic!(
        "{cc} still fails on {} after dropping the rejected checks {:?}",
        src_path.display(),
        eval.rejected
    );
}

// ---------------------------------------------------------------------------------------------
// Struct layouts: which Rust field each C member maps to.
// ---------------------------------------------------------------------------------------------

/// How a C member relates to the Rust field it maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Same offset, same size, and (for integers) same signedness.
    Exact,
    /// A union alias: same offset and size, but another signedness (e.g. `file_index: __u32`
    /// over `splice_fd_in: __s32`).
    Alias,
    /// A union member narrower than the flattened Rust field, starting at its start (e.g.
    /// `poll_events: __u16` in `op_flags: u32`, `addr_len: __u16` in `splice_fd_in: i32`):
    /// only the offset must be equal; the size must not exceed the Rust field's.
    Prefix,
    /// Padding of an anonymous struct inside a union, in the middle of the flattened Rust
    /// field (e.g. `__pad1` in `off`): it must lie entirely within the Rust field.
    Inside,
}

#[derive(Clone, Debug)]
struct FieldMap {
    c: &'static str,
    rust: &'static str,
    rust_offset: usize,
    rust_size: usize,
    rust_signed: Option<bool>,
    rule: Rule,
}

/// A C flexible array member (`big_cqe[]`, `ops[]`): Rust leaves it out of the struct.
#[derive(Clone, Debug)]
struct Flexible {
    c: &'static str,
    rust_elem_size: usize,
}

#[derive(Clone, Debug)]
struct StructLayout {
    name: &'static str,
    header: &'static str,
    rust_size: usize,
    rust_align: usize,
    fields: Vec<FieldMap>,
    flexible: Vec<Flexible>,
}

/// The signedness of a Rust field's type, `None` for aggregates.
trait FieldKind {
    const SIGNED: Option<bool>;
}

macro_rules! field_kinds {
    ($($t:ty => $signed:expr),+ $(,)?) => {
        $(impl FieldKind for $t {
            const SIGNED: Option<bool> = $signed;
        })+
    };
}

field_kinds! {
    u8 => Some(false),
    u16 => Some(false),
    u32 => Some(false),
    u64 => Some(false),
    i32 => Some(true),
    i64 => Some(true),
    abi::io_sqring_offsets => None,
    abi::io_cqring_offsets => None,
}

impl<T, const N: usize> FieldKind for [T; N] {
    const SIGNED: Option<bool> = None;
}

/// Size and signedness of the field that `get` projects to.
fn field_facts<T, F: FieldKind>(_get: fn(&T) -> &F) -> (usize, Option<bool>) {
    (size_of::<F>(), F::SIGNED)
}

/// `layout!(header, rust_struct { rust_field => [c_member: Rule, ...], ... } flexible { ... })`
macro_rules! layout {
    (
        $header:expr, $T:ident {
            $( $rf:ident => [ $( $c:ident : $rule:ident ),+ $(,)? ] ),+ $(,)?
        }
        $( flexible { $( $flex:ident : $elem:ty ),+ $(,)? } )?
    ) => {{
        // Names every Rust field without `..`: adding a field to the Rust struct breaks this
        // pattern, so the mapping cannot silently fall behind the Rust side.
        let _every_rust_field_is_mapped = |v: abi::$T| {
            let abi::$T { $( $rf: _ ),+ } = v;
        };
        StructLayout {
            name: stringify!($T),
            header: $header,
            rust_size: size_of::<abi::$T>(),
            rust_align: align_of::<abi::$T>(),
            fields: vec![$($({
                let (rust_size, rust_signed) = field_facts(|s: &abi::$T| &s.$rf);
                FieldMap {
                    c: stringify!($c),
                    rust: stringify!($rf),
                    rust_offset: core::mem::offset_of!(abi::$T, $rf),
                    rust_size,
                    rust_signed,
                    rule: Rule::$rule,
                }
            },)+)+],
            flexible: vec![$($(
                Flexible { c: stringify!($flex), rust_elem_size: size_of::<$elem>() },
            )+)?],
        }
    }};
}

/// Every mirrored struct, with every member of the C definition (read from the header).
fn layouts() -> Vec<StructLayout> {
    vec![
        layout!(IO_URING_H, io_uring_sqe {
            opcode => [opcode: Exact],
            flags => [flags: Exact],
            ioprio => [ioprio: Exact],
            fd => [fd: Exact],
            // union { off; addr2; struct { cmd_op; __pad1; } }
            off => [off: Exact, addr2: Exact, cmd_op: Prefix, __pad1: Inside],
            // union { addr; splice_off_in; }
            addr => [addr: Exact, splice_off_in: Exact],
            len => [len: Exact],
            // The op-flags union; `poll_events` is the 16-bit compatibility member.
            op_flags => [
                rw_flags: Exact,
                fsync_flags: Exact,
                poll_events: Prefix,
                poll32_events: Exact,
                sync_range_flags: Exact,
                msg_flags: Exact,
                timeout_flags: Exact,
                accept_flags: Exact,
                cancel_flags: Exact,
                open_flags: Exact,
                statx_flags: Exact,
                fadvise_advice: Exact,
                splice_flags: Exact,
                rename_flags: Exact,
                unlink_flags: Exact,
                hardlink_flags: Exact,
                xattr_flags: Exact,
                msg_ring_flags: Exact,
                uring_cmd_flags: Exact,
            ],
            user_data => [user_data: Exact],
            // packed union { buf_index; buf_group; }
            buf_index => [buf_index: Exact, buf_group: Exact],
            personality => [personality: Exact],
            // union { __s32 splice_fd_in; __u32 file_index; struct { addr_len; __pad3[1]; } }
            splice_fd_in => [splice_fd_in: Exact, file_index: Alias, addr_len: Prefix, __pad3: Inside],
            // union { struct { addr3; __pad2[1]; }; __u8 cmd[0]; } -- `cmd` has size 0 and
            // runs on into the second half of a 128-byte SQE.
            addr3 => [addr3: Exact, cmd: Prefix],
            __pad2 => [__pad2: Exact],
        }),
        layout!(IO_URING_H, io_uring_cqe {
            user_data => [user_data: Exact],
            res => [res: Exact],
            flags => [flags: Exact],
        } flexible { big_cqe: u64 }),
        layout!(IO_URING_H, io_sqring_offsets {
            head => [head: Exact],
            tail => [tail: Exact],
            ring_mask => [ring_mask: Exact],
            ring_entries => [ring_entries: Exact],
            flags => [flags: Exact],
            dropped => [dropped: Exact],
            array => [array: Exact],
            resv1 => [resv1: Exact],
            resv2 => [resv2: Exact],
        }),
        layout!(IO_URING_H, io_cqring_offsets {
            head => [head: Exact],
            tail => [tail: Exact],
            ring_mask => [ring_mask: Exact],
            ring_entries => [ring_entries: Exact],
            overflow => [overflow: Exact],
            cqes => [cqes: Exact],
            flags => [flags: Exact],
            resv1 => [resv1: Exact],
            resv2 => [resv2: Exact],
        }),
        layout!(IO_URING_H, io_uring_params {
            sq_entries => [sq_entries: Exact],
            cq_entries => [cq_entries: Exact],
            flags => [flags: Exact],
            sq_thread_cpu => [sq_thread_cpu: Exact],
            sq_thread_idle => [sq_thread_idle: Exact],
            features => [features: Exact],
            wq_fd => [wq_fd: Exact],
            resv => [resv: Exact],
            sq_off => [sq_off: Exact],
            cq_off => [cq_off: Exact],
        }),
        layout!(IO_URING_H, io_uring_probe_op {
            op => [op: Exact],
            resv => [resv: Exact],
            flags => [flags: Exact],
            resv2 => [resv2: Exact],
        }),
        layout!(IO_URING_H, io_uring_probe {
            last_op => [last_op: Exact],
            ops_len => [ops_len: Exact],
            resv => [resv: Exact],
            resv2 => [resv2: Exact],
        } flexible { ops: abi::io_uring_probe_op }),
        layout!(IO_URING_H, io_uring_getevents_arg {
            sigmask => [sigmask: Exact],
            sigmask_sz => [sigmask_sz: Exact],
            pad => [pad: Exact],
            ts => [ts: Exact],
        }),
        layout!(TIME_TYPES_H, __kernel_timespec {
            tv_sec => [tv_sec: Exact],
            tv_nsec => [tv_nsec: Exact],
        }),
        layout!(IO_URING_H, io_uring_files_update {
            offset => [offset: Exact],
            resv => [resv: Exact],
            fds => [fds: Exact],
        }),
    ]
}

/// The C-side checks of one struct layout.
fn layout_checks(layout: &StructLayout) -> Vec<Check> {
    let t = layout.name;
    let as_i = |n: usize| i128::try_from(n).expect("sizes fit in i128");
    let mut checks = vec![
        Check::new(
            format!("sizeof:{t}"),
            format!("sizeof(struct {t})"),
            Expect::Eq(as_i(layout.rust_size)),
            format!("size_of::<abi::{t}>()"),
        ),
        Check::new(
            format!("alignof:{t}"),
            format!("_Alignof(struct {t})"),
            Expect::Eq(as_i(layout.rust_align)),
            format!("align_of::<abi::{t}>()"),
        ),
    ];
    for f in &layout.fields {
        let (c, r) = (f.c, f.rust);
        let member = format!("(((struct {t} *)0)->{c})");
        let offset = format!("offsetof(struct {t}, {c})");
        let what = format!("C `{t}.{c}` vs Rust `abi::{t}::{r}` ({:?})", f.rule);
        let start = as_i(f.rust_offset);
        let end = as_i(f.rust_offset + f.rust_size);
        let size = as_i(f.rust_size);
        match f.rule {
            Rule::Exact | Rule::Alias | Rule::Prefix => {
                checks.push(Check::new(
                    format!("offsetof:{t}.{c}"),
                    offset,
                    Expect::Eq(start),
                    what.clone(),
                ));
                let size_expect = if f.rule == Rule::Prefix {
                    Expect::AtMost(size)
                } else {
                    Expect::Eq(size)
                };
                checks.push(Check::new(
                    format!("sizeof:{t}.{c}"),
                    format!("sizeof{member}"),
                    size_expect,
                    what.clone(),
                ));
            }
            Rule::Inside => {
                checks.push(Check::new(
                    format!("offsetof:{t}.{c}"),
                    offset.clone(),
                    Expect::AtLeast(start),
                    what.clone(),
                ));
                checks.push(Check::new(
                    format!("end:{t}.{c}"),
                    format!("{offset} + sizeof{member}"),
                    Expect::AtMost(end),
                    what.clone(),
                ));
            }
        }
        if let (Rule::Exact, Some(signed)) = (f.rule, f.rust_signed) {
            checks.push(Check::new(
                format!("signed:{t}.{c}"),
                format!("(__typeof__{member})-1 < 0"),
                Expect::Eq(i128::from(signed)),
                what,
            ));
        }
    }
    for flex in &layout.flexible {
        let c = flex.c;
        checks.push(Check::new(
            format!("offsetof:{t}.{c}"),
            format!("offsetof(struct {t}, {c})"),
            Expect::Eq(as_i(layout.rust_size)),
            format!("C flexible array `{t}.{c}[]` starts where Rust `abi::{t}` ends"),
        ));
        checks.push(Check::new(
            format!("sizeof:{t}.{c}[0]"),
            format!("sizeof(((struct {t} *)0)->{c}[0])"),
            Expect::Eq(as_i(flex.rust_elem_size)),
            format!("element of C flexible array `{t}.{c}[]`"),
        ));
    }
    checks
}

// ---------------------------------------------------------------------------------------------
// Reading the header's text, for coverage.
// ---------------------------------------------------------------------------------------------

/// The text without comments and preprocessor lines.
fn c_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        out.push(' ');
        rest = rest[i + 2..]
            .find("*/")
            .map_or("", |j| &rest[i + 2 + j + 2..]);
    }
    out.push_str(rest);
    let mut code = String::with_capacity(out.len());
    let mut continued = false;
    for line in out.lines() {
        let line = line.split("//").next().unwrap_or("");
        let directive = continued || line.trim_start().starts_with('#');
        continued = directive && line.trim_end().ends_with('\\');
        if !directive {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

fn tokens(code: &str) -> Vec<&str> {
    let mut toks = Vec::new();
    let mut start = None;
    for (i, ch) in code.char_indices() {
        let word = ch.is_ascii_alphanumeric() || ch == '_';
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                toks.push(&code[s..i]);
                start = None;
            }
            _ => {}
        }
        if !word && !ch.is_whitespace() {
            toks.push(&code[i..i + ch.len_utf8()]);
        }
    }
    if let Some(s) = start {
        toks.push(&code[s..]);
    }
    toks
}

/// The name a declaration (the tokens before its `;`) declares, if any.
fn declared_name(decl: &[&str]) -> Option<String> {
    let mut kept = Vec::new();
    let mut i = 0;
    while i < decl.len() {
        if decl[i] == "[" {
            while i < decl.len() && decl[i] != "]" {
                i += 1;
            }
        } else if decl[i] == "__attribute__" {
            let mut depth = 0;
            i += 1;
            while i < decl.len() {
                match decl[i] {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                i += 1;
            }
        } else {
            kept.push(decl[i]);
        }
        i += 1;
    }
    kept.last()
        .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
        .map(|t| (*t).to_owned())
}

/// The members of `struct name { ... }` in a header's text, members of anonymous unions and
/// structs included; `None` if the header does not define the struct.
fn c_struct_members(header_text: &str, name: &str) -> Option<Vec<String>> {
    let code = c_code(header_text);
    let toks = tokens(&code);
    let start = toks
        .windows(3)
        .position(|w| w[0] == "struct" && w[1] == name && w[2] == "{")?;
    let mut members = Vec::new();
    let mut decl: Vec<&str> = Vec::new();
    let mut depth = 0usize;
    for &tok in &toks[start + 2..] {
        match tok {
            "{" => {
                depth += 1;
                decl.clear();
            }
            "}" => {
                depth -= 1;
                decl.clear();
                if depth == 0 {
                    return Some(members);
                }
            }
            ";" => {
                members.extend(declared_name(&decl));
                decl.clear();
            }
            _ => decl.push(tok),
        }
    }
    None
}

/// The names of the header's `#define`s.
fn c_defines(header_text: &str) -> Vec<String> {
    header_text
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix('#')?.trim_start();
            let rest = rest.strip_prefix("define")?;
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Members of the C struct (as the header defines it) that the layout does not map, and
/// mapped names that the header's struct does not have.
fn unmapped_members(layout: &StructLayout, c_members: &[String]) -> Vec<String> {
    let mapped: BTreeSet<&str> = layout
        .fields
        .iter()
        .map(|f| f.c)
        .chain(layout.flexible.iter().map(|f| f.c))
        .collect();
    let in_header: BTreeSet<&str> = c_members.iter().map(String::as_str).collect();
    let mut out: Vec<String> = in_header
        .difference(&mapped)
        .map(|m| {
            format!(
                "C member `{}.{m}` has no mapping to a Rust field in tests/abi_check.rs",
                layout.name
            )
        })
        .collect();
    out.extend(mapped.difference(&in_header).map(|m| {
        format!(
            "`{}.{m}` is mapped but the header's struct has no such member",
            layout.name
        )
    }));
    out
}

// ---------------------------------------------------------------------------------------------
// Constants.
// ---------------------------------------------------------------------------------------------

fn constant(c_name: &str, rust: i128, rust_path: String) -> Check {
    Check::new(
        format!("const:{c_name}"),
        c_name.to_owned(),
        Expect::Eq(rust),
        format!("C `{c_name}` vs Rust `{rust_path}`"),
    )
}

macro_rules! register_ops {
    ($($name:ident),+ $(,)?) => {
        &[$( (stringify!($name), abi::register::$name) ),+]
    };
}

/// Every `io_uring_register(2)` opcode of `abi::register`.
const REGISTER_OPS: &[(&str, u32)] = register_ops![
    IORING_REGISTER_BUFFERS,
    IORING_UNREGISTER_BUFFERS,
    IORING_REGISTER_FILES,
    IORING_UNREGISTER_FILES,
    IORING_REGISTER_EVENTFD,
    IORING_UNREGISTER_EVENTFD,
    IORING_REGISTER_FILES_UPDATE,
    IORING_REGISTER_EVENTFD_ASYNC,
    IORING_REGISTER_PROBE,
    IORING_REGISTER_PERSONALITY,
    IORING_UNREGISTER_PERSONALITY,
    IORING_REGISTER_RESTRICTIONS,
    IORING_REGISTER_ENABLE_RINGS,
    IORING_REGISTER_FILES2,
    IORING_REGISTER_FILES_UPDATE2,
    IORING_REGISTER_BUFFERS2,
    IORING_REGISTER_BUFFERS_UPDATE,
    IORING_REGISTER_IOWQ_AFF,
    IORING_UNREGISTER_IOWQ_AFF,
    IORING_REGISTER_IOWQ_MAX_WORKERS,
    IORING_REGISTER_RING_FDS,
    IORING_UNREGISTER_RING_FDS,
    IORING_REGISTER_PBUF_RING,
    IORING_UNREGISTER_PBUF_RING,
    IORING_REGISTER_SYNC_CANCEL,
    IORING_REGISTER_FILE_ALLOC_RANGE,
];

/// `abi::register` must be `0..len` without gaps or repeats.
fn register_gaps() -> Vec<String> {
    let mut values: Vec<u32> = REGISTER_OPS.iter().map(|&(_, v)| v).collect();
    values.sort_unstable();
    let expected: Vec<u32> = (0..).take(values.len()).collect();
    if values == expected {
        Vec::new()
    } else {
        vec![format!(
            "abi::register is not 0..{} without gaps: sorted values {values:?}",
            values.len()
        )]
    }
}

/// Every constant with a Rust value, by its C name.
fn constant_checks() -> Vec<Check> {
    let mut checks = Vec::new();
    for info in Opcode::TABLE {
        checks.push(constant(
            info.c_name,
            i128::from(info.opcode as u8),
            format!("Opcode::{:?}", info.opcode),
        ));
    }
    checks.push(constant(
        "IORING_OP_LAST",
        i128::try_from(OPCODE_COUNT).expect("small"),
        "OPCODE_COUNT".to_owned(),
    ));

    macro_rules! flag_families {
        ($($family:ident),+ $(,)?) => {$(
            for info in $family::TABLE {
                checks.push(constant(
                    info.c_name,
                    i128::from(info.flag.bits()),
                    format!("{:?} in {}::TABLE", info.flag, stringify!($family)),
                ));
            }
        )+};
    }
    flag_families!(
        SqeFlags,
        SetupFlags,
        FeatureFlags,
        EnterFlags,
        SqRingFlags,
        CqRingFlags,
        CqeFlags,
        TimeoutFlags,
        CancelFlags,
        FsyncFlags,
        PollFlags,
        MsgRingFlags,
        RecvSendFlags,
        AcceptFlags,
    );
    // The header's two composite masks, from the Rust flags they combine.
    checks.push(constant(
        "IORING_TIMEOUT_CLOCK_MASK",
        i128::from((TimeoutFlags::BOOTTIME | TimeoutFlags::REALTIME).bits()),
        "TimeoutFlags::BOOTTIME | TimeoutFlags::REALTIME".to_owned(),
    ));
    checks.push(constant(
        "IORING_TIMEOUT_UPDATE_MASK",
        i128::from((TimeoutFlags::UPDATE | TimeoutFlags::LINK_TIMEOUT_UPDATE).bits()),
        "TimeoutFlags::UPDATE | TimeoutFlags::LINK_TIMEOUT_UPDATE".to_owned(),
    ));

    macro_rules! raw {
        ($($name:ident),+ $(,)?) => {$(
            checks.push(constant(
                stringify!($name),
                i128::from(abi::$name),
                concat!("abi::", stringify!($name)).to_owned(),
            ));
        )+};
    }
    raw!(
        IORING_OFF_SQ_RING,
        IORING_OFF_CQ_RING,
        IORING_OFF_SQES,
        IORING_OFF_MMAP_MASK,
        IO_URING_OP_SUPPORTED,
        IORING_FILE_INDEX_ALLOC,
        IORING_CQE_BUFFER_SHIFT,
        IORING_MSG_DATA,
        IORING_MSG_SEND_FD,
        IORING_REGISTER_FILES_SKIP,
        SPLICE_F_FD_IN_FIXED,
    );

    for &(name, value) in REGISTER_OPS {
        checks.push(constant(
            name,
            i128::from(value),
            format!("abi::register::{name}"),
        ));
    }
    checks.push(constant(
        "IORING_REGISTER_LAST",
        i128::try_from(REGISTER_OPS.len()).expect("small"),
        "one past the last of abi::register".to_owned(),
    ));
    checks
}

/// `#define`s of the header that are neither compared nor listed in [`NOT_MIRRORED`], and
/// [`NOT_MIRRORED`] entries the header no longer has.
fn unmirrored_defines(defines: &[String], constants: &[Check]) -> Vec<String> {
    let compared: BTreeSet<&str> = constants.iter().map(|c| c.c_expr.as_str()).collect();
    let exempt: BTreeSet<&str> = NOT_MIRRORED.iter().map(|&(n, _)| n).collect();
    let mut out: Vec<String> = defines
        .iter()
        .filter(|d| !compared.contains(d.as_str()) && !exempt.contains(d.as_str()))
        .map(|d| {
            format!("`#define {d}` of {IO_URING_H} has no Rust value (and is not in NOT_MIRRORED)")
        })
        .collect();
    out.extend(
        exempt
            .iter()
            .filter(|n| !defines.iter().any(|d| d == *n))
            .map(|n| format!("NOT_MIRRORED lists `{n}`, which {IO_URING_H} does not define")),
    );
    out
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn rust_abi_matches_the_system_header() {
    let io_uring_h = read_header(IO_URING_H);
    let time_types_h = read_header(TIME_TYPES_H);
    let _ = c_compiler();

    let mut mismatches = Vec::new();
    let layouts = layouts();
    let mut checks = Vec::new();
    let mut c_member_count = 0;
    for layout in &layouts {
        let text = if layout.header == TIME_TYPES_H {
            &time_types_h
        } else {
            &io_uring_h
        };
        match c_struct_members(text, layout.name) {
            Some(members) => {
                c_member_count += members.len();
                mismatches.extend(unmapped_members(layout, &members));
            }
            None => mismatches.push(format!(
                "{} does not define `struct {}`",
                layout.header, layout.name
            )),
        }
        checks.extend(layout_checks(layout));
    }
    let layout_check_count = checks.len();

    let constants = constant_checks();
    mismatches.extend(unmirrored_defines(&c_defines(&io_uring_h), &constants));
    mismatches.extend(register_gaps());
    let constant_count = constants.len();
    checks.extend(constants);
    mismatches.extend(duplicate_keys(&checks));

    let eval = evaluate_in_c(&checks, "main");
    mismatches.extend(compare(&checks, &eval));

    eprintln!(
        "abi_check: {} structs, {c_member_count} C members ({layout_check_count} layout \
         checks), {constant_count} constants, {} checks in all; {} mismatch(es)",
        layouts.len(),
        checks.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatch(es) between xuring_sys and {IO_URING_H}:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// The comparison reports every kind of wrong value, and nothing else.
#[test]
fn comparison_reports_wrong_values() {
    let check =
        |key: &str, expect| Check::new(key.to_owned(), "0".to_owned(), expect, "t".to_owned());
    let checks = [
        check("right", Expect::Eq(1)),
        check("wrong", Expect::Eq(2)),
        check("too_big", Expect::AtMost(4)),
        check("too_small", Expect::AtLeast(4)),
        check("fits", Expect::AtMost(4)),
        check("absent", Expect::Eq(0)),
        check("rejected", Expect::Eq(0)),
    ];
    let eval = CEval {
        stdout: "right 1\nwrong 3\ntoo_big 5\ntoo_small 3\nfits 4\nstray 9\n".to_owned(),
        rejected: BTreeMap::from([("rejected".to_owned(), "undeclared".to_owned())]),
    };
    let mismatches = compare(&checks, &eval);
    let keys: Vec<&str> = mismatches
        .iter()
        .map(|m| m.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "wrong",
            "too_big",
            "too_small",
            "absent",
            "rejected",
            "stray"
        ],
        "{mismatches:#?}"
    );
    assert!(
        mismatches[0].contains("C says 3, Rust expects == 2"),
        "{}",
        mismatches[0]
    );
    assert!(
        compare(
            &checks[..1],
            &CEval {
                stdout: "right 1\n".to_owned(),
                ..CEval::default()
            }
        )
        .is_empty()
    );
}

/// Deliberately wrong Rust values go through the real pipeline (the C compiler and the
/// header) and come out as mismatches, while the right ones do not.
#[test]
fn pipeline_reports_deliberately_wrong_values() {
    let read = Opcode::Read as u8;
    let mut checks = vec![
        constant("IORING_OP_READ", i128::from(read), "right".to_owned()),
        constant(
            "IORING_OP_WRITE",
            i128::from(read),
            "wrong on purpose".to_owned(),
        ),
        constant("IORING_NOT_A_CONSTANT", 0, "absent on purpose".to_owned()),
    ];
    let mut sqe = layouts().swap_remove(0);
    assert_eq!(sqe.name, "io_uring_sqe");
    let poll = sqe
        .fields
        .iter_mut()
        .find(|f| f.c == "poll_events")
        .expect("poll_events is mapped");
    poll.rust_offset += 1;
    sqe.rust_size += 8;
    checks.extend(layout_checks(&sqe));

    let mismatches = compare(&checks, &evaluate_in_c(&checks, "selfcheck"));
    let keys: BTreeSet<&str> = mismatches
        .iter()
        .map(|m| m.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "const:IORING_OP_WRITE",
            "const:IORING_NOT_A_CONSTANT",
            "offsetof:io_uring_sqe.poll_events",
            "sizeof:io_uring_sqe",
        ]),
        "{mismatches:#?}"
    );
}

/// The header reader sees members of anonymous unions and structs, arrays and flexible arrays,
/// and ignores comments and attributes; an unmapped member is reported.
#[test]
fn header_reader_finds_every_member() {
    let text = "#define FOO (1U << 3) /* x */\n\
        struct other { int z; };\n\
        struct demo {\n\
            __u32 a; /* __u32 commented; */\n\
            union {\n\
                __u16 b;\n\
                struct { __u8 c; __u8 d[1]; };\n\
            } __attribute__((packed));\n\
            __aligned_u64 /* __s32 * */ e;\n\
            __u64 f[];\n\
        };\n";
    let members = c_struct_members(text, "demo").expect("demo is defined");
    assert_eq!(members, ["a", "b", "c", "d", "e", "f"]);
    assert_eq!(c_struct_members(text, "missing"), None);
    assert_eq!(c_defines(text), ["FOO"]);

    let mut cqe = layouts().swap_remove(1);
    assert_eq!(cqe.name, "io_uring_cqe");
    let real = c_struct_members(&read_header(IO_URING_H), "io_uring_cqe").expect("defined");
    assert!(unmapped_members(&cqe, &real).is_empty());
    cqe.fields.retain(|f| f.c != "res");
    assert_eq!(
        unmapped_members(&cqe, &real),
        ["C member `io_uring_cqe.res` has no mapping to a Rust field in tests/abi_check.rs"]
    );
}
