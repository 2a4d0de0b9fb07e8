//! The waiting room's API: join, short-poll, leave.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::challenge;
use super::error::ApiError;
use super::events::find;
use super::extract::{JsonBody, PathParam, RequestBody};
use super::limit::{ClientAddr, WithinClientRate};
use super::openapi::{self, LeftStatus, UtcTime};
use crate::domain::challenge::{MAX_NONCE_CHARS, Unsolved};
use crate::domain::codes::{InviteCode, MAX_CODE_CHARS};
use crate::domain::line::{Limit, poll_after_ms};
use crate::domain::{
    Access, Event, EventId, Pass, PollMark, QueueToken, TokenStatus, from_unix_ms,
};
use crate::ports::{BackendError, DoorRefusal};
use crate::services::codes::KnownCode;
use crate::services::line::Standing;
use crate::services::refusals::Refusal;

pub(super) use crate::domain::line::MAX_VISITOR_CHARS;
/// The longest code a join may send: a code's letters and digits, grouped.
const MAX_JOIN_CODE_CHARS: usize = MAX_CODE_CHARS * 2;

/// How far into the line's log an answer was read, and the position it showed
/// ([`PollMark`]). A client sends back the last one it got, so that whichever
/// instance answers next has read at least as much and shows the place no
/// further back: behind a balancer, a position never goes up from one poll to the next.
pub static LOG_POSITION: HeaderName = HeaderName::from_static("anteroom-log-position");

#[derive(Deserialize, ToSchema)]
#[schema(as = Join)]
pub struct JoinBody {
    /// Client-chosen id: joining again with it returns the same token (200) while that place is live (pre_queue, waiting, or admitted with a valid pass); once it has ended (left, abandoned, expired, its pass ran out or was ended) the same id gets a new place at the back of the line (201, a new token)
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    visitor: Option<String>,
    /// On an event with a join_challenge: a challenge from GET /api/events/{id}/challenge
    #[serde(default)]
    challenge: Option<String>,
    /// On an event with a join_challenge: makes sha256(challenge + ":" + nonce) start with the event's `bits` zero bits
    #[serde(default)]
    #[schema(max_length = 64)]
    nonce: Option<String>,
    /// On an invitation-only event (`access: codes`): the fan's invitation code (case, dashes and spaces do not matter). The place is then the code's, not the visitor's: joining again with the code, from any device and with any `visitor`, returns the same place (200) while it is live
    #[serde(default)]
    #[schema(max_length = 128)]
    code: Option<String>,
}

impl RequestBody for JoinBody {
    const OBJECTS: &'static [&'static [&'static str]] = &[&[]];
}

/// A token's state; `token_id` is in every one, and each state only the fields it has.
#[derive(Serialize, ToSchema)]
#[schema(as = Status)]
pub struct StatusBody {
    token_id: Uuid,
    #[serde(flatten)]
    state: TokenState,
    /// Sent as the [`LOG_POSITION`] header, not in the body.
    #[serde(skip)]
    mark: Option<PollMark>,
}

/// Where a token stands, by `state`.
#[derive(Serialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
enum TokenState {
    Waiting {
        /// People ahead plus one; never increases
        #[schema(minimum = 1)]
        position: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        eta_seconds: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        eta_max_seconds: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Limit>)]
        limited_by: Option<&'static str>,
        /// When to ask again
        poll_after_ms: u64,
    },
    PreQueue {
        #[serde(with = "time::serde::rfc3339")]
        #[schema(value_type = UtcTime)]
        opens_at: OffsetDateTime,
        /// When to ask again
        poll_after_ms: u64,
    },
    Admitted {
        /// Bearer credential for holds
        #[schema(min_length = 1)]
        pass: String,
        #[serde(
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        #[schema(value_type = Option<UtcTime>)]
        pass_expires_at: Option<OffsetDateTime>,
        /// When to ask again
        poll_after_ms: u64,
    },
    Expired,
    Left,
    SoldOut,
}

impl StatusBody {
    fn new(token_id: Uuid, state: TokenState) -> Self {
        Self {
            token_id,
            state,
            mark: None,
        }
    }
}

