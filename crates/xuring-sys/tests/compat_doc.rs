//! `docs/kernel-compat.md` is generated from the code's tables and must not drift from them.
//!
//! Regenerate it with `XURING_BLESS=1 cargo test -p xuring-sys --test compat_doc`.

use std::path::PathBuf;

#[test]
fn kernel_compat_doc_matches_the_tables() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/kernel-compat.md");
    let expected = xuring_sys::compat::markdown();
    if std::env::var_os("XURING_BLESS").is_some() {
        std::fs::write(&path, &expected).expect("write docs/kernel-compat.md");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/kernel-compat.md is out of date with xuring-sys's tables; regenerate it with \
         `XURING_BLESS=1 cargo test -p xuring-sys --test compat_doc`"
    );
}

#[test]
fn every_opcode_row_is_in_the_doc() {
    let doc = xuring_sys::compat::markdown();
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
