//! OpenID Connect providers added by configuration alone, against a fake
//! issuer on 127.0.0.1 that serves discovery, its keys, a token endpoint and
//! userinfo, and signs `id_token`s (ES256) with keys of its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Backend, Options, PASSWORD, TestApp, expect_error};
use crate::oauth::REDIRECT;

const CLIENT_ID: &str = "acme-client-id";
const CLIENT_SECRET: &str = "acme-client-secret-value";

/// A P-256 signing key with its `kid`.
struct SigningKey {
    kid: &'static str,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl SigningKey {
    fn new(kid: &'static str) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
        });
        Self { kid, pkcs8: pkcs8.as_ref().to_vec(), jwk }
    }

    /// `claims` signed by this key, the header naming `kid`.
    fn sign(&self, kid: &str, claims: &Value) -> String {
        portcullis_crypto::install_jwt_provider();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&self.pkcs8)).unwrap()
    }
}

/// The fake issuer: its server, and the keys it publishes and signs with.
struct Issuer {
    server: MockServer,
    published: Vec<SigningKey>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl Issuer {
    async fn start() -> Self {
        let issuer = Self { server: MockServer::start().await, published: vec![SigningKey::new("key-1")] };
        issuer.mount_discovery_and_keys().await;
        issuer
    }

    fn url(&self) -> String {
        self.server.uri()
    }

    async fn mount_discovery_and_keys(&self) {
        let base = self.url();
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "userinfo_endpoint": format!("{base}/userinfo"),
                "jwks_uri": format!("{base}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })))
            .mount(&self.server)
            .await;
        let keys: Vec<&Value> = self.published.iter().map(|k| &k.jwk).collect();
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": keys })))
            .mount(&self.server)
            .await;
    }

    /// Publishes another key, as a provider rotating its keys does.
    async fn rotate(&mut self, kid: &'static str) {
        self.published.push(SigningKey::new(kid));
        self.server.reset().await;
        self.mount_discovery_and_keys().await;
    }

    /// The claims of a good `id_token` for this sign-in.
    fn claims(&self, nonce: &str, subject: &str, email: &str) -> Value {
        json!({
            "iss": self.url(), "aud": CLIENT_ID, "sub": subject, "nonce": nonce,
            "iat": now(), "exp": now() + 300,
            "email": email, "email_verified": true, "name": "Ada Lovelace",
            "picture": "https://issuer.example/ada.png",
        })
    }

    /// Answers the code `code` with this `id_token`.
    async fn answer(&self, code: &str, id_token: &str) {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains(format!("code={code}&").as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("at-{code}"), "token_type": "Bearer", "expires_in": 3600,
                "id_token": id_token,
            })))
            .mount(&self.server)
            .await;
    }
}

/// `/authorize` of `provider`: the state, the verifier and the URL's query.
async fn authorize(app: &TestApp, provider: &str) -> (String, String, Vec<(String, String)>) {
    let body = crate::oauth::authorize(app, provider).await;
    let query = crate::oauth::query_of(body["authorization_url"].as_str().unwrap());
    (body["state"].as_str().unwrap().to_owned(), body["code_verifier"].as_str().unwrap().to_owned(), query)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
    crate::oauth::param(query, name).unwrap_or_else(|| panic!("{name} in the URL"))
}