impl StatusBody {
    /// The body as `serde_json` writes it (a unit test holds the two equal),
    /// after `token` when there is one, without the general machinery of a
    /// flattened, tagged enum: the status poll is the hottest answer of all.
    fn to_json(&self, token: Option<&str>) -> Vec<u8> {
        let mut out = JsonObject::with_capacity(192);
        if let Some(token) = token {
            out.field("token", token);
        }
        out.field("token_id", &self.token_id);
        match &self.state {
            TokenState::Waiting {
                position,
                eta_seconds,
                eta_max_seconds,
                limited_by,
                poll_after_ms,
            } => {
                out.field("state", "waiting");
                out.field("position", position);
                out.optional("eta_seconds", eta_seconds.as_ref());
                out.optional("eta_max_seconds", eta_max_seconds.as_ref());
                out.optional("limited_by", limited_by.as_ref());
                out.field("poll_after_ms", poll_after_ms);
            }
            TokenState::PreQueue {
                opens_at,
                poll_after_ms,
            } => {
                out.field("state", "pre_queue");
                out.field("opens_at", &UtcTimeText(*opens_at));
                out.field("poll_after_ms", poll_after_ms);
            }
            TokenState::Admitted {
                pass,
                pass_expires_at,
                poll_after_ms,
            } => {
                out.field("state", "admitted");
                out.field("pass", pass);
                out.optional("pass_expires_at", pass_expires_at.map(UtcTimeText).as_ref());
                out.field("poll_after_ms", poll_after_ms);
            }
            TokenState::Expired => out.field("state", "expired"),
            TokenState::Left => out.field("state", "left"),
            TokenState::SoldOut => out.field("state", "sold_out"),
        }
        out.finish()
    }

    /// The answer: `body` as JSON, with the [`LOG_POSITION`] it was read at.
    fn respond(&self, body: Vec<u8>) -> Response {
        // Room for every header the answer will carry (these two, the security
        // headers, the length): the map is not grown on the hottest answer.
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(value) = self
            .mark
            .as_ref()
            .and_then(|p| HeaderValue::try_from(p.to_string()).ok())
        {
            headers.insert(LOG_POSITION.clone(), value);
        }
        let mut response = Response::new(Body::from(body));
        *response.headers_mut() = headers;
        response
    }
}

/// A JSON object written field by field, each value by `serde_json`.
struct JsonObject(Vec<u8>);

impl JsonObject {
    fn with_capacity(bytes: usize) -> Self {
        let mut out = Vec::with_capacity(bytes);
        out.push(b'{');
        Self(out)
    }

    fn field(&mut self, name: &str, value: &(impl Serialize + ?Sized)) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        self.0.push(b'"');
        self.0.extend_from_slice(name.as_bytes());
        self.0.extend_from_slice(b"\":");
        // Writing a scalar to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.0, value);
    }

    fn optional(&mut self, name: &str, value: Option<&impl Serialize>) {
        if let Some(value) = value {
            self.field(name, value);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

/// A time as the API writes it (RFC 3339).
struct UtcTimeText(OffsetDateTime);

impl Serialize for UtcTimeText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        time::serde::rfc3339::serialize(&self.0, serializer)
    }
}

impl IntoResponse for StatusBody {
    fn into_response(self) -> Response {
        self.respond(self.to_json(None))
    }
}

/// What a join answers: the token to poll with, and its status.
#[derive(Serialize, ToSchema)]
#[schema(as = JoinResult)]
pub struct JoinedBody {
    /// Opaque, signed
    #[schema(min_length = 1)]
    token: String,
    #[serde(flatten)]
    status: StatusBody,
}

impl IntoResponse for JoinedBody {
    fn into_response(self) -> Response {
        self.status.respond(self.status.to_json(Some(&self.token)))
    }
}

