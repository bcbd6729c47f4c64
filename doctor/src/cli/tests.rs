use super::*;

#[test]
fn resolve_argument() {
    assert_eq!(
        parse_resolve("MCP.example.com=127.0.0.1").unwrap(),
        ("mcp.example.com".into(), "127.0.0.1:0".parse().unwrap())
    );
    assert_eq!(
        parse_resolve("h=127.0.0.1:8443").unwrap().1,
        "127.0.0.1:8443".parse().unwrap()
    );
    assert_eq!(
        parse_resolve("h=[::1]:80").unwrap().1,
        "[::1]:80".parse().unwrap()
    );
    assert_eq!(parse_resolve("h=::1").unwrap().1.port(), 0);
    for bad in ["h", "=1.2.3.4", "h=example.com", "h=1.2.3.4:x"] {
        assert!(parse_resolve(bad).is_err(), "{bad}");
    }
}
