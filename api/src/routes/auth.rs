//! `POST /auth/register|login|logout`, `GET /users/me`.

use auction_raft::host::NodeStorage;
use auction_statemachine::{query, NewUser, Op, Outcome, RequestId, UserId, META_GROUP};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, CurrentUser};
use crate::error::{ApiError, ApiResult};
use crate::extract::{format_time, idempotency_key, ApiJson, Consistency};
use crate::{new_uuid, views, SharedApp};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Register {
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 8 to 128 characters (`auth::PASSWORD_CHARS_MIN` / `MAX`).
    #[schema(min_length = 8, max_length = 128)]
    password: String,
    #[schema(min_length = 1, max_length = 64)]
    display_name: String,
}

pub async fn register<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Register>,
) -> ApiResult<Response> {
    // The profile rules before the costly hash; the whole user is checked again before proposing.
    auction_statemachine::meta::check_profile(&body.email, &body.display_name)?;
    auth::check_password(&body.password)?;
    let password_hash = auth::hash_password(body.password).await?;
    let op = Op::RegisterUser(NewUser {
        user_id: UserId(new_uuid()),
        email: body.email,
        display_name: body.display_name,
        password_hash,
    });
    let written = app
        .write(
            META_GROUP,
            RequestId(new_uuid()),
            idempotency_key(&headers)?,
            op,
        )
        .await?;
    let Outcome::User(user) = written.outcome else {
        return Err(ApiError::internal(
            "registration answered with another outcome",
        ));
    };
    let status = if written.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({ "user": views::user(&user) }))).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct Login {
    email: String,
    password: String,
}

pub async fn login<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Response> {
    let refused = || ApiError::unauthorized("wrong email or password");
    let attempt = app.limits.begin_login(&*app.host, &body.email).await?;
    // Linearizable: a user registered a moment ago through another node can log in.
    let meta = app.reader(META_GROUP, Consistency::Linearizable).await?;
    let user = query::user_by_email(&meta, &body.email)?;
    let Some(user) = user else {
        // Spend the same effort as a real check so timing does not reveal which emails exist.
        auth::hash_password(body.password).await?;
        return Err(refused());
    };
    if !auth::verify_password(body.password, user.password_hash.clone()).await? {
        return Err(refused());
    }
    app.limits.login_succeeded(&*app.host, attempt).await;
    let (token, token_hash) = auth::new_token();
    let expires_at = app.now_ms() + app.config.session_ttl_ms;
    let op = Op::CreateSession {
        token_hash,
        user_id: user.id,
        expires_at,
    };
    app.write(META_GROUP, RequestId(new_uuid()), None, op)
        .await?;
    let cookie = auth::session_cookie(
        Some(&token),
        app.config.session_ttl_ms / 1_000,
        app.config.cookie_secure,
    );
    let body = json!({
        "token": token,
        "expiresAt": format_time(expires_at),
        "user": views::user(&user),
    });
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

pub async fn logout<S: NodeStorage>(
    State(app): State<SharedApp<S>>,
    current: CurrentUser,
) -> ApiResult<Response> {
    let op = Op::DeleteSession {
        token_hash: current.token_hash,
    };
    app.write(META_GROUP, RequestId(new_uuid()), None, op)
        .await?;
    let cookie = auth::session_cookie(None, 0, app.config.cookie_secure);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

pub async fn me<S: NodeStorage>(current: CurrentUser) -> Json<serde_json::Value> {
    Json(json!({ "user": views::user(&current.user) }))
}
