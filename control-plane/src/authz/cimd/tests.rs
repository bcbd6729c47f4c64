use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use super::*;

const ID: &str = "https://app.example.com/oauth/client.json";

#[test]
fn client_id_urls_must_be_https_with_a_path_in_normal_form() {
    assert!(check_client_id(ID).is_ok());
    assert!(check_client_id("https://app.example.com/c?v=2").is_ok());
    for (bad, why) in [
        ("http://app.example.com/client.json", "must be https"),
        ("https://app.example.com/", "must have a path"),
        ("https://app.example.com", "must have a path"),
        ("https://app.example.com/a#frag", "fragment"),
        ("https://user@app.example.com/c", "userinfo"),
        ("https://:pw@app.example.com/c", "userinfo"),
        ("https://app.example.com/a/../c", "normal form"),
        ("https://app.example.com/a/./c", "normal form"),
        ("https://APP.example.com/c", "normal form"),
        ("HTTPS://app.example.com/c", "normal form"),
        ("https://app.example.com:443/c", "normal form"),
        ("https://app.example.com/a c", "printable ASCII"),
        ("https://app.example.com/a\\c", "printable ASCII"),
        ("not a url", "printable ASCII"),
        ("urn:x:y", "must be https"),
    ] {
        let err = check_client_id(bad).expect_err(bad).to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
    let long = format!("https://app.example.com/{}", "a".repeat(2000));
    assert!(check_client_id(&long).is_err());
    assert!(is_document_url(ID));
    assert!(is_document_url("HTTP://x/y"));
    assert!(!is_document_url("pc_123"));
    assert!(!is_document_url("é"));
}

#[test]
fn special_use_addresses_are_refused_unless_allowed() {
    for ip in [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "fc00::1",
        "fd12::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "2002:7f00:1::1",
        "2001::1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(is_special_use(ip), "{ip} is special-use");
        assert!(!AddressPolicy::default().permits(ip), "{ip}");
    }
    for ip in [
        "93.184.215.14",
        "1.1.1.1",
        "2606:4700::1111",
        "64:ff9b::101:101",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(!is_special_use(ip), "{ip} is public");
        assert!(AddressPolicy::default().permits(ip));
    }
    let allowed = AddressPolicy {
        allowed: vec!["127.0.0.1".parse().unwrap()],
    };
    assert!(allowed.permits("127.0.0.1".parse().unwrap()));
    assert!(!allowed.permits("127.0.0.2".parse().unwrap()));
}

#[tokio::test]
async fn literal_and_resolved_addresses_are_all_checked() {
    let policy = AddressPolicy::default();
    let err = policy
        .resolve(&Url::parse("https://10.1.2.3/c").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, CimdError::Address(_)), "{err}");
    let err = policy
        .resolve(&Url::parse("https://[::ffff:a00:1]/c").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, CimdError::Address(_)), "{err}");
    // `localhost` resolves to loopback: refused by what it resolves to, not by its name.
    let err = policy
        .resolve(&Url::parse("https://localhost:8443/c").unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("special-use"), "{err}");
    let allowed = AddressPolicy {
        allowed: vec!["127.0.0.1".parse().unwrap()],
    };
    let addrs = allowed
        .resolve(&Url::parse("https://127.0.0.1:8443/c").unwrap())
        .await
        .unwrap();
    assert_eq!(addrs, vec!["127.0.0.1:8443".parse::<SocketAddr>().unwrap()]);
}

#[test]
fn freshness_comes_from_cache_control_within_bounds() {
    let f = |values: &[&str]| fresh_seconds(values.iter().copied());
    assert_eq!(f(&[]), DEFAULT_FRESH_SECONDS);
    assert_eq!(f(&["public, max-age=7200"]), 7200);
    assert_eq!(f(&["max-age=5"]), MIN_FRESH_SECONDS);
    assert_eq!(f(&["max-age=99999999"]), MAX_FRESH_SECONDS);
    assert_eq!(f(&["no-store"]), MIN_FRESH_SECONDS);
    assert_eq!(f(&["max-age=600", "No-Cache"]), MIN_FRESH_SECONDS);
    assert_eq!(f(&["max-age=junk"]), DEFAULT_FRESH_SECONDS);
}

fn doc(extra: serde_json::Value) -> Vec<u8> {
    let mut d = json!({
        "client_id": ID,
        "client_name": "Example CLI",
        "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "client_uri": "https://app.example.com",
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            d.as_object_mut().unwrap().remove(k);
        } else {
            d[k] = v.clone();
        }
    }
    serde_json::to_vec(&d).unwrap()
}