/// What `/authorize` of the `acme` provider answers.
async fn authorize_answer(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.url("/v1/auth/acme/authorize"))
        .query(&[("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap()
}

/// One sign-in through `provider` whose `id_token` is `make(nonce)`.
async fn sign_in(
    app: &TestApp,
    issuer: &Issuer,
    provider: &str,
    code: &str,
    make: impl FnOnce(&str) -> String,
) -> reqwest::Response {
    let (state, verifier, query) = authorize(app, provider).await;
    issuer.answer(code, &make(param(&query, "nonce"))).await;
    let body = json!({"code": code, "redirect_uri": REDIRECT, "state": state, "code_verifier": verifier});
    app.post_json(&format!("/v1/auth/{provider}/callback"), &body).await
}

fn acme_env(issuer: &str) -> Vec<(String, String)> {
    [
        ("AUTH_OIDC_ACME_ISSUER", issuer),
        ("AUTH_OIDC_ACME_CLIENT_ID", CLIENT_ID),
        ("AUTH_OIDC_ACME_CLIENT_SECRET", CLIENT_SECRET),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .to_vec()
}

async fn acme_app(backend: Backend, issuer: &str) -> Option<TestApp> {
    TestApp::spawn_with(backend, Options { oidc_env: acme_env(issuer), ..Options::default() }).await
}

async fn acme_sign_in_refused_for_each_bad_id_token(backend: Backend) {
    let issuer = Issuer::start().await;
    let Some(app) = acme_app(backend, &issuer.url()).await else { return };
    let key = &issuer.published[0];
    let rogue = SigningKey::new("key-1");
    let email = "refused@example.com";
    type MakeToken<'a> = Box<dyn Fn(&str) -> String + 'a>;
    let cases: Vec<(&str, MakeToken<'_>)> = vec![
        (
            "wrong-aud",
            Box::new(|nonce| {
                let mut claims = issuer.claims(nonce, "s-1", email);
                claims["aud"] = json!("another-client");
                key.sign(key.kid, &claims)
            }),
        ),
        (
            "wrong-iss",
            Box::new(|nonce| {
                let mut claims = issuer.claims(nonce, "s-1", email);
                claims["iss"] = json!("https://impostor.example");
                key.sign(key.kid, &claims)
            }),
        ),
        (
            "expired",
            Box::new(|nonce| {
                let mut claims = issuer.claims(nonce, "s-1", email);
                claims["exp"] = json!(now() - 600);
                key.sign(key.kid, &claims)
            }),
        ),
        // Signed by a key the issuer never published, under a published kid.
        ("bad-signature", Box::new(|nonce| rogue.sign(key.kid, &issuer.claims(nonce, "s-1", email)))),
        (
            "other-nonce",
            Box::new(|_| key.sign(key.kid, &issuer.claims("a-nonce-of-another-sign-in", "s-1", email))),
        ),
        (
            "no-nonce",
            Box::new(|nonce| {
                let mut claims = issuer.claims(nonce, "s-1", email);
                claims.as_object_mut().unwrap().remove("nonce");
                key.sign(key.kid, &claims)
            }),
        ),
        // Several audiences, and another client as the authorized party.
        (
            "other-azp",
            Box::new(|nonce| {
                let mut claims = issuer.claims(nonce, "s-1", email);
                claims["aud"] = json!([CLIENT_ID, "another-client"]);
                claims["azp"] = json!("another-client");
                key.sign(key.kid, &claims)
            }),
        ),
        (
            "unknown-kid",
            Box::new(|nonce| key.sign("key-never-published", &issuer.claims(nonce, "s-1", email))),
        ),
    ];
    for (code, make) in cases {
        let response = sign_in(&app, &issuer, "acme", code, make).await;
        assert_eq!(response.status(), 400, "{code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "oauth_exchange_failed", "{code}");
    }
    let nobody = portcullis_domain::Email::parse(email).unwrap();
    assert!(app.users.find_by_email(&nobody).await.unwrap().is_none(), "no refused sign-in made a user");

    // An id_token's nonce comes from the state: a callback without one is refused before any exchange.
    let refused = app
        .post_json("/v1/auth/acme/callback", &json!({"code": "wrong-aud", "redirect_uri": REDIRECT}))
        .await;
    expect_error(refused, 400, "invalid_oauth_state").await;

    // A good one then signs in: nothing above was a fault of the set-up.
    let good = sign_in(&app, &issuer, "acme", "good", |nonce| {
        key.sign(key.kid, &issuer.claims(nonce, "s-1", email))
    })
    .await;
    assert_eq!(good.status(), 200);
}

async fn acme_sign_in_creates_then_finds_and_links_by_verified_email(backend: Backend) {
    let issuer = Issuer::start().await;
    let Some(app) = acme_app(backend, &issuer.url()).await else { return };
    let key = &issuer.published[0];

    let (state, _, query) = authorize(&app, "acme").await;
    assert!(param(&query, "nonce").len() >= 32, "a nonce of its own");
    assert_eq!(param(&query, "client_id"), CLIENT_ID);
    assert_eq!(param(&query, "scope"), "openid email profile");
    assert_eq!(param(&query, "state"), state);
    assert_eq!(param(&query, "code_challenge_method"), "S256");

    let first = sign_in(&app, &issuer, "acme", "c-1", |n| {
        key.sign(key.kid, &issuer.claims(n, "ada", "ada@example.com"))
    })
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["user"]["email"], "ada@example.com");
    assert_eq!(first["user"]["name"], "Ada Lovelace");
    assert_eq!(first["user"]["picture"], "https://issuer.example/ada.png");
    let token = first["access_token"].as_str().unwrap();
    let me: Value = app.get_with("/v1/auth/me", token).await.json().await.unwrap();
    assert_eq!(me["providers"], json!(["acme"]));
    let again = sign_in(&app, &issuer, "acme", "c-2", |n| {
        key.sign(key.kid, &issuer.claims(n, "ada", "ada@example.com"))
    })
    .await;
    assert_eq!(
        again.json::<Value>().await.unwrap()["user"]["id"],
        first["user"]["id"],
        "the same subject, the same user"
    );

    // A member whose address is verified (here: made by the operator) signing
    // in with the provider-verified address is linked, password kept.
    let registration = portcullis_domain::Registration {
        email: "member@example.com".to_owned(),
        password: portcullis_domain::Password::new(PASSWORD.to_owned()),
        full_name: None,
    };
    let member =
        app.services.accounts.create_user(registration, portcullis_domain::Role::User).await.unwrap();
    let member = json!({"id": member.id.to_string()});
    let linked = sign_in(&app, &issuer, "acme", "c-3", |n| {
        key.sign(key.kid, &issuer.claims(n, "bob", "member@example.com"))
    })
    .await;
    let linked: Value = linked.json().await.unwrap();
    assert_eq!(linked["user"]["id"], member["id"]);
    let token = linked["access_token"].as_str().unwrap();
    let me: Value = app.get_with("/v1/auth/me", token).await.json().await.unwrap();
    assert_eq!(me["providers"], json!(["password", "acme"]));
    let kinds = crate::audit::own_event_types(&app, token).await;
    assert_eq!(kinds, ["oauth_login", "oauth_linked"]);
    assert_eq!(app.login("member@example.com", PASSWORD).await.status(), 200, "the password still works");
    crate::audit::assert_no_secret(&app, &[CLIENT_SECRET, "at-c-3"]).await;

    // An address the provider does not vouch for never links and creates nothing.
    let unverified = sign_in(&app, &issuer, "acme", "c-4", |n| {
        let mut claims = issuer.claims(n, "eve", "member@example.com");
        claims["email_verified"] = json!(false);
        key.sign(key.kid, &claims)
    })
    .await;
    expect_error(unverified, 409, "oauth_email_unverified").await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(crate::helpers::Backend::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if std::env::var_os("TEST_DATABASE_URL").is_none() {
                        portcullis_store_postgres::testing::say_skipped("OpenID Connect on PostgreSQL needs TEST_DATABASE_URL");
                        return;
                    }
                    super::$name(crate::helpers::Backend::Postgres).await;
                }
            }
        )*
    };
}