#[utoipa::path(
    post,
    path = "/api/events/{id}/queue",
    operation_id = "joinQueue",
    summary = "Join the waiting room",
    description = "Before on_sale_at the join enters the pre-queue (state pre_queue). A 201 is durable.",
    tag = "queue",
    params(("id" = EventId, Path, description = "The event's id")),
    // A `ref` leaves the body optional (an empty one reads as `{}`) without making `null` valid.
    request_body(
        content = ref("#/components/schemas/Join"),
        content_type = "application/json",
        description = "May be empty"
    ),
    responses(
        (status = 201, description = "A new place", body = JoinedBody,
            headers(("Anteroom-Log-Position" = String, description = "How far into the line's log this answer was read, and the position it showed (`<entries>.<epoch>[.<token key>.<position>]`). Send it back unchanged as the `Anteroom-Log-Position` request header with the next poll: an instance that has read less of the log catches up before it answers, and no answer places the token further back than the one before, so that behind a balancer (and through a failover) a position never goes up.")),
            links(
                ("PollQueue" = (operation_id = "pollQueue", parameters(("token" = "$response.body#/token")))),
                ("LeaveQueue" = (operation_id = "leaveQueue", parameters(("token" = "$response.body#/token")))),
            )
        ),
        (status = 200, description = "The visitor's place, still live, in its current state", body = JoinedBody,
            headers(("Anteroom-Log-Position" = String, description = "How far into the line's log this answer was read, and the position it showed (`<entries>.<epoch>[.<token key>.<position>]`). Send it back unchanged as the `Anteroom-Log-Position` request header with the next poll: an instance that has read less of the log catches up before it answers, and no answer places the token further back than the one before, so that behind a balancer (and through a failover) a position never goes up.")),
            links(
                ("PollQueue" = (operation_id = "pollQueue", parameters(("token" = "$response.body#/token")))),
                ("LeaveQueue" = (operation_id = "leaveQueue", parameters(("token" = "$response.body#/token")))),
            )
        ),
        (status = 403, response = inline(openapi::CodeRefused)),
        (status = 404, response = openapi::NotFound),
        (status = 409, response = inline(openapi::ChallengeUsed)),
        (status = 410, response = inline(openapi::SoldOut)),
        (status = 413, response = openapi::PayloadTooLarge),
        (status = 422, response = openapi::InvalidRequest),
        (status = 428, response = inline(openapi::ChallengeRequired)),
        (status = 429, response = inline(openapi::JoinLimited)),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn join(
    State(state): State<AppState>,
    within_rate: Result<WithinClientRate, ApiError>,
    ClientAddr(client): ClientAddr,
    PathParam(id): PathParam,
    JsonBody(body): JsonBody<JoinBody>,
) -> Result<(StatusCode, JoinedBody), ApiError> {
    let event = find(&state, &id)?;
    let answer = join_event(&state, event.clone(), within_rate, client, body).await;
    if let Err(refused) = &answer
        && let Some(why) = refusal(refused)
    {
        state.refusals.note(event.id(), why);
    }
    answer
}

/// The defence that refused a join, if one did.
fn refusal(error: &ApiError) -> Option<Refusal> {
    Some(match error {
        ApiError::ChallengeRequired { .. } => Refusal::ChallengeRequired,
        ApiError::ChallengeUsed => Refusal::ChallengeUsed,
        ApiError::CodeRequired => Refusal::CodeRequired,
        ApiError::InvalidCode => Refusal::InvalidCode,
        ApiError::TooManyPlaces { .. } => Refusal::TooManyPlaces,
        ApiError::RateLimited { .. } => Refusal::RateLimited,
        _ => return None,
    })
}

async fn join_event(
    state: &AppState,
    event: Arc<Event>,
    within_rate: Result<WithinClientRate, ApiError>,
    client: IpAddr,
    body: JoinBody,
) -> Result<(StatusCode, JoinedBody), ApiError> {
    within_rate?;
    if let Some(visitor) = &body.visitor
        && !(1..=MAX_VISITOR_CHARS).contains(&visitor.chars().count())
    {
        return Err(ApiError::InvalidRequest(format!(
            "visitor: must be 1 to {MAX_VISITOR_CHARS} characters"
        )));
    }
    if let Some(nonce) = &body.nonce
        && nonce.chars().count() > MAX_NONCE_CHARS
    {
        return Err(ApiError::InvalidRequest(format!(
            "nonce: must be at most {MAX_NONCE_CHARS} characters"
        )));
    }
    if let Some(code) = &body.code
        && code.chars().count() > MAX_JOIN_CODE_CHARS
    {
        return Err(ApiError::InvalidRequest(format!(
            "code: must be at most {MAX_JOIN_CODE_CHARS} characters"
        )));
    }
    if state.booking.sold_out(&event) {
        return Err(ApiError::SoldOut);
    }
    // On an invitation-only event the place is the code's: it stands in for the visitor id.
    let (visitor, code) = match event.spec.access {
        Access::Open => (body.visitor, None),
        Access::Codes => {
            let code = invitation(state, &event, client, body.code.as_deref()).await?;
            (Some(code.hash.place_key()), Some(code))
        }
    };
    let (ticket, unsolved) = challenge::ticket(
        state,
        &event,
        body.challenge.as_deref(),
        body.nonce.as_deref(),
    );
    let joined = match state
        .line
        .join(event.clone(), visitor, ticket, client)
        .await?
    {
        Ok(joined) => joined,
        Err(DoorRefusal::ChallengeUsed) => return Err(ApiError::ChallengeUsed),
        Err(DoorRefusal::ChallengeRequired) => {
            return Err(ApiError::ChallengeRequired {
                reason: unsolved.unwrap_or(Unsolved::Missing).to_string(),
                fresh: Box::new(challenge::issue(state, &event)?),
            });
        }
        Err(DoorRefusal::TooManyPlaces) => {
            let now = state.clock.now().unix_timestamp();
            return Err(ApiError::TooManyPlaces {
                retry_after: event
                    .spec
                    .address_limit
                    .map_or(Duration::from_secs(1), |limit| limit.until_next_window(now)),
            });
        }
    };
    if let Some(code) = &code {
        state.invitations.used(event.id(), code).await?;
    }
    let token = state.line.token_for(event.id(), joined.message);
    let answer = JoinedBody {
        token: state.line.signer().sign_token(&token),
        status: describe(state, &event, &token, state.clock.now(), None),
    };
    let status = if joined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, answer))
}

