//! The two pages the emailed links open when no application page is
//! configured: `/reset-password` and `/verify-email`. Server-rendered HTML
//! with no inline script or style (a strict Content-Security-Policy allows
//! this origin's own files only), no external asset, and the token left in
//! the URL where the page's script reads it: it is never written into the
//! HTML, and the access log records paths without their query.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};

/// Only this origin's script, style and API calls; no frames, no plugins, no
/// form posted elsewhere, no `<base>` to rewrite links.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
const SCRIPT: &str = include_str!("../assets/pages.js");
const STYLE: &str = include_str!("../assets/pages.css");
pub(crate) const SCRIPT_PATH: &str = "/assets/portcullis-pages.js";
pub(crate) const STYLE_PATH: &str = "/assets/portcullis-pages.css";

/// Registers the pages and their two files.
pub(crate) fn register(config: &mut web::ServiceConfig) {
    config
        .route("/reset-password", web::get().to(reset_password))
        .route("/verify-email", web::get().to(verify_email))
        .route(SCRIPT_PATH, web::get().to(script))
        .route(STYLE_PATH, web::get().to(style));
}

/// Whether the query carries a token the page can post: the one `token`
/// parameter, of a sane length and alphabet. The API decides whether it is
/// valid; this only spares the user a form for a link that cannot work.
fn has_token(req: &HttpRequest, prefix: &str) -> bool {
    let query = req.query_string();
    if query.len() > 512 {
        return false;
    }
    // A token is base62 and `_`: it never needs percent-decoding, and one
    // that does is not a token.
    let mut tokens = query.split('&').filter_map(|pair| pair.strip_prefix("token="));
    match (tokens.next(), tokens.next()) {
        (Some(token), None) => {
            token.starts_with(prefix)
                && token.len() <= 128
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
        _ => false,
    }
}

async fn reset_password(req: HttpRequest) -> HttpResponse {
    let body = if has_token(&req, "prt_") {
        r#"<form id="reset-form" novalidate>
  <label for="new-password">New password</label>
  <input id="new-password" name="new_password" type="password" autocomplete="new-password" required>
  <label for="confirm-password">Repeat it</label>
  <input id="confirm-password" name="confirm_password" type="password" autocomplete="new-password" required>
  <p class="hint">It must meet these rules:</p>
  <ul id="rules"></ul>
  <button id="submit" type="submit">Set the new password</button>
</form>
<div id="outcome" role="status" aria-live="polite"></div>"#
    } else {
        INCOMPLETE
    };
    page("reset-password", "Choose a new password", body)
}

async fn verify_email(req: HttpRequest) -> HttpResponse {
    // Verified on a button press, never on this GET: mail scanners follow
    // links, and must not spend the token.
    let body = if has_token(&req, "pev_") {
        r#"<p>Press the button to confirm that this email address is yours.</p>
<button id="verify" type="button">Verify my email address</button>
<div id="outcome" role="status" aria-live="polite"></div>"#
    } else {
        INCOMPLETE
    };
    page("verify-email", "Verify your email address", body)
}

const INCOMPLETE: &str = r#"<div id="outcome" class="error" role="alert">This link is incomplete or damaged. Open the link from the email again, or ask for a new one.</div>"#;

fn page(name: &str, title: &str, body: &str) -> HttpResponse {
    let status = if body == INCOMPLETE { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="stylesheet" href="{STYLE_PATH}">
<script src="{SCRIPT_PATH}" defer></script>
</head>
<body data-page="{name}">
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#
    );
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((CONTENT_SECURITY_POLICY, CSP))
        .insert_header((CACHE_CONTROL, "no-store"))
        .body(html)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, text: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, content_type))
        .insert_header((CACHE_CONTROL, "public, max-age=3600"))
        .body(text)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn only_one_sane_token_makes_a_form() {
        let good = format!("token=pev_{}", "a".repeat(49));
        assert!(has_token(
            &TestRequest::with_uri(&format!("/verify-email?{good}")).to_http_request(),
            "pev_"
        ));
        for query in [
            String::new(),
            "token=".to_owned(),
            format!("token=prt_{}", "a".repeat(49)),
            format!("{good}&{good}"),
            format!("token=pev_{}", "a".repeat(10_000)),
            "token=pev_%3Cscript%3E".to_owned(),
        ] {
            let req = TestRequest::with_uri(&format!("/verify-email?{query}")).to_http_request();
            assert!(!has_token(&req, "pev_"), "{query}");
        }
    }
}
