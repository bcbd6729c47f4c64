use super::*;

fn one(v: &str) -> Challenge {
    let cs = parse(v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
    assert_eq!(cs.len(), 1, "{v:?} -> {cs:?}");
    cs.into_iter().next().unwrap()
}

#[test]
fn the_filter_challenge() {
    let c = one(
        r#"Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/github/mcp", scope="openid email mcp:read""#,
    );
    assert!(c.is_scheme("bearer"));
    assert_eq!(
        c.param("resource_metadata"),
        Some("https://mcp.example.com/.well-known/oauth-protected-resource/github/mcp")
    );
    assert_eq!(c.param("SCOPE"), Some("openid email mcp:read"));
    assert_eq!(c.token68, None);
}

#[test]
fn scheme_and_names_are_case_insensitive_values_are_not() {
    let c = one(r#"bEaReR Resource_Metadata="X", Scope=Read"#);
    assert!(c.is_scheme("Bearer"));
    assert_eq!(
        c.params,
        vec![
            ("resource_metadata".into(), "X".into()),
            ("scope".into(), "Read".into())
        ]
    );
}

#[test]
fn quoted_pairs_are_unescaped() {
    let c = one(r#"Bearer realm="a \"quoted\" \\ value", error_description="comma, and = sign""#);
    assert_eq!(c.param("realm"), Some(r#"a "quoted" \ value"#));
    assert_eq!(c.param("error_description"), Some("comma, and = sign"));
}

#[test]
fn bare_scheme_and_several_challenges() {
    let cs = parse(r#"Basic realm="x", Bearer, DPoP algs="ES256 PS256""#).unwrap();
    let schemes: Vec<&str> = cs.iter().map(|c| c.scheme.as_str()).collect();
    assert_eq!(schemes, ["Basic", "Bearer", "DPoP"]);
    assert!(cs[1].params.is_empty());
    assert_eq!(cs[2].param("algs"), Some("ES256 PS256"));
    assert_eq!(bearer(&cs).unwrap().scheme, "Bearer");
    // A bare token after a comma is the next (parameterless) challenge.
    assert_eq!(parse("Bearer realm=x, junk").unwrap()[1].scheme, "junk");
    assert_eq!(one("Bearer").params, vec![]);
}

#[test]
fn rfc_9110_example_with_two_challenges_and_several_params() {
    let cs =
        parse(r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#)
            .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].param("type"), Some("1"));
    assert_eq!(cs[0].param("title"), Some(r#"Login to "apps""#));
    assert_eq!(cs[1].param("realm"), Some("simple"));
}

#[test]
fn token68() {
    let cs = parse("Basic dXNlcjpwYXNz==, Negotiate abc+/def, Bearer a=b").unwrap();
    assert_eq!(cs[0].token68.as_deref(), Some("dXNlcjpwYXNz=="));
    assert_eq!(cs[1].token68.as_deref(), Some("abc+/def"));
    assert_eq!(cs[2].param("a"), Some("b"));
    assert_eq!(one("Foo x").token68.as_deref(), Some("x"));
    // `name=` with nothing after is token68 by the grammar, not an empty parameter.
    assert_eq!(one("Bearer realm=").token68.as_deref(), Some("realm="));
    assert_eq!(one("Bearer realm= ,").token68.as_deref(), Some("realm="));
}

#[test]
fn whitespace_and_empty_list_elements() {
    let c = one(" ,Bearer \t scope = \"a b\" ,, ,\tresource_metadata=\"u\" , ");
    assert_eq!(c.param("scope"), Some("a b"));
    assert_eq!(c.param("resource_metadata"), Some("u"));
    assert_eq!(parse("").unwrap(), vec![]);
    assert_eq!(parse(" , ,").unwrap(), vec![]);
    // #auth-param allows empty elements, also before the first parameter.
    let c = one("Bearer , realm=\"x\"");
    assert_eq!(c.param("realm"), Some("x"));
    // A scheme, a separator, then another challenge.
    let cs = parse("Bearer , Basic realm=\"x\"").unwrap();
    assert_eq!(cs.len(), 2, "{cs:?}");
    assert!(cs[0].params.is_empty());
}

#[test]
fn a_comma_inside_quotes_does_not_split() {
    let c = one(r#"Bearer scope="a,b", resource_metadata="https://x/?a=1,b=2""#);
    assert_eq!(c.param("scope"), Some("a,b"));
    assert_eq!(c.param("resource_metadata"), Some("https://x/?a=1,b=2"));
}

#[test]
fn utf8_in_quoted_strings_is_kept() {
    let c = one("Bearer realm=\"café ☕\"");
    assert_eq!(c.param("realm"), Some("café ☕"));
}

#[test]
fn parse_all_joins_repeated_fields() {
    let cs = parse_all(["Basic realm=x", r#"Bearer resource_metadata="m""#]).unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(bearer(&cs).unwrap().param("resource_metadata"), Some("m"));
}

#[test]
fn hostile_and_broken_inputs_are_errors_not_panics() {
    for bad in [
        r#"Bearer realm="unterminated"#,
        r#"Bearer realm="ends with backslash\"#,
        "Bearer realm=\"ctl\u{1}char\"",
        "Bearer realm=\"esc\\\u{1}\"",
        "Bearer =value",
        "Bearer a=1 b=2",
        "Bearer a=1, a=2",
        "Bearer A=1, a=2",
        "Bearer a=@",
        "Bearer a=\"x\"y",
        "=Bearer",
        "\"Bearer\"",
        "Bearer; realm=x",
        "Bearer realm=x, junk=",
        "Bearer a b c",
        "Basic abc=def ghi",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} parsed as {:?}", parse(bad));
    }
}

#[test]
fn errors_say_where() {
    let e = parse("Bearer a=1, a=2").unwrap_err();
    assert_eq!(e.reason, "parameter repeated in one challenge");
    assert_eq!(e.at, 12);
    assert!(e.to_string().contains("at byte 12"));
}

#[test]
fn long_and_odd_inputs_do_not_hang_or_panic() {
    let long = format!("Bearer scope=\"{}\"", "a".repeat(100_000));
    assert_eq!(one(&long).param("scope").unwrap().len(), 100_000);
    let many = (0..2000)
        .map(|i| format!("p{i}=v"))
        .collect::<Vec<_>>()
        .join(", ");
    assert_eq!(one(&format!("Bearer {many}")).params.len(), 2000);
    let commas = ",".repeat(50_000);
    assert!(parse(&commas).unwrap().is_empty());
    // Every prefix of a valid header parses or errors, without panicking.
    let full = r#"Bearer resource_metadata="https://h/x", scope="a \"b\"", Basic abc==, Other"#;
    for i in 0..=full.len() {
        let _ = parse(&full[..i]);
    }
    for b in 0u8..=255 {
        let s = format!("Bearer a=\"{}\"", char::from(b));
        let _ = parse(&s);
    }
}
