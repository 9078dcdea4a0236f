//! JSON request bodies, read strictly.
//!
//! actix's `web::Json` hands the body to `serde_json::from_slice`, which
//! looks at the fields before it notices data after the value, and whose
//! messages quote the input (`invalid type: string "…", expected u32`).
//! Here a body is first checked to be one JSON value and nothing after it
//! (else 400 `malformed_body`), then read into its type; an error names the
//! field and the position, never the input.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::ApiError;

/// Longest field name quoted back in an error (a name comes from the client).
const MAX_FIELD_NAME: usize = 64;

/// A JSON body of type `T`.
#[derive(Debug)]
pub(crate) struct Json<T>(pub T);

impl<T> Json<T> {
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = is_json(req);
        let limit = req
            .app_data::<web::Data<crate::state::AppState>>()
            .map_or_else(|| crate::state::HttpSettings::default().body_limit, |s| s.settings.body_limit);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::malformed_body("Content-Type must be application/json"));
            }
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(limit)
                } else {
                    ApiError::malformed_body("Body could not be read")
                }
            })?;
            parse(&bytes).map(Json)
        })
    }
}

/// Whether the request says its body is JSON.
fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.as_bytes().split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    essence.eq_ignore_ascii_case(b"application/json")
        || (essence.len() >= 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// A body read already (a route whose body is optional) as a JSON `T`, with
/// the same rules as [`Json`].
pub(crate) fn parse_json_request<T: DeserializeOwned>(
    req: &HttpRequest,
    bytes: &[u8],
) -> Result<T, ApiError> {
    if !is_json(req) {
        return Err(ApiError::malformed_body("Content-Type must be application/json"));
    }
    parse(bytes)
}

/// One JSON value of type `T`, and nothing after it.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut syntax = serde_json::Deserializer::from_slice(bytes);
    let checked = IgnoredAny::deserialize(&mut syntax).and_then(|_| syntax.end());
    if let Err(e) = checked {
        let what = if e.is_eof() {
            "Body is not valid JSON: it ends too early"
        } else if matches!(e.classify(), serde_json::error::Category::Syntax)
            && IgnoredAny::deserialize(&mut serde_json::Deserializer::from_slice(bytes)).is_ok()
        {
            "Body has data after its JSON value"
        } else {
            "Body is not valid JSON"
        };
        return Err(ApiError::malformed_body(format!("{what} (line {}, column {})", e.line(), e.column())));
    }
    // Every body of the API is an object; serde would also read a struct
    // from an array of its fields in order, which no client means.
    if !bytes.trim_ascii_start().starts_with(b"{") {
        return Err(ApiError::invalid_field("body", "body must be a JSON object"));
    }
    // Read without tracking where the reader is (a third of the cost of
    // reading a small body): only a value of the wrong type needs its path,
    // and then the body is read again for it.
    let error = match T::deserialize(&mut serde_json::Deserializer::from_slice(bytes)) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let message = error.to_string();
    let (field, what) = match message.strip_prefix("missing field `") {
        Some(rest) => (rest.split('`').next().unwrap_or("body").to_owned(), "is required".to_owned()),
        None => {
            let tracked =
                serde_path_to_error::deserialize::<_, T>(&mut serde_json::Deserializer::from_slice(bytes));
            let path = tracked.err().map_or_else(|| ".".to_owned(), |e| e.path().to_string());
            (
                if path == "." { "body".to_owned() } else { path },
                format!("has the wrong type or value (line {}, column {})", error.line(), error.column()),
            )
        }
    };
    let field: String = field.chars().take(MAX_FIELD_NAME).collect();
    Err(ApiError::invalid_field(&field, format!("{field} {what}")))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::parse;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
        count: Option<u32>,
    }

    fn refusal(body: &str) -> (u16, String, String) {
        let error = parse::<Login>(body.as_bytes()).expect_err("refused");
        let response = actix_web::ResponseError::error_response(&error);
        (response.status().as_u16(), error.code().to_owned(), error.to_string())
    }

    #[test]
    fn data_after_the_value_is_a_malformed_body_before_any_field_is_looked_at() {
        for body in [r#"{"a":1}{"b":2}"#, r#"{"username":"u"} x"#, "{} []"] {
            let (status, code, detail) = refusal(body);
            assert_eq!((status, code.as_str()), (400, "malformed_body"), "{body}: {detail}");
            assert!(detail.contains("data after its JSON value"), "{detail}");
        }
        assert!(parse::<Login>(br#" {"username":"u","password":"p"} "#).is_ok(), "whitespace is fine");
    }

    #[test]
    fn a_body_that_is_no_object_is_refused_even_when_serde_could_read_it() {
        for body in [r#"["u", "p", null]"#, "[null, null]", "42", r#""text""#, "null"] {
            let (status, code, detail) = refusal(body);
            assert_eq!((status, code.as_str()), (422, "invalid_field"), "{body}: {detail}");
            assert!(detail.contains("must be a JSON object"), "{detail}");
        }
    }

    #[test]
    fn errors_name_the_field_and_position_but_never_echo_the_input() {
        let (status, code, detail) = refusal(r#"{"username":"u","password":"p","count":"SECRET-INPUT"}"#);
        assert_eq!((status, code.as_str()), (422, "invalid_field"));
        assert!(detail.contains("count") && detail.contains("column"), "{detail}");
        assert!(!detail.contains("SECRET-INPUT"), "{detail}");
        let (_, _, detail) = refusal(r#"{"username":"u"}"#);
        assert!(detail.contains("password is required"), "{detail}");
        let (status, code, detail) = refusal(r#"{"username":"SECRET-INPUT"#);
        assert_eq!((status, code.as_str()), (400, "malformed_body"));
        assert!(!detail.contains("SECRET-INPUT"), "{detail}");
        // JSON's grammar allows a lone surrogate escape, but it is no text.
        let (status, code, detail) = refusal(r#"{"username":"\ud800","password":"p"}"#);
        assert_eq!((status, code.as_str()), (422, "invalid_field"), "{detail}");
        assert!(detail.starts_with("422 invalid_field: username"), "{detail}");
    }
}
