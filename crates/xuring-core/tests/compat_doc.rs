//! `docs/kernel-compat.md` is generated from xuring-sys's tables and the op declarations and
//! must not drift from them.
//!
//! Regenerate it with `XURING_BLESS=1 cargo test -p xuring-core --test compat_doc`.

use std::path::PathBuf;

#[test]
fn kernel_compat_doc_matches_the_tables() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/kernel-compat.md");
    let expected = xuring_core::compat::markdown();
    if std::env::var_os("XURING_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/kernel-compat.md");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/kernel-compat.md is out of date with the tables; regenerate it with \
         `XURING_BLESS=1 cargo test -p xuring-core --test compat_doc`"
    );
}

#[test]
fn every_opcode_row_is_in_the_doc() {
    let doc = xuring_core::compat::markdown();
    for info in xuring_sys::Opcode::TABLE {
        let row = format!(
            "| `{}` | {} | {} |",
            info.c_name, info.opcode as u8, info.since
        );
        assert!(doc.contains(&row), "missing row for {}", info.c_name);
    }
    for info in xuring_sys::SetupFlags::TABLE {
        assert!(
            doc.contains(&format!("| `{}` |", info.c_name)),
            "{}",
            info.c_name
        );
    }
}

#[test]
fn every_op_has_a_row_naming_its_methods() {
    let doc = xuring_core::compat::markdown();
    for &kind in xuring_core::OpKind::ALL {
        let row = format!("| `{}` |", kind.name());
        let line = doc
            .lines()
            .find(|line| line.starts_with(&row))
            .unwrap_or_else(|| panic!("no row for {kind:?}"));
        for method in kind.methods() {
            assert!(line.contains(&format!("`{method}`")), "{line}");
        }
        assert!(line.contains(kind.opcode().c_name()), "{line}");
    }
}
