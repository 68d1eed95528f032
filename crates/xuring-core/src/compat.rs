//! `docs/kernel-compat.md`: `xuring-sys`'s opcode and flag tables, with each opcode's use and
//! an operations table both taken from the op declarations in [`ops`](crate::ops). Nothing in
//! it is written by hand, so a new op appears in the document as soon as it is declared.

use std::fmt::Write;

use xuring_sys::{FLOOR, Opcode};

use crate::OpKind;

/// The whole compatibility document, as Markdown.
pub fn markdown() -> String {
    xuring_sys::compat::markdown_with(uses, &operations())
}

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
         missing.\n\n| op | methods | opcode | since | where the opcode is missing (and notes) |\n\
         |---|---|---|---|---|\n"
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
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} |",
            kind.name(),
            methods,
            kind.opcode().c_name(),
            kind.opcode().since(),
            missing
        );
    }
    out
}