/// The invitation code a join on an invitation-only event brought, if it was
/// issued for the event. Unknown codes are limited per client address across
/// every instance, so that codes cannot be guessed by brute force.
async fn invitation(
    state: &AppState,
    event: &Event,
    client: IpAddr,
    raw: Option<&str>,
) -> Result<KnownCode, ApiError> {
    let raw = raw
        .filter(|raw| !raw.trim().is_empty())
        .ok_or(ApiError::CodeRequired)?;
    let now = state.clock.now();
    state
        .code_door
        .attempt(client, now)
        .await
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    // A code that cannot have been issued is as unknown as one that was not.
    let known = match InviteCode::parse(raw, "code") {
        Ok(code) => state.invitations.find(event.id(), &code).await?,
        Err(_) => None,
    };
    match known {
        Some(code) => {
            state.code_door.succeeded(client, now).await;
            Ok(code)
        }
        None => {
            tracing::info!(event = %event.id(), client = %client, "an unknown invitation code was refused");
            Err(ApiError::InvalidCode)
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/queue/{token}",
    operation_id = "pollQueue",
    summary = "Short-poll your place",
    tag = "queue",
    params(
        ("token" = String, Path, min_length = 1, description = "The queue token from the join"),
        ("Anteroom-Log-Position" = Option<String>, Header,
            description = "The `Anteroom-Log-Position` of the client's last status answer. Optional; anything that is not one is ignored."),
    ),
    responses(
        (status = 200, description = "The token's state", body = StatusBody, headers(("Anteroom-Log-Position" = String, description = "How far into the line's log this answer was read, and the position it showed (`<entries>.<epoch>[.<token key>.<position>]`). Send it back unchanged as the `Anteroom-Log-Position` request header with the next poll: an instance that has read less of the log catches up before it answers, and no answer places the token further back than the one before, so that behind a balancer (and through a failover) a position never goes up."))),
        (status = 401, response = openapi::InvalidToken),
    )
)]
pub async fn poll(
    State(state): State<AppState>,
    LastMark(last_mark): LastMark,
    token: Result<PathParam, ApiError>,
) -> Result<StatusBody, ApiError> {
    status_of(&state, last_mark, &raw_token(token)?).await
}

/// The status poll's route, as the router and the request metrics name it...
pub const POLL_ROUTE: &str = "/api/queue/{token}";
/// ...and what its paths start with (`POLL_ROUTE` less its parameter).
const POLL_PREFIX: &str = "/api/queue/";

/// The token a request polls, if it is a status poll whose token the router
/// would read as it stands (one path segment, nothing percent-encoded; the
/// service's tokens are so written): such a request is answered by
/// [`answer_poll`] without axum's router, and any other (an encoded token, a
/// `HEAD`) by the router's [`poll`], which answers it the same.
pub fn polled_token<'a>(method: &Method, uri: &'a Uri) -> Option<&'a str> {
    if method != Method::GET {
        return None;
    }
    let token = uri.path().strip_prefix(POLL_PREFIX)?;
    (!token.is_empty() && memchr::memchr2(b'%', b'/', token.as_bytes()).is_none()).then_some(token)
}

