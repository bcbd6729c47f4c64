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

#[derive(clap::Parser)]
struct Cmd {
    #[command(flatten)]
    doctor: DoctorArgs,
}

#[test]
fn control_plane_and_admin_token_env_go_together() {
    use clap::Parser as _;
    let parse = |args: &[&str]| Cmd::try_parse_from([&["doctor", "http://h/mcp"], args].concat());
    assert!(parse(&["--control-plane", "http://127.0.0.1:8080"]).is_err());
    assert!(parse(&["--admin-token-env", "T"]).is_err());
    let c = parse(&["--control-plane", "http://cp", "--admin-token-env", "T"]).unwrap();
    assert_eq!(c.doctor.control_plane.as_deref(), Some("http://cp"));
    assert_eq!(c.doctor.admin_token_env.as_deref(), Some("T"));
}