on_both_backends!(
    acme_sign_in_refused_for_each_bad_id_token,
    acme_sign_in_creates_then_finds_and_links_by_verified_email
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_is_one_more_openid_connect_provider_beside_another() {
    let google = Issuer::start().await;
    let acme = Issuer::start().await;
    let options = Options {
        google: Some((google.url(), "google-client-id".to_owned(), "google-secret".to_owned())),
        oidc_env: acme_env(&acme.url()),
        ..Options::default()
    };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let key = &google.published[0];
    let response = sign_in(&app, &google, "google", "g-1", |nonce| {
        let mut claims = google.claims(nonce, "1089", "grace@example.com");
        claims["aud"] = json!("google-client-id");
        key.sign(key.kid, &claims)
    })
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    // The same account then signs in through the other provider: linked by the verified email.
    let acme_key = &acme.published[0];
    let other = sign_in(&app, &acme, "acme", "a-1", |n| {
        acme_key.sign(acme_key.kid, &acme.claims(n, "g", "grace@example.com"))
    })
    .await;
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["user"]["id"], body["user"]["id"]);
    let me: Value =
        app.get_with("/v1/auth/me", other["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["providers"], json!(["acme", "google"]));
    // An id_token Google made for another client does not sign in here.
    let foreign = sign_in(&app, &google, "google", "g-2", |n| {
        key.sign(key.kid, &google.claims(n, "1089", "grace@example.com"))
    })
    .await;
    expect_error(foreign, 400, "oauth_exchange_failed").await;
    // Unconfigured names are 404 on both routes.
    expect_error(
        app.client
            .get(app.url("/v1/auth/okta/authorize?redirect_uri=https://a.example/cb"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        app.post_json("/v1/auth/okta/callback", &json!({"code": "x", "redirect_uri": REDIRECT})).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_are_fetched_once_more_then_an_unknown_key_is_refused() {
    let mut issuer = Issuer::start().await;
    let app = acme_app(Backend::Sqlite, &issuer.url()).await.unwrap();
    let first = &issuer.published[0];
    let signed = sign_in(&app, &issuer, "acme", "r-1", |n| {
        first.sign(first.kid, &issuer.claims(n, "r", "rot@example.com"))
    })
    .await;
    assert_eq!(signed.status(), 200, "the keys are read and kept");
    issuer.rotate("key-2").await;
    let second = &issuer.published[1];
    let signed = sign_in(&app, &issuer, "acme", "r-2", |n| {
        second.sign(second.kid, &issuer.claims(n, "r", "rot@example.com"))
    })
    .await;
    assert_eq!(signed.status(), 200, "a key published since is found by reading the keys again");
    let before =
        issuer.server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/jwks").count();
    let refused = sign_in(&app, &issuer, "acme", "r-3", |n| {
        second.sign("key-3", &issuer.claims(n, "r", "rot@example.com"))
    })
    .await;
    expect_error(refused, 400, "oauth_exchange_failed").await;
    let after =
        issuer.server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == "/jwks").count();
    assert_eq!(after - before, 1, "an unknown key is looked for once more, not more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_slow_or_broken_is_a_502_and_never_a_500() {
    // Nothing listens on the issuer's port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = acme_app(Backend::Sqlite, &format!("http://{closed}")).await.unwrap();
    let response = authorize_answer(&down).await;
    expect_error(response, 502, "provider_error").await;

    type Discovery = Box<dyn Fn(&str) -> ResponseTemplate>;
    let mut broken: Vec<(&str, Discovery)> = vec![
        (
            "slow",
            Box::new(|_| {
                ResponseTemplate::new(200).set_body_json(json!({})).set_delay(Duration::from_secs(3))
            }),
        ),
        ("not JSON", Box::new(|_| ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))),
        ("an error", Box::new(|_| ResponseTemplate::new(503))),
        ("incomplete", Box::new(|base| ResponseTemplate::new(200).set_body_json(json!({"issuer": base})))),
        (
            "plain http endpoints",
            Box::new(|base| {
                ResponseTemplate::new(200).set_body_json(json!({
                    "issuer": base, "authorization_endpoint": "http://idp.example/authorize",
                    "token_endpoint": "http://idp.example/token", "jwks_uri": "http://idp.example/jwks",
                }))
            }),
        ),
    ];
    // A document that names another issuer (a mix-up) is refused too.
    // Kept running: a stopped one's port could be handed to the next server below.
    let impostor_issuer = Issuer::start().await;
    let impostor = impostor_issuer.url();
    broken.push((
        "another issuer",
        Box::new(move |_| {
            ResponseTemplate::new(200).set_body_json(json!({
                "issuer": impostor, "authorization_endpoint": format!("{impostor}/authorize"),
                "token_endpoint": format!("{impostor}/token"), "jwks_uri": format!("{impostor}/jwks"),
            }))
        }),
    ));
    for (what, discovery) in broken {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(discovery(&server.uri()))
            .mount(&server)
            .await;
        let app = acme_app(Backend::Sqlite, &server.uri()).await.unwrap();
        let response = authorize_answer(&app).await;
        assert_eq!(response.status(), 502, "discovery {what}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "provider_error", "discovery {what}");
    }

    // Good discovery and keys, but a token endpoint that breaks or keeps the id_token back.
    let issuer = Issuer::start().await;
    let app = acme_app(Backend::Sqlite, &issuer.url()).await.unwrap();
    for (code, answer) in [
        (
            "no-id-token",
            ResponseTemplate::new(200).set_body_json(json!({"access_token": "at", "token_type": "Bearer"})),
        ),
        (
            "garbage-id-token",
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "at", "token_type": "Bearer", "id_token": "not.a.jwt"}),
            ),
        ),
        ("server-error", ResponseTemplate::new(500).set_body_string("oops")),
        ("slow", ResponseTemplate::new(200).set_delay(Duration::from_secs(3))),
    ] {
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(body_string_contains(format!("code={code}&").as_str()))
            .respond_with(answer)
            .mount(&issuer.server)
            .await;
        let (state, verifier, _) = authorize(&app, "acme").await;
        let body = json!({"code": code, "redirect_uri": REDIRECT, "state": state, "code_verifier": verifier});
        let response = app.post_json("/v1/auth/acme/callback", &body).await;
        assert_eq!(response.status(), 502, "{code}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "provider_error", "{code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_takes_a_provider_from_its_environment_alone() {
    let issuer = Issuer::start().await;
    let dir = crate::binary::scratch();
    let url = issuer.url();
    let (child, port) = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            let env = acme_env(&url);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            crate::binary::start_with(&dir, &env)
        }
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    // reqwest takes rustls's process-wide provider; no test server may have installed it yet.
    portcullis::install_crypto_provider();
    let client = reqwest::Client::new();
    let body: Value = client
        .get(format!("{base}/v1/auth/acme/authorize"))
        .query(&[("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = url::Url::parse(body["authorization_url"].as_str().unwrap()).unwrap();
    let nonce = url.query_pairs().find(|(k, _)| k == "nonce").unwrap().1.into_owned();
    let key = &issuer.published[0];
    issuer.answer("bin-1", &key.sign(key.kid, &issuer.claims(&nonce, "bin", "bin@example.com"))).await;
    let login = client
        .post(format!("{base}/v1/auth/acme/callback"))
        .json(&json!({"code": "bin-1", "redirect_uri": REDIRECT, "state": body["state"], "code_verifier": body["code_verifier"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let login: Value = login.json().await.unwrap();
    assert_eq!(login["user"]["email"], "bin@example.com");
    let openapi: Value =
        client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(
        openapi["paths"]["/v1/auth/{provider}/callback"]["post"].is_object(),
        "the generic callback is documented"
    );
    tokio::task::spawn_blocking(move || crate::binary::stop(child)).await.unwrap();
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(
        !log.contains(CLIENT_SECRET) && !log.contains("at-bin-1"),
        "no secret or provider token in the log"
    );
    std::fs::remove_dir_all(&dir).ok();
}