/// The status poll, for a request [`polled_token`] names a token of (the
/// service's `PollFirst` sends no other here).
pub async fn answer_poll(state: AppState, request: Request) -> Result<Response, Infallible> {
    let (parts, _) = request.into_parts();
    let Some(token) = polled_token(&parts.method, &parts.uri) else {
        // Not the path: it may hold a token, which no log line carries.
        let bug = BackendError::bug(format!("a {} that is not a status poll", parts.method));
        return Ok(ApiError::from(bug).into_response());
    };
    let last_mark = LastMark::of(&parts.headers);
    Ok(status_of(&state, last_mark, token).await.into_response())
}

/// A token's status as the poll answers it.
async fn status_of(
    state: &AppState,
    last_mark: Option<PollMark>,
    raw: &str,
) -> Result<StatusBody, ApiError> {
    let (token, event) = verify(state, raw)?;
    if let Some(mark) = &last_mark {
        state.line.read_up_to(&token, &mark.read).await;
    }
    let shown = last_mark.and_then(|mark| mark.shown_to(token.key));
    // Only in the moment after the sale opens, before this process has read the
    // pre-queue's close: without it a regular token's position would later go up.
    if !state.line.can_place(&token)
        && let Err(e) = state.line.catch_up(&event).await
    {
        tracing::debug!(error = %e, "could not read the log before placing a token");
    }
    Ok(describe(state, &event, &token, state.clock.now(), shown))
}

/// The [`LOG_POSITION`] a poll sent back, if it is one (anything else is ignored).
pub struct LastMark(Option<PollMark>);

impl<S: Send + Sync> FromRequestParts<S> for LastMark {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(Self::of(&parts.headers)))
    }
}

impl LastMark {
    fn of(headers: &HeaderMap) -> Option<PollMark> {
        headers
            .get(&LOG_POSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }
}

#[utoipa::path(
    delete,
    path = "/api/queue/{token}",
    operation_id = "leaveQueue",
    summary = "Leave the line, or end an admission pass early",
    tag = "queue",
    params(("token" = String, Path, min_length = 1, description = "The queue token from the join")),
    responses(
        (status = 200, description = "Left; the token then reads `left`", body = inline(LeftStatus),
            headers(("Anteroom-Log-Position" = String, description = "How far into the line's log the leave was written. Send it as the `Anteroom-Log-Position` request header with a later poll: an instance that has read less of the log catches up before it answers, so that behind a balancer the poll reads `left` too."))),
        (status = 401, response = openapi::InvalidToken),
        (status = 503, response = openapi::Unavailable),
    )
)]
pub async fn leave(
    State(state): State<AppState>,
    token: Result<PathParam, ApiError>,
) -> Result<StatusBody, ApiError> {
    let (token, event) = verify(&state, &raw_token(token)?)?;
    let logged_at = state.line.leave(&token, &event).await?;
    Ok(StatusBody {
        mark: logged_at.map(|read| PollMark { read, shown: None }),
        ..StatusBody::new(token.token_id, TokenState::Left)
    })
}

/// A path that does not even decode is no token of ours either.
fn raw_token(param: Result<PathParam, ApiError>) -> Result<String, ApiError> {
    param
        .map(|PathParam(raw)| raw)
        .map_err(|_| ApiError::InvalidToken)
}

fn verify(state: &AppState, raw: &str) -> Result<(QueueToken, Arc<Event>), ApiError> {
    let token = state
        .line
        .signer()
        .verify_token(raw)
        .ok_or(ApiError::InvalidToken)?;
    let event = state
        .catalog
        .get(&token.event)
        .ok_or(ApiError::InvalidToken)?;
    Ok((token, event))
}

/// The answer for a token's current status; `shown`: the position its last
/// answer showed, which this one does not go behind.
fn describe(
    state: &AppState,
    event: &Event,
    token: &QueueToken,
    now: OffsetDateTime,
    shown: Option<u64>,
) -> StatusBody {
    let standing = state.line.standing(token, event, now, shown);
    let mark = standing.read_up_to.clone().map(|read| PollMark {
        read,
        shown: match standing.status {
            TokenStatus::Waiting { position } => Some((token.key, position)),
            _ => None,
        },
    });
    StatusBody {
        mark,
        ..status_body(state, event, token, standing, now)
    }
}

