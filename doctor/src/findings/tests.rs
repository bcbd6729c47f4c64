use super::*;

#[test]
fn codes_are_unique_snake_case_and_documented() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/doctor.md"))
        .expect("docs/doctor.md");
    let mut seen = std::collections::HashSet::new();
    for c in Code::ALL {
        let s = c.as_str();
        assert!(seen.insert(s), "duplicate {s}");
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{s}"
        );
        assert!(
            doc.contains(&format!("`{s}`")),
            "docs/doctor.md does not explain `{s}`"
        );
        assert!(!c.what().is_empty());
    }
}
