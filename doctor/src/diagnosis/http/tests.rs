use super::*;

#[test]
fn json_content_types() {
    for ok in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/jrd+json",
    ] {
        assert!(is_json_content_type(ok), "{ok}");
    }
    for bad in ["text/html", "text/json", "application/jsonx", ""] {
        assert!(!is_json_content_type(bad), "{bad}");
    }
}
