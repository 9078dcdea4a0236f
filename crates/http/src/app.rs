use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::UrlencodedError;
use actix_web::{App, HttpRequest, HttpResponse, ResponseError, web};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::middleware;
use crate::openapi::ApiDoc;
use crate::routes::ops;
use crate::state::AppState;

/// The whole API as an actix `App`, ready for `HttpServer::new` or `actix_web::test`.
pub fn configure(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.settings.body_limit;
    let cors = cors(&state.settings.cors_origins);
    let test_endpoints = state.settings.test_endpoints;
    let state_metrics_on_main = state.settings.metrics_on_main;
    let document = ApiDoc::document(test_endpoints, state_metrics_on_main);
    let known = web::Data::new(KnownRoutes::from_document(&document));
    let limited = web::Data::new(crate::limits::LimitedRoutes::from_document(&document));
    let app = App::new()
        .app_data(web::Data::new(state))
        .app_data(known)
        .app_data(limited)
        // JSON bodies are read by `crate::body::Json`, within this limit.
        .app_data(web::PayloadConfig::new(limit))
        // serde's message could quote the query back: say which part is wrong, not what it held.
        .app_data(web::QueryConfig::default().error_handler(|_, _| {
            ApiError::invalid_field("query", "A query parameter has the wrong type or value").into()
        }))
        .app_data(
            web::PathConfig::default()
                .error_handler(|_, _| ApiError::for_status(actix_web::http::StatusCode::NOT_FOUND).into()),
        )
        .app_data(
            web::FormConfig::default()
                .limit(limit)
                .error_handler(move |e, req| form_error(&e, req, limit).into()),
        )
        .wrap(actix_web::middleware::from_fn(crate::limits::per_ip))
        .wrap_fn(move |req, srv| middleware::guard(req, srv, limit))
        .wrap(cors)
        .wrap_fn(crate::context::observe)
        .configure(|config| crate::openapi::register(config, state_metrics_on_main, test_endpoints))
        .configure(crate::pages::register)
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", document))
        .route("/docs", web::get().to(docs_redirect));
    app.default_service(web::to(unrouted))
}

/// `/metrics` alone, for a listener of its own (`AUTH_METRICS_BIND`).
pub fn metrics_app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().app_data(web::Data::new(state)).service(ops::metrics)
}

/// The routes of the OpenAPI document with their methods, so that a known
/// path asked with another method gets 405 and `Allow` rather than 404.
#[derive(Debug)]
struct KnownRoutes(Vec<(Vec<String>, Vec<&'static str>)>);

impl KnownRoutes {
    fn from_document(document: &utoipa::openapi::OpenApi) -> Self {
        let routes = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let segments = path.split('/').map(str::to_owned).collect();
                (segments, methods.iter().filter(|(_, on)| *on).map(|(m, _)| *m).collect())
            })
            .collect();
        Self(routes)
    }

    fn methods_for(&self, path: &str) -> Option<&[&'static str]> {
        let asked: Vec<&str> = path.split('/').collect();
        self.0.iter().find_map(|(template, methods)| {
            let matches = template.len() == asked.len()
                && template.iter().zip(&asked).all(|(t, a)| t == a || (t.starts_with('{') && !a.is_empty()));
            matches.then_some(methods.as_slice())
        })
    }
}

async fn unrouted(req: HttpRequest, known: web::Data<KnownRoutes>) -> Result<HttpResponse, ApiError> {
    let Some(methods) = known.methods_for(req.path()) else {
        return Err(ApiError::new(actix_web::http::StatusCode::NOT_FOUND, "not_found", "No such route"));
    };
    let allow = methods.join(", ");
    let detail = format!("Method {} not allowed; use {allow}", req.method());
    let mut response =
        ApiError::new(actix_web::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail)
            .error_response();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    Ok(response)
}

/// CORS for the configured origins only (none by default): exact matches,
/// no credentials (tokens travel in headers, not cookies), the headers a
/// client needs, and the rate-limit and request-id headers exposed.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "DELETE"])
        .allowed_headers(["authorization", "content-type", "x-api-key", "x-request-id"])
        .expose_headers([
            "x-request-id",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "retry-after",
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish()
}

fn form_error(error: &UrlencodedError, _: &HttpRequest, limit: usize) -> ApiError {
    match error {
        UrlencodedError::Overflow { .. } => ApiError::payload_too_large(limit),
        UrlencodedError::ContentType => {
            ApiError::malformed_body("Content-Type must be application/x-www-form-urlencoded")
        }
        UrlencodedError::Parse(_) => {
            ApiError::invalid_field("body", "username and password are required form fields")
        }
        _ => ApiError::malformed_body("Body could not be read"),
    }
}