fn status_body(
    state: &AppState,
    event: &Event,
    token: &QueueToken,
    standing: Standing,
    now: OffsetDateTime,
) -> StatusBody {
    let admission = &event.spec.admission;
    let jitter = token.token_id.as_u64_pair().1;
    let token_state = match standing.status {
        TokenStatus::Waiting { .. } | TokenStatus::PreQueue if state.booking.sold_out(event) => {
            TokenState::SoldOut
        }
        TokenStatus::Waiting { position } => {
            let estimate = standing.estimate;
            let eta_seconds = estimate.map(|e| e.eta.seconds);
            TokenState::Waiting {
                position,
                eta_seconds,
                eta_max_seconds: estimate.map(|e| e.eta.max_seconds),
                limited_by: estimate.map(|e| e.limited_by.as_str()),
                poll_after_ms: poll_after_ms(
                    eta_seconds.unwrap_or(0),
                    admission.abandon_seconds,
                    jitter,
                ),
            }
        }
        TokenStatus::PreQueue => {
            let opens_at = event.spec.on_sale_at.unwrap_or(now);
            let until_open = (opens_at - now).whole_seconds().max(0) as u64;
            TokenState::PreQueue {
                opens_at,
                poll_after_ms: poll_after_ms(until_open, admission.abandon_seconds, jitter),
            }
        }
        TokenStatus::Admitted { expires_at_ms } => {
            let pass = Pass {
                event: token.event.clone(),
                key: token.key,
                token_id: token.token_id,
                expires_at_ms,
            };
            TokenState::Admitted {
                pass: state.line.signer().sign_pass(&pass, now),
                pass_expires_at: from_unix_ms(expires_at_ms),
                poll_after_ms: 0,
            }
        }
        TokenStatus::Expired => TokenState::Expired,
        TokenStatus::Left => TokenState::Left,
    };
    StatusBody::new(token.token_id, token_state)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn only_a_get_of_a_token_the_router_would_read_as_written_is_a_plain_poll() {
        assert_eq!(POLL_ROUTE.strip_suffix("{token}"), Some(POLL_PREFIX));
        let polled = |method: Method, uri: &'static str| {
            polled_token(&method, &Uri::from_static(uri)).map(str::to_owned)
        };
        assert_eq!(
            polled(Method::GET, "/api/queue/abc.DEF-_~1").as_deref(),
            Some("abc.DEF-_~1")
        );
        assert_eq!(
            polled(Method::GET, "/api/queue/abc?x=1").as_deref(),
            Some("abc")
        );
        assert_eq!(
            polled(Method::GET, "http://example.com/api/queue/abc").as_deref(),
            Some("abc")
        );
        for (method, uri) in [
            (Method::HEAD, "/api/queue/abc"),
            (Method::DELETE, "/api/queue/abc"),
            (Method::GET, "/api/queue/"),
            (Method::GET, "/api/queue/%41bc"),
            (Method::GET, "/api/queue/abc/"),
            (Method::GET, "/api/queue//abc"),
            (Method::GET, "/api/queues/abc"),
            (Method::GET, "/api/events/abc"),
        ] {
            assert_eq!(polled(method.clone(), uri), None, "{method} {uri}");
        }
    }

    fn states() -> Vec<TokenState> {
        vec![
            TokenState::Waiting {
                position: 1_234_567,
                eta_seconds: Some(90),
                eta_max_seconds: Some(140),
                limited_by: Some("rate"),
                poll_after_ms: 4_321,
            },
            TokenState::Waiting {
                position: 1,
                eta_seconds: None,
                eta_max_seconds: None,
                limited_by: None,
                poll_after_ms: 0,
            },
            TokenState::PreQueue {
                opens_at: datetime!(2030-01-01 20:00:00.5 UTC),
                poll_after_ms: 30_000,
            },
            TokenState::Admitted {
                pass: "eyJ.pass\"with\\odd/chars".into(),
                pass_expires_at: Some(datetime!(2030-01-01 20:10:00 UTC)),
                poll_after_ms: 0,
            },
            TokenState::Admitted {
                pass: "p".into(),
                pass_expires_at: None,
                poll_after_ms: 0,
            },
            TokenState::Expired,
            TokenState::Left,
            TokenState::SoldOut,
        ]
    }

    #[test]
    fn the_status_written_by_hand_is_what_serde_writes() {
        let token_id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        for state in states() {
            let status = StatusBody::new(token_id, state);
            let expected = serde_json::to_vec(&status).expect("serializes");
            assert_eq!(
                String::from_utf8(status.to_json(None)),
                String::from_utf8(expected)
            );
            let joined = JoinedBody {
                token: "tok.en".into(),
                status,
            };
            let expected = serde_json::to_vec(&joined).expect("serializes");
            assert_eq!(
                String::from_utf8(joined.status.to_json(Some(&joined.token))),
                String::from_utf8(expected)
            );
        }
    }
}
