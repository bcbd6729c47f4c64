//! Extractors whose rejections are the API's own JSON errors, and the strict readers of what a
//! request carries (content type, form and query pairs) they share with the handlers.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::http::error::{echo, AppError};

/// What a request says its body is: the media type (lowercase, without parameters) and whether
/// its parameters are acceptable (none, or `charset=utf-8`; `extra` names further allowed
/// parameters, like multipart's `boundary`).
pub(crate) fn media_type(headers: &HeaderMap, extra: &[&str]) -> Option<(String, bool)> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut parts = value.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let mut params_ok = true;
    for param in parts {
        let (name, v) = param.split_once('=').unwrap_or((param, ""));
        let name = name.trim().to_ascii_lowercase();
        let v = v.trim().trim_matches('"');
        let ok = match name.as_str() {
            "charset" => v.eq_ignore_ascii_case("utf-8"),
            "" => param.trim().is_empty(),
            n => extra.contains(&n) && !v.is_empty(),
        };
        params_ok &= ok;
    }
    Some((essence, params_ok))
}

/// `content-type: application/json`, optionally `; charset=utf-8` (case-insensitive); nothing
/// else (no `+json`, no other charset).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    matches!(media_type(headers, &[]), Some((m, true)) if m == "application/json")
}

pub(crate) const JSON_ONLY: &str =
    "content-type: expected application/json (optionally with charset=utf-8)";

/// `Json<T>` for a body that is a JSON object (every body of the API is one; serde would
/// otherwise build a struct from an array of its fields) with our JSON errors: 400 for syntax,
/// a body that is not an object, unknown fields and wrong types; 413 for a too large body; 415
/// for any content type but `application/json` (optionally `; charset=utf-8`).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        if !is_json(req.headers()) {
            return Err(AppError::UnsupportedMediaType(JSON_ONLY.into()));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| AppError::from_rejection(r.status(), r.body_text()))?;
        expect_object(&bytes)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// 400 unless the JSON text is an object (its first non-blank byte is `{`; whether the rest
/// is JSON is the parser's to say).
fn expect_object(bytes: &[u8]) -> Result<(), AppError> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let got = match first {
        Some(b'{') => return Ok(()),
        None => "an empty body",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(_) => "something that is not JSON",
    };
    Err(AppError::BadRequest(format!(
        "body: expected a JSON object, got {got}"
    )))
}

fn json_rejection(r: JsonRejection) -> AppError {
    AppError::from_rejection(r.status(), r.body_text())
}

pub use crate::strict_json::Object;

/// `Path<T>` with JSON errors.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> AppError {
    AppError::BadRequest(r.body_text())
}

/// `Query<T>` with JSON errors; a parameter (or its name) that is not UTF-8 once
/// percent-decoded is a 400 naming it, not a value with U+FFFD in it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        form_pairs(
            parts.uri.query().unwrap_or("").as_bytes(),
            "query parameter",
        )?;
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> AppError {
    AppError::BadRequest(r.body_text())
}

/// `application/x-www-form-urlencoded` pairs (a form body or a query string), decoded strictly:
/// a name or value that is not UTF-8 once percent-decoded is a 400 naming it (`what` says
/// what the pairs are: "form field", "query parameter").
pub(crate) fn form_pairs(input: &[u8], what: &str) -> Result<Vec<(String, String)>, AppError> {
    let mut pairs = Vec::new();
    for piece in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (&piece[..i], &piece[i + 1..]),
            None => (piece, &[][..]),
        };
        let name = String::from_utf8(percent_decode(name)).map_err(|_| {
            AppError::BadRequest(format!("{what} name: invalid UTF-8 (percent-encode UTF-8)"))
        })?;
        let value = String::from_utf8(percent_decode(value)).map_err(|_| {
            AppError::BadRequest(format!(
                "{}: invalid UTF-8 (percent-encode UTF-8)",
                echo_name(&name)
            ))
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// A field or parameter name for a message: as is when short and printable, else quoted and
/// cut.
pub(crate) fn echo_name(name: &str) -> String {
    if name.len() <= 64 && name.chars().all(|c| c.is_ascii_graphic()) {
        name.to_string()
    } else {
        echo(name)
    }
}

/// `+` is a space, `%XX` a byte, anything else itself (a `%` not followed by two hex digits
/// too), like every form decoder.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (
                    input.get(i + 1).copied().and_then(hex),
                    input.get(i + 2).copied().and_then(hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// For PATCH bodies: a present `null` is `Some(None)`, an absent field `None`.
pub(crate) fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde::Deserialize;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "application/json; charset=\"utf-8\"",
        ] {
            assert!(is_json(&headers(ok)), "{ok}");
        }
        for bad in [
            "application/vnd.api+json",
            "application/merge-patch+json",
            "application/json; charset=latin1",
            "application/json; charset=iso-8859-1",
            "application/jsonx",
            "application/json; foo=bar",
            "text/json",
            "text/plain",
        ] {
            assert!(!is_json(&headers(bad)), "{bad}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn strict_form_pairs() {
        assert_eq!(
            form_pairs(b"a=1&b=x+y%20z&&c&d=%E2%9C%93", "f").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), String::new()),
                ("d".into(), "\u{2713}".into()),
            ]
        );
        assert_eq!(
            form_pairs(b"p=100%&q=%zz", "f").unwrap(),
            vec![("p".into(), "100%".into()), ("q".into(), "%zz".into())]
        );
        let e = form_pairs(b"name=%FF", "form field").unwrap_err();
        assert_eq!(e.to_string(), "name: invalid UTF-8 (percent-encode UTF-8)");
        let e = form_pairs(b"%C3=1", "query parameter").unwrap_err();
        assert!(e.to_string().starts_with("query parameter name:"), "{e}");
    }

    #[test]
    fn objects_only() {
        #[derive(Debug, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct S {
            a: String,
        }
        let v: Vec<Object<S>> = serde_json::from_str(r#"[{"a": "x"}]"#).unwrap();
        assert_eq!(v, vec![Object(S { a: "x".into() })]);
        assert!(serde_json::from_str::<Vec<Object<S>>>(r#"[["x"]]"#).is_err());
        assert!(serde_json::from_str::<Object<S>>(r#"{"a": "x", "b": 1}"#).is_err());
        assert!(expect_object(b" \n{}").is_ok());
        assert!(expect_object(br#"["arraykey"]"#).is_err());
        assert!(expect_object(b"").is_err());
    }
}
