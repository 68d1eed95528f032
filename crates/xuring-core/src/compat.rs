//! `docs/kernel-compat.md`: `xuring-sys`'s opcode and flag tables, with each opcode's use and
//! an operations table both taken from the op declarations in [`ops`](crate::ops). Nothing in
//! it is written by hand, so a new op appears in the document as soon as it is declared.

use std::fmt::Write;

use xuring_sys::{FLOOR, Opcode};

use crate::OpKind;

/// The whole compatibility document, as Markdown.
pub fn markdown() -> String {
    xuring_sys::compat::markdown_with(uses, &(operations() + REAL_KERNELS))
}

/// What the real kernels the CI boots (`ci/vm-test`) report, and how their probes compare with
/// the masks for their versions (`crates/xuring-core/tests/real_kernel.rs` checks it in each VM).
const REAL_KERNELS: &str = "
## Real kernels

`ci/vm-test` boots Debian's cloud kernels under QEMU and runs the test suites in them; in each
VM, `tests/real_kernel.rs` checks that the kernel's own probe equals what
`XURING_KERNEL_LEVEL=<its version>` makes of the host's kernel, except for the backports
listed here. Probed 2026-12-07 (feature bits and opcodes as far as xuring's tables know them):

| kernel (package) | features | opcodes | setup flags accepted | cancel flags | against the mask for its version |
|---|---|---|---|---|---|
| 5.10.0-46-cloud-amd64 (5.10.262-1) | `0x7ff` | 0-36 (37; up to `UNLINKAT`) | `CLAMP` only | none | backports: `SQPOLL_NONFIXED`, `EXT_ARG` (5.11), `NATIVE_WORKERS` (5.12), `RSRC_TAGS` (5.13); `SHUTDOWN`, `RENAMEAT`, `UNLINKAT` (5.11) |
| 6.1.0-57-cloud-amd64 (6.1.192-3) | `0x1fff` | 0-48 (all 49 xuring knows) | `SUBMIT_ALL`, `COOP_TASKRUN`, `SINGLE_ISSUER`, `DEFER_TASKRUN` | `ALL`, `FD`, `ANY` | equal |
| 6.12.118+deb13-cloud-amd64 (6.12.118-1) | `0x1fff` | 0-48 (all 49 xuring knows) | as 6.1 | as 6.1 | equal |

Debian's 5.10 is therefore closer to a 5.11 kernel than to 5.10.0: the fallbacks for
`EXT_ARG` (a timer per deadline wait) and `SHUTDOWN` do not run there; the 5.6 mask runs them.
";

/// The `Ring` methods that submit `opcode`, if any op does.
fn uses(opcode: Opcode) -> Option<String> {
    let methods: Vec<String> = OpKind::ALL
        .iter()
        .filter(|kind| kind.opcodes().contains(&opcode))
        .flat_map(|kind| kind.methods())
        .map(|method| format!("`Ring::{method}`"))
        .collect();
    (!methods.is_empty()).then(|| methods.join(", "))
}

/// One row per op: its methods, its opcode and version, and what happens below that version.
fn operations() -> String {
    let mut out = format!(
        "\n## Operations\n\nEvery op xuring declares. Ops whose opcode is on the {FLOOR} floor \
         are submitted without a check (a ring is refused on a kernel missing one of those \
         opcodes); newer ones are checked each time they are queued, and take their fallback, \
         or complete with `EOPNOTSUPP` without reaching the kernel, where the opcode is \
         missing. The last column says how the readiness executor (`epoll`, where io_uring is \
         blocked) runs the op.\n\n| op | methods | opcode | since | where the opcode is missing \
         (and notes) | on the readiness executor |\n|---|---|---|---|---|---|\n"
    );
    for &kind in OpKind::ALL {
        let methods: Vec<String> = kind.methods().iter().map(|m| format!("`{m}`")).collect();
        let methods = methods.join(", ");
        let mut missing = match kind.fallback() {
            _ if kind.on_floor() => "never: on the floor".to_owned(),
            Some(fallback) => fallback.to_owned(),
            None => "`EOPNOTSUPP`".to_owned(),
        };
        if let Some(note) = kind.note() {
            missing = format!("{missing} ({note})");
        }
        let epoll = match (xuring_sys::emulation(kind.opcode()), kind.fallback()) {
            (Some(how), _) => how.to_owned(),
            (None, Some(fallback)) => fallback.to_owned(),
            (None, None) => "`EOPNOTSUPP`".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} | {} |",
            kind.name(),
            methods,
            kind.opcode().c_name(),
            kind.opcode().since(),
            missing,
            epoll
        );
    }
    out
}