#[test]
fn a_good_document_gives_a_public_client() {
    let d = parse_document(ID, &doc(json!({}))).unwrap();
    assert_eq!(d.client_name.as_deref(), Some("Example CLI"));
    assert_eq!(
        d.redirect_uris,
        ["http://127.0.0.1/callback", "http://localhost/callback"]
    );
    assert_eq!(d.metadata["token_endpoint_auth_method"], "none");
    assert_eq!(d.metadata["client_uri"], "https://app.example.com");
    assert_eq!(
        d.metadata["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    let d = parse_document(ID, &doc(json!({"grant_types": null, "client_name": null}))).unwrap();
    assert_eq!(d.client_name, None);
    assert_eq!(d.metadata["grant_types"], json!(["authorization_code"]));
    let d = parse_document(ID, &doc(json!({"token_endpoint_auth_method": "none"}))).unwrap();
    assert_eq!(d.metadata["token_endpoint_auth_method"], "none");
}

#[test]
fn bad_documents_are_refused_with_the_reason() {
    for (extra, why) in [
        (
            json!({"client_id": "https://evil.example/c"}),
            "not the URL",
        ),
        (json!({"client_id": null}), "client_id is missing"),
        (json!({"client_id": 7}), "client_id is missing"),
        (
            json!({"client_secret": "s"}),
            "client_secret is not allowed",
        ),
        (
            json!({"client_secret_expires_at": 0}),
            "client_secret_expires_at",
        ),
        (
            json!({"token_endpoint_auth_method": "client_secret_basic"}),
            "only none",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "only none",
        ),
        (json!({"redirect_uris": []}), "redirect_uris is required"),
        (json!({"redirect_uris": null}), "redirect_uris is required"),
        (
            json!({"redirect_uris": "http://127.0.0.1/cb"}),
            "array of strings",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris:",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "loopback",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb#x"]}),
            "fragment",
        ),
        (json!({"grant_types": ["implicit"]}), "not supported"),
        (
            json!({"grant_types": ["client_credentials"]}),
            "not supported",
        ),
        (
            json!({"grant_types": ["refresh_token"]}),
            "must include authorization_code",
        ),
        (json!({"response_types": ["token"]}), "response_types"),
        (json!({"client_name": ""}), "client_name"),
        (json!({"client_name": "a\u{7}b"}), "client_name"),
        (json!({"client_name": 3}), "client_name"),
    ] {
        let err = parse_document(ID, &doc(extra.clone()))
            .expect_err(&extra.to_string())
            .to_string();
        assert!(err.contains(why), "{extra}: {err}");
    }
    let many: Vec<String> = (0..21)
        .map(|i| format!("https://a.example/cb{i}"))
        .collect();
    assert!(parse_document(ID, &doc(json!({ "redirect_uris": many }))).is_err());
    for body in [&b"[]"[..], b"not json", b"\xff\xfe", b""] {
        assert!(matches!(
            parse_document(ID, body),
            Err(CimdError::Document(_))
        ));
    }
}

/// A document server on loopback (plain http: the fetch rules, not TLS, are under test).
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

#[tokio::test]
async fn fetch_reads_one_small_document_without_following_redirects() {
    let big = "x".repeat(MAX_DOCUMENT_BYTES + 1);
    let big_chunked = big.clone();
    let addr = serve(
        axum::Router::new()
            .route(
                "/ok",
                get(|| async {
                    ([(header::CACHE_CONTROL, "max-age=120")], "{\"a\":1}").into_response()
                }),
            )
            .route(
                "/moved",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/ok")]).into_response() }),
            )
            .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
            .route("/big", get(move || async move { big }))
            .route(
                "/big-chunked",
                get(move || async move {
                    let stream = tokio_stream::iter(
                        big_chunked
                            .into_bytes()
                            .chunks(1000)
                            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                            .collect::<Vec<_>>(),
                    );
                    axum::body::Body::from_stream(stream)
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "{}"
                }),
            ),
    )
    .await;
    let url = |path: &str| Url::parse(&format!("http://{addr}{path}")).unwrap();
    let go = |path: &'static str| {
        let u = url(path);
        async move { fetch(&u, &[addr], &[], Duration::from_millis(800)).await }
    };
    let ok = go("/ok").await.unwrap();
    assert_eq!(ok.body, b"{\"a\":1}");
    assert_eq!(ok.fresh_seconds, 120);
    let err = go("/moved").await.unwrap_err().to_string();
    assert!(err.contains("redirects are not followed"), "{err}");
    let err = go("/missing").await.unwrap_err().to_string();
    assert!(err.contains("404"), "{err}");
    for path in ["/big", "/big-chunked"] {
        let err = go(path).await.unwrap_err().to_string();
        assert!(err.contains("larger than 5120 bytes"), "{path}: {err}");
    }
    let started = std::time::Instant::now();
    assert!(matches!(go("/slow").await, Err(CimdError::Fetch(_))));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn fetch_connects_to_the_checked_address_whatever_dns_says() {
    let addr = serve(axum::Router::new().route("/c", get(|| async { "{}" }))).await;
    // A name that does not resolve here: the connection goes to the address it was given.
    let url = Url::parse(&format!("http://cimd.invalid:{}/c", addr.port())).unwrap();
    let got = fetch(&url, &[addr], &[], Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(got.body, b"{}");
}
