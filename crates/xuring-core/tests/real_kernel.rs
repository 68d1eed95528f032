//! The running kernel's own io_uring probe, and (inside the CI's VMs) the check that xuring's
//! model of that kernel, what `XURING_KERNEL_LEVEL=<its version>` makes of the host's newer
//! kernel, says the same: the same feature bits, opcodes, accepted setup flags and cancel
//! flags. Where a distribution kernel carries backports, the difference is listed in
//! [`BACKPORTS`] (and in docs/kernel-compat.md), and nothing else may differ.
//!
//! The probe is written to the process's standard error directly (not through the test
//! harness's capture), so `ci/vm-test` shows it for each kernel.

use std::io::Write as _;

use xuring_core::{Features, KernelLevel, OpKind, Ring};
use xuring_sys::{CancelFlags, FeatureFlags, OpSet, Opcode, SetupFlags};

/// What a distribution kernel has beyond the mainline version it is numbered as: Debian's
/// 5.10 LTS carries io_uring backports from 5.11 to 5.13 (probed on 5.10.0-46: features
/// `0x7ff`, opcodes up to `UNLINKAT`).
const BACKPORTS: &[(&str, &[FeatureFlags], &[Opcode])] = &[(
    "5.10",
    &[
        FeatureFlags::SQPOLL_NONFIXED,
        FeatureFlags::EXT_ARG,
        FeatureFlags::NATIVE_WORKERS,
        FeatureFlags::RSRC_TAGS,
    ],
    &[Opcode::Shutdown, Opcode::Renameat, Opcode::Unlinkat],
)];

fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// `major.minor` of the running kernel.
fn version() -> Option<String> {
    let release = release();
    let mut parts = release.split(['.', '-', '+']);
    let major = parts.next()?;
    let minor = parts.next()?;
    Some(format!("{major}.{minor}"))
}

fn report(f: &Features) -> String {
    let mut out = String::new();
    let missing: Vec<String> = OpSet::all()
        .iter()
        .filter(|op| !f.ops.contains(*op))
        .map(|op| format!("{op:?}"))
        .collect();
    let used_missing: Vec<&str> = OpKind::ALL
        .iter()
        .filter(|k| !k.opcodes().iter().all(|op| f.ops.contains(*op)))
        .map(|k| k.name())
        .collect();
    out += &format!("probe: kernel {}\n", release());
    out += &format!("  features  {:#x} {:?}\n", f.flags.bits(), f.flags);
    out += &format!(
        "  opcodes   {} of the {} xuring knows; missing: {}\n",
        f.ops.iter().count(),
        OpSet::all().iter().count(),
        if missing.is_empty() {
            "none".to_owned()
        } else {
            missing.join(" ")
        }
    );
    out += &format!(
        "  ops on a fallback or EOPNOTSUPP here: {}\n",
        if used_missing.is_empty() {
            "none".to_owned()
        } else {
            used_missing.join(" ")
        }
    );
    out += &format!("  setup     {:?}\n", f.setup);
    out += &format!("  cancel    {:?}\n", f.cancel);
    out += "probe end\n";
    out
}

/// The probe as a line `ci/vm-test` passes from the host into the VM: feature bits, opcode
/// numbers, setup and cancel flag bits.
fn raw(f: &Features) -> String {
    let ops: Vec<String> = f.ops.iter().map(|op| (op as u8).to_string()).collect();
    format!(
        "flags={:#x} ops={} setup={:#x} cancel={:#x}",
        f.flags.bits(),
        ops.join(","),
        f.setup.bits(),
        f.cancel.bits()
    )
}

/// Parses [`raw`]'s line back.
fn parse_raw(line: &str) -> Features {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    let hex = |name: &str| {
        u32::from_str_radix(field(name).trim_start_matches("0x"), 16)
            .unwrap_or_else(|e| panic!("{name} in {line:?}: {e}"))
    };
    let mut ops = OpSet::EMPTY;
    for n in field("ops").split(',').filter(|s| !s.is_empty()) {
        let n: u8 = n.parse().expect("an opcode number");
        ops.insert(Opcode::from_u8(n).expect("an opcode xuring knows"));
    }
    Features::from_probe(
        FeatureFlags::from_bits_retain(hex("flags")),
        ops,
        SetupFlags::from_bits_retain(hex("setup")),
        CancelFlags::from_bits_retain(hex("cancel") as _),
        KernelLevel::Native,
    )
}

/// Prints the probe at `XURING_KERNEL_LEVEL` (native by default). Inside a VM with
/// `XURING_VM_EXPECT` set (`ci/vm-test` passes what the host's mask for this kernel's version
/// gives), checks that the real kernel matches it, backports aside.
#[test]
fn the_model_of_this_kernel_matches_its_probe() {
    let level = KernelLevel::from_env().expect("a valid XURING_KERNEL_LEVEL");
    let ring = Ring::builder(8)
        .kernel_level(level)
        .build()
        .expect("a ring");
    let real = *ring.features();
    let _ = std::io::stderr().write_all(report(&real).as_bytes());
    let _ = std::io::stderr().write_all(format!("probe raw {}\n", raw(&real)).as_bytes());
    let Ok(expect) = std::env::var("XURING_VM_EXPECT") else {
        // On a development host the kernel is whatever it is; the VMs run known kernels.
        return;
    };
    if level != KernelLevel::Native {
        // The model is of the kernel itself; a masked run models an older one.
        return;
    }
    let version = version().expect("a kernel release");
    let mut want = parse_raw(&expect);
    if let Some((_, flags, ops)) = BACKPORTS.iter().find(|(v, _, _)| *v == version) {
        for flag in *flags {
            want.flags |= *flag;
        }
        for op in *ops {
            want.ops.insert(*op);
        }
    }
    let mut diff = Vec::new();
    if real.flags != want.flags {
        diff.push(format!(
            "features: kernel has {:?} beyond the model, lacks {:?}",
            real.flags - want.flags,
            want.flags - real.flags
        ));
    }
    if real.ops != want.ops {
        let extra: Vec<Opcode> = real
            .ops
            .iter()
            .filter(|op| !want.ops.contains(*op))
            .collect();
        let lacking: Vec<Opcode> = want
            .ops
            .iter()
            .filter(|op| !real.ops.contains(*op))
            .collect();
        diff.push(format!(
            "opcodes: kernel has {extra:?} beyond the model, lacks {lacking:?}"
        ));
    }
    if real.setup != want.setup {
        diff.push(format!(
            "setup flags: kernel accepted {:?}, model {:?}",
            real.setup, want.setup
        ));
    }
    if real.cancel != want.cancel {
        diff.push(format!(
            "cancel flags: kernel {:?}, model {:?}",
            real.cancel, want.cancel
        ));
    }
    assert!(
        diff.is_empty(),
        "XURING_KERNEL_LEVEL={version} on the host does not model this kernel:\n  {}",
        diff.join("\n  ")
    );
}
