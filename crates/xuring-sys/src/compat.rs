//! The kernel compatibility matrix, rendered from the same tables the code uses.
//!
//! `docs/kernel-compat.md` is the output of [`markdown_with`], given what `xuring-core`'s op
//! declarations say about each opcode; a test in `xuring-core` fails when the file and the
//! tables disagree (regenerate it with `XURING_BLESS=1 cargo test -p xuring-core --test
//! compat_doc`).

use std::fmt::Write;

use crate::{
    CancelFlags, EnterFlags, FeatureFlags, FlagInfo, FsyncFlags, KernelLevel, Opcode, SetupFlags,
    SqRingFlags, TimeoutFlags,
};

/// The compatibility document without the runtime's op table: every opcode's use column is
/// its note alone.
pub fn markdown() -> String {
    markdown_with(|_| None, "")
}

/// The whole compatibility document, as Markdown. `uses(opcode)` names the runtime's ops
/// that submit an opcode (`None`: none does); `ops` is a section inserted after the opcode
/// table.
pub fn markdown_with(uses: impl Fn(Opcode) -> Option<String>, ops: &str) -> String {
    let mut out = String::new();
    out.push_str(
        "# Kernel compatibility\n\n\
         <!-- Generated from xuring-sys's tables and xuring-core's op declarations by \
         `XURING_BLESS=1 cargo test -p xuring-core --test compat_doc`; do not edit by hand. \
         -->\n\n\
         xuring runs on Linux 5.6 and newer. Every decision below is taken from a probe of the \
         running kernel, never from its version string: opcodes from `IORING_REGISTER_PROBE`, \
         feature bits from `io_uring_params.features`, setup flags from whether \
         `io_uring_setup` accepts them (the newest is dropped on `EINVAL` and setup retried). \
         The version column is documentation and the source of the test masks: \
         `XURING_KERNEL_LEVEL=5.6` (or 5.10, 5.11, 5.18, 5.19, 6.0, 6.1, 6.12) clamps the probed features \
         to that kernel so the fallback paths run on a newer one.\n\n",
    );
    out.push_str("Test levels: ");
    let levels: Vec<String> = KernelLevel::ALL.iter().map(|l| format!("`{l}`")).collect();
    out.push_str(&levels.join(", "));
    out.push_str(".\n\n## Opcodes\n\nProbed with `IORING_REGISTER_PROBE`.\n\n");
    out.push_str("| opcode | value | since | xuring's use |\n");
    out.push_str("|---|---:|---|---|\n");
    for info in Opcode::TABLE {
        let used = match (uses(info.opcode), info.note) {
            (Some(ops), "") => ops,
            (Some(ops), note) => format!("{ops}; {note}"),
            (None, "") => "not used".to_owned(),
            (None, note) => note.to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            info.c_name, info.opcode as u8, info.since, used
        );
    }
    out.push_str(ops);
    let setup = format!(
        "Probed by trial: `io_uring_setup` with the flag, dropped on `EINVAL`. Only the flags \
         xuring drives are accepted ({}); a ring asked for any other bit, in this table or \
         newer than it, is refused with `SetupError::UnsupportedFlags` before `io_uring_setup` \
         is called.",
        crate::setup::setup_flag_names(SetupFlags::DRIVEN)
    );
    section(&mut out, "Setup flags", &setup, SetupFlags::TABLE, |f| {
        u64::from(f.bits())
    });
    section(
        &mut out,
        "Feature bits",
        "Read from `io_uring_params.features` after setup.",
        FeatureFlags::TABLE,
        |f| u64::from(f.bits()),
    );
    section(
        &mut out,
        "Enter flags",
        "`EXT_ARG` is used only when `FEAT_EXT_ARG` is reported.",
        EnterFlags::TABLE,
        |f| u64::from(f.bits()),
    );
    section(
        &mut out,
        "SQ ring flags",
        "Read from the SQ ring's flags word.",
        SqRingFlags::TABLE,
        |f| u64::from(f.bits()),
    );
    section(
        &mut out,
        "Timeout flags",
        "Follow the `TIMEOUT` opcode.",
        TimeoutFlags::TABLE,
        |f| u64::from(f.bits()),
    );
    section(
        &mut out,
        "Cancel flags",
        "Used when `ASYNC_CANCEL` accepts them: probed by the 5.19 opcode `SOCKET`, which \
         arrived in the same release, since the opcode probe cannot see flags.",
        CancelFlags::TABLE,
        |f| u64::from(f.bits()),
    );
    section(
        &mut out,
        "Fsync flags",
        "Stored in `fsync_flags`, never in the SQE flags byte.",
        FsyncFlags::TABLE,
        |f| u64::from(f.bits()),
    );
    out
}

fn section<F: Copy>(
    out: &mut String,
    title: &str,
    how: &str,
    table: &[FlagInfo<F>],
    bits: impl Fn(F) -> u64,
) {
    let _ = write!(
        out,
        "\n## {title}\n\n{how}\n\n| flag | value | since | xuring's use, and the fallback |\n|---|---:|---|---|\n"
    );
    for info in table {
        let _ = writeln!(
            out,
            "| `{}` | {:#x} | {} | {} |",
            info.c_name,
            bits(info.flag),
            info.since,
            info.fallback
        );
    }
}
