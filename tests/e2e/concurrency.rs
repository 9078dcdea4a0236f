//! Races the storage layer must decide, not luck.

use futures_util::future::join_all;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{PASSWORD, TestApp};

both_backends! {
    async fn twenty_concurrent_registrations_of_one_email_create_one_account(app: &TestApp) {
        let body = json!({"email": "race@example.com", "password": PASSWORD});
        let attempts = (0..20).map(|_| app.post_json("/v1/auth/register", &body));
        let statuses: Vec<u16> = join_all(attempts).await.iter().map(|r| r.status().as_u16()).collect();
        let created = statuses.iter().filter(|s| **s == 201).count();
        let conflicts = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    }

    async fn eight_concurrent_refreshes_of_one_token_yield_one_new_token(app: &TestApp) {
        let token = app.token_for("refresh-race@example.com").await;
        let attempts = (0..8).map(|_| app.post_with("/v1/auth/refresh", &token));
        let responses = join_all(attempts).await;
        let mut winners = Vec::new();
        let mut revoked = 0;
        for response in responses {
            match response.status().as_u16() {
                200 => winners.push(crate::helpers::token_of(response).await),
                401 => {
                    crate::helpers::expect_error(response, 401, "token_revoked").await;
                    revoked += 1;
                }
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!((winners.len(), revoked), (1, 7));
        assert_eq!(app.get_with("/v1/auth/me", &winners[0]).await.status(), 200);
    }
}
