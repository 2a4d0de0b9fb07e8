//! The machine-readable copy of API.md, generated from the handlers: each one
//! carries `#[utoipa::path]` (its route, parameters, answers and links) and
//! its bodies derive `ToSchema`. `router` in `mod.rs` collects the paths as it
//! registers the routes, so a route cannot be served without being described.
//!
//! The schemas of the domain types the bodies carry (`EventId`, `Section`,
//! `Currency`…) are written here, from the domain's own constants, so that
//! `domain/` stays free of the HTTP layer's documentation crate.

use std::sync::LazyLock;

use axum::body::Bytes;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType,
    Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required, Response, Schema};
use utoipa::{IntoParams, Modify, PartialSchema, ToResponse, ToSchema};

use super::error::ErrorBody;
use crate::domain::codes::{MAX_CODE_CHARS, MAX_GENERATED, MIN_CODE_CHARS};
use crate::domain::event::{
    CURRENCIES, MAX_ACTIVE, MAX_PRICE_CENTS, MAX_SEATS_PER_EVENT, MAX_SEATS_PER_USER, MAX_SECONDS,
};
use crate::domain::gate::MAX_RETURN_ORIGINS;
use crate::domain::line::Limit;
use crate::domain::{Access, Admission, Currency, EventId, OrderStatus, Origin, SeatId, Section};

/// What a client needs to know about the whole API, before any route.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Anteroom",
        version = "1.0.0",
        description = "A virtual waiting room with seat booking: the machine-readable copy of API.md. \
            Bodies are JSON unless a page is named; times are RFC 3339 UTC. Every error body is \
            {\"error\": code, \"message\": text}. Unknown request fields are ignored. Every JSON and \
            HTML answer over 1 KB is compressed (gzip, br) when Accept-Encoding allows."
    ),
    tags(
        (name = "admin", description = "Bearer ANTEROOM_ADMIN_TOKEN"),
        (name = "public"),
        (name = "queue", description = "The waiting room"),
        (name = "booking", description = "Bearer admission pass"),
        (name = "operations"),
        (name = "pages", description = "HTML"),
    ),
    // The bodies that routes may go without: they refer to these by name.
    components(schemas(super::events::UpdateEvent, super::queue::JoinBody), responses(
        Unauthorized,
        InvalidToken,
        InvalidPass,
        NotFound,
        PayloadTooLarge,
        InvalidRequest,
        RateLimited,
        Unavailable,
        PageNotFound,
        ReturnRefused,
        HtmlPage,
        NotModified
    )),
    modifiers(&SharedComponents)
)]
pub struct ApiDoc;

/// The security schemes, response headers and error body the routes refer to.
struct SharedComponents;

impl Modify for SharedComponents {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        // The names the handlers' `security(...)` use.
        components.add_security_scheme("admin", bearer("ANTEROOM_ADMIN_TOKEN"));
        components.add_security_scheme(
            "pass",
            bearer("The admission pass from an admitted poll of GET /api/queue/{token}"),
        );
        components.headers.insert(
            RETRY_AFTER.into(),
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                ))
                .description(Some("Whole seconds to wait before retrying"))
                // utoipa's header object has no `required`; OpenAPI's does.
                .extensions(Some(Extensions::from_iter([("required", true)])))
                .build()
                .into(),
        );
        components.headers.insert(
            ETAG.into(),
            HeaderBuilder::new()
                .schema(Some(String::schema()))
                .description(Some(
                    "A validator of this representation: send it back in If-None-Match to get 304 \
                     while it has not changed",
                ))
                .build()
                .into(),
        );
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        // And the schemas the error body refers to.
        let mut referred = Vec::new();
        ErrorBody::schemas(&mut referred);
        components.schemas.extend(referred);
    }
}

const RETRY_AFTER: &str = "Retry-After";
const ETAG: &str = "ETag";

/// The whole document: the paths that `router` registers, on top of [`ApiDoc`].
pub fn document() -> OpenApi {
    super::routes().split_for_parts().1
}

/// The document as `static/openapi.json` holds it and `GET /api/openapi.json`
/// serves it: pretty JSON ending in a newline, computed once.
pub fn json() -> Bytes {
    static JSON: LazyLock<Bytes> = LazyLock::new(|| {
        let mut text = document()
            .to_pretty_json()
            .expect("an OpenAPI document always serializes");
        text.push('\n');
        Bytes::from(text)
    });
    JSON.clone()
}

/// The `$ref` of a component response or header.
fn component_ref(kind: &str, name: &str) -> Ref {
    Ref::new(format!("#/components/{kind}/{name}"))
}

/// Where an error answer carries `seats` (API.md: only `seat_unavailable`).
enum SeatsListed {
    No,
    /// The seats that were not free.
    Some,
    /// `[]`: no block of seats was free.
    Empty,
}

/// One of API.md's error answers: the `Error` body with `error` narrowed to its codes.
struct ErrorAnswer {
    description: &'static str,
    codes: &'static [&'static str],
    retry_after: bool,
    seats: SeatsListed,
    /// Carries a fresh `challenge` and its `bits` (API.md: `challenge_required`).
    fresh_challenge: bool,
}

impl ErrorAnswer {
    const fn of(description: &'static str, codes: &'static [&'static str]) -> Self {
        Self {
            description,
            codes,
            retry_after: false,
            seats: SeatsListed::No,
            fresh_challenge: false,
        }
    }

    fn response(&self) -> Response {
        let mut narrowed = ObjectBuilder::new().property(
            "error",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(self.codes.iter().copied())),
        );
        let seats = ArrayBuilder::new().items(SeatId::schema());
        narrowed = match self.seats {
            SeatsListed::No => narrowed,
            SeatsListed::Some => narrowed.required("seats"),
            SeatsListed::Empty => narrowed
                .property("seats", seats.max_items(Some(0)))
                .required("seats")
                .required("available"),
        };
        if self.fresh_challenge {
            narrowed = narrowed.required("challenge").required("bits");
        }
        let codes = self
            .codes
            .iter()
            .map(|code| format!("`{code}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let body = AllOfBuilder::new()
            .item(Ref::from_schema_name(ErrorBody::name()))
            .item(narrowed);
        let mut response = ResponseBuilder::new()
            .description(format!("{} ({codes})", self.description))
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(body)).build(),
            );
        if self.retry_after {
            response = response.header_ref(RETRY_AFTER, component_ref("headers", RETRY_AFTER));
        }
        response.build()
    }
}

/// Declares each error answer as a type that `#[utoipa::path]` can name:
/// `response = NotFound` refers to the shared one, `response = inline(OrderNotFound)`
/// writes a route's own in place.
macro_rules! error_answers {
    ($($(#[$doc:meta])* $name:ident => $answer:expr;)*) => {$(
        $(#[$doc])*
        pub enum $name {}

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                const ANSWER: ErrorAnswer = $answer;
                (stringify!($name), ANSWER.response().into())
            }
        }
    )*};
}

error_answers! {
    Unauthorized => ErrorAnswer::of("Missing or wrong admin token", &["unauthorized"]);
    InvalidToken => ErrorAnswer::of("Malformed, forged or foreign token", &["invalid_token"]);
    InvalidPass => ErrorAnswer::of("Missing, forged, expired or foreign pass", &["invalid_pass"]);
    NotFound => ErrorAnswer::of("Unknown id", &["not_found"]);
    PayloadTooLarge => ErrorAnswer::of("Body over 64 KiB", &["payload_too_large"]);
    InvalidRequest => ErrorAnswer::of(
        "Missing or malformed fields; `message` names the field",
        &["invalid_request"],
    );
    RateLimited => ErrorAnswer {
        retry_after: true,
        ..ErrorAnswer::of(
            "Too many requests from this client: over ANTEROOM_CLIENT_RATE, or, on admin routes, \
             ten wrong admin tokens this minute",
            &["rate_limited"],
        )
    };
    Unavailable => ErrorAnswer {
        retry_after: true,
        ..ErrorAnswer::of(
            "A backend is unavailable; retry after `Retry-After` seconds",
            &["unavailable"],
        )
    };
    EventExists => ErrorAnswer::of("The id is taken", &["event_exists"]);
    SoldOut => ErrorAnswer::of("No seats remain and none are held", &["sold_out"]);
    ChallengeRequired => ErrorAnswer {
        fresh_challenge: true,
        ..ErrorAnswer::of(
            "The event asks for a proof of work and the join's challenge is missing, malformed, \
             altered, for another event, expired, or not solved at the event's current `bits` \
             (which may have been raised since it was fetched): `challenge` is a fresh one to \
             solve, `bits` the difficulty now; `message` says which",
            &["challenge_required"],
        )
    };
    ChallengeUsed => ErrorAnswer::of(
        "The challenge has already bought a place (each buys one); fetch a new one",
        &["challenge_used"],
    );
    CodeRefused => ErrorAnswer::of(
        "The event is invitation-only (`access: codes`) and the join brought no `code` \
         (`code_required`) or one that was not issued for it (`invalid_code`)",
        &["code_required", "invalid_code"],
    );
    JoinLimited => ErrorAnswer {
        retry_after: true,
        ..ErrorAnswer::of(
            "Wait `Retry-After` seconds: this client is over ANTEROOM_CLIENT_RATE or has sent ten \
             unknown invitation codes this minute (`rate_limited`), or its address has taken the \
             event's `address_limit.places` new places in this window (`too_many_places`)",
            &["rate_limited", "too_many_places"],
        )
    };
    SeatsNotFree => ErrorAnswer {
        seats: SeatsListed::Some,
        ..ErrorAnswer::of(
            "Some seats are not free, or no block of best_available seats exists; nothing was \
             held, and `seats` lists the seats that were not free",
            &["seat_unavailable"],
        )
    };
    NoFreeBlock => ErrorAnswer {
        seats: SeatsListed::Empty,
        ..ErrorAnswer::of(
            "No block of `count` adjacent free seats in one row (in `section` and at most \
             `max_price_cents`, if given) is free now, with `\"seats\": []` and `available` (the \
             message says the same in words)",
            &["seat_unavailable"],
        )
    };
    HoldRefused => ErrorAnswer::of(
        "Unknown or repeated seat ids, or a malformed body (`invalid_request`); more than \
         max_seats_per_user seats across this pass's pending and paid orders (`limit_exceeded`)",
        &["invalid_request", "limit_exceeded"],
    );
    OrderNotFound => ErrorAnswer::of("Unknown id, or another pass's order", &["not_found"]);
    AlreadyPaid => ErrorAnswer::of("The order is paid", &["already_paid"]);
    HoldExpired => ErrorAnswer::of("The hold already expired", &["expired"]);
    PaymentTooLate => ErrorAnswer::of(
        "The hold expired or was cancelled; its seats are free",
        &["expired"],
    );
    NotReady => ErrorAnswer {
        retry_after: true,
        ..ErrorAnswer::of("A backend does not answer", &["unavailable"])
    };
}

/// `200` for a page: HTML in the visitor's language (`?lang=`, the cookie, or
/// `Accept-Language`).
pub enum HtmlPage {}

impl<'r> ToResponse<'r> for HtmlPage {
    fn response() -> (&'r str, RefOr<Response>) {
        let header = |description: &str| {
            HeaderBuilder::new()
                .schema(Some(String::schema()))
                .description(Some(description))
                .build()
        };
        let page = ResponseBuilder::new()
            .description("HTML page")
            .content(
                "text/html",
                ContentBuilder::new().schema(Some(String::schema())).build(),
            )
            .header(
                "Set-Cookie",
                header("Remembers the language chosen with `?lang=` for a year"),
            )
            .header("Vary", header("accept-language, cookie"));
        ("HtmlPage", page.build().into())
    }
}

/// `404` for a page: the not-found page in the visitor's language.
pub enum PageNotFound {}

impl<'r> ToResponse<'r> for PageNotFound {
    fn response() -> (&'r str, RefOr<Response>) {
        let page = ResponseBuilder::new()
            .description("Unknown event: a not-found page")
            .content(
                "text/html",
                ContentBuilder::new().schema(Some(String::schema())).build(),
            );
        ("PageNotFound", page.build().into())
    }
}

/// `400` for a waiting-room page asked to return somewhere it may not.
pub enum ReturnRefused {}

impl<'r> ToResponse<'r> for ReturnRefused {
    fn response() -> (&'r str, RefOr<Response>) {
        let page = ResponseBuilder::new()
            .description(
                "return_to is malformed, not an http(s) address written with its //, carries a user, \
                 or is on an origin the event's return_origins do not list: a page that says which, \
                 in words, and links nowhere but the event",
            )
            .content(
                "text/html",
                ContentBuilder::new().schema(Some(String::schema())).build(),
            );
        ("ReturnRefused", page.build().into())
    }
}

/// `401` from the gate: no valid pass, and where to wait for one.
pub enum GateRefused {}

impl<'r> ToResponse<'r> for GateRefused {
    fn response() -> (&'r str, RefOr<Response>) {
        let mut response = ErrorAnswer::of(
            "No valid pass for this event (none, forged, expired or for another event) in the \
             cookie anteroom_pass nor in Authorization: Bearer",
            &["invalid_pass"],
        )
        .response();
        response.headers.insert(
            "Location".into(),
            RefOr::T(HeaderBuilder::new()
                .schema(Some(String::schema()))
                .description(Some(
                    "The event's waiting room under ANTEROOM_PUBLIC_URL, with return_to (the \
                     request's return_to, else its X-Original-URL header, without any anteroom_pass) \
                     when the request named one",
                ))
                .build()),
        );
        ("GateRefused", response.into())
    }
}

/// `304` for a conditional read.
pub enum NotModified {}

impl<'r> ToResponse<'r> for NotModified {
    fn response() -> (&'r str, RefOr<Response>) {
        let current = ResponseBuilder::new()
            .description(
                "The client's copy is current (If-None-Match named the current ETag); no body",
            )
            .header_ref(ETAG, component_ref("headers", ETAG));
        ("NotModified", current.build().into())
    }
}

/// `If-None-Match` on the reads that answer with an `ETag`.
pub enum IfNoneMatch {}

impl IntoParams for IfNoneMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let header = ParameterBuilder::new()
            .name("If-None-Match")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "The ETag of the body the client already has: 304 with no body while it is current",
            ))
            .schema(Some(String::schema()));
        vec![header.build()]
    }
}

/// Declares a schema-only type: what a field holds when its Rust type says less
/// (a `String` that is a seat id, an instant serialized as RFC 3339 in UTC).
macro_rules! schema_of {
    ($(#[$doc:meta])* $name:ident = $schema:expr) => {
        $(#[$doc])*
        pub enum $name {}

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }

        impl ToSchema for $name {}
    };
}

schema_of! {
    /// An instant as every answer writes it.
    UtcTime = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .pattern(Some("Z$"))
        .description(Some("RFC 3339, UTC"))
        .examples(["2027-06-01T19:00:00Z"])
}

schema_of! {
    /// A section's id, where a request names one.
    SectionId = section_id()
}

schema_of! {
    /// An order narrowed to `pending`: what a hold creates.
    PendingOrder = narrowed("Order", "status", OrderStatus::Pending.as_str())
}

schema_of! {
    /// An order narrowed to `paid`.
    PaidOrder = narrowed("Order", "status", OrderStatus::Paid.as_str())
}

schema_of! {
    /// An order narrowed to `cancelled`.
    CancelledOrder = narrowed("Order", "status", OrderStatus::Cancelled.as_str())
}

schema_of! {
    /// A token's status narrowed to `left`.
    LeftStatus = narrowed("Status", "state", "left")
}

/// `schema` with `field` narrowed to the single value `value`.
fn narrowed(schema: &str, field: &str, value: &str) -> AllOfBuilder {
    AllOfBuilder::new()
        .item(Ref::from_schema_name(schema))
        .item(
            ObjectBuilder::new().property(
                field,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([value])),
            ),
        )
}

fn section_id() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9]{1,8}$"))
        .examples(["A"])
}

/// Text that is not empty nor only white space.
pub fn some_text() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"\S"))
        .description(Some("Not empty nor only white space"))
}

fn whole(min: u64, max: u64) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
}

/// A duration in whole seconds, as the domain accepts it.
pub fn seconds() -> ObjectBuilder {
    whole(1, MAX_SECONDS.into()).description(Some("At most a year"))
}

pub fn abandon_seconds() -> ObjectBuilder {
    seconds().default(Some(crate::domain::event::DEFAULT_ABANDON_SECONDS.into()))
}

pub fn per_second() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Number)
        .exclusive_minimum(Some(0))
        .description(Some("Average admissions per second; may be fractional"))
}

pub fn max_active() -> ObjectBuilder {
    whole(1, MAX_ACTIVE).description(Some("Valid passes at once"))
}

pub fn max_seats_per_user() -> ObjectBuilder {
    whole(1, MAX_SEATS_PER_USER.into())
}

/// An event's sections, as created and as shown.
pub fn sections() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(Section::schema())
        .min_items(Some(1))
        .description(Some("Section ids are unique in the event"))
}

impl PartialSchema for EventId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z0-9-]{1,64}$"))
            .examples(["rock-2027"])
            .into()
    }
}

impl ToSchema for EventId {}

impl PartialSchema for Origin {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^https?://[^/?#@]+/?$"))
            .description(Some(
                "A web origin: http or https, a host and an optional port (no path, query or user); \
                 answered as browsers write it (lower case, default port left out)",
            ))
            .examples(["https://shop.example"])
            .into()
    }
}

impl ToSchema for Origin {}

/// The sites an admitted visitor may be sent back to (the gate).
pub fn return_origins() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(Origin::schema())
        .max_items(Some(MAX_RETURN_ORIGINS))
        .description(Some(
            "The origins that GET /events/{id}?return_to= may send an admitted visitor back to, \
             with the pass in the query parameter anteroom_pass",
        ))
}

/// [`return_origins`] in a request, where null is the same as leaving the field out.
pub fn optional_return_origins() -> ArrayBuilder {
    return_origins().schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
}

/// A field that must be left out (or null) beside another.
fn absent() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::Null)
}

/// `POST /api/admin/events/{id}/codes`: one of `count` and `codes`, never both.
pub fn issue_codes() -> OneOfBuilder {
    let generate = ObjectBuilder::new()
        .property(
            "count",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_GENERATED))
                .description(Some(
                    "How many codes to generate (80 random bits each, shown as \
                     `K7QM-2XPA-9HTW-4RNB`)",
                )),
        )
        .required("count")
        .property("codes", absent());
    // Letters and digits, MIN_CODE_CHARS to MAX_CODE_CHARS of them, dashes and spaces anywhere.
    let code = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^[ -]*([A-Za-z0-9][ -]*){{{MIN_CODE_CHARS},{MAX_CODE_CHARS}}}$"
        )))
        .max_length(Some(MAX_CODE_CHARS * 2));
    let import = ObjectBuilder::new()
        .property(
            "codes",
            ArrayBuilder::new()
                .items(code)
                .min_items(Some(1))
                .description(Some(format!(
                    "An operator's codes to import: letters and digits ({MIN_CODE_CHARS} to \
                 {MAX_CODE_CHARS} of them), grouped by dashes or spaces if you like; case, dashes \
                 and spaces do not matter when a fan types one",
                ))),
        )
        .required("codes")
        .property("count", absent());
    OneOfBuilder::new()
        .item(generate)
        .item(import)
        .description(Some(
            "Either `count` (generate that many codes) or `codes` (import these), not both",
        ))
        .examples([serde_json::json!({"count": 500})])
}

impl PartialSchema for SeatId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Za-z0-9]{1,8}-[1-9][0-9]{0,9}-[1-9][0-9]{0,9}$"))
            .description(Some(
                "`<section>-<row>-<seat>`, rows and seats numbered from 1",
            ))
            .examples(["A-1-1"])
            .into()
    }
}

impl ToSchema for SeatId {}

impl PartialSchema for Currency {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(CURRENCIES.iter().copied()))
            .description(Some(
                "ISO 4217 code of a currency with two decimal places: prices (price_cents, \
                 amount_cents) are hundredths of it. Any other value is 422 invalid_request \
                 naming currency",
            ))
            .into()
    }
}

impl ToSchema for Currency {}

impl PartialSchema for Access {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([Access::Open.as_str(), Access::Codes.as_str()]))
            .description(Some(
                "Who may join: open (anyone) or codes (a join must bring an invitation code \
                 issued for the event). Any other value is 422 invalid_request naming access",
            ))
            .into()
    }
}

impl ToSchema for Access {}

impl PartialSchema for Section {
    fn schema() -> RefOr<Schema> {
        let size = || whole(1, MAX_SEATS_PER_EVENT);
        ObjectBuilder::new()
            .description(Some(format!(
                "At most {MAX_SEATS_PER_EVENT} seats per event in all (an implementation limit)."
            )))
            .property("id", section_id())
            .required("id")
            .property("name", some_text())
            .required("name")
            .property(
                "price_cents",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(MAX_PRICE_CENTS)),
            )
            .required("price_cents")
            .property("rows", size())
            .required("rows")
            .property("seats_per_row", size())
            .required("seats_per_row")
            .into()
    }
}

impl ToSchema for Section {}

impl PartialSchema for Admission {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property("per_second", per_second())
            .required("per_second")
            .property("max_active", max_active())
            .required("max_active")
            .property("pass_seconds", seconds())
            .required("pass_seconds")
            .property("abandon_seconds", seconds())
            .required("abandon_seconds")
            .into()
    }
}

impl ToSchema for Admission {}

impl PartialSchema for OrderStatus {
    fn schema() -> RefOr<Schema> {
        let every = [
            OrderStatus::Pending,
            OrderStatus::Paid,
            OrderStatus::Expired,
            OrderStatus::Cancelled,
        ];
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(every.map(OrderStatus::as_str)))
            .into()
    }
}

impl ToSchema for OrderStatus {}

impl PartialSchema for Limit {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(
                [Limit::Rate, Limit::Passes, Limit::Paused].map(Limit::as_str),
            ))
            .description(Some(
                "What the wait is for: admission's pace (rate), every pass taken, so the next \
                 place waits for one to end or run out (passes), or admission paused by the \
                 organiser (paused). The estimates account for both limits and are never known \
                 to be too short.",
            ))
            .into()
    }
}

impl ToSchema for Limit {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::http::ApiError;
    use crate::ports::BackendError;

    fn document_value() -> Value {
        serde_json::from_slice(&json()).expect("the document is JSON")
    }

    /// The limits that `#[schema(...)]` attributes can only take as literals.
    #[test]
    fn the_limits_written_in_attributes_are_the_handlers_own() {
        let doc = document_value();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["Join"]["properties"]["visitor"]["maxLength"],
            crate::http::queue::MAX_VISITOR_CHARS
        );
        assert_eq!(
            schemas["Pay"]["properties"]["payment_ref"]["maxLength"],
            crate::http::orders::MAX_PAYMENT_REF_CHARS
        );
        assert_eq!(
            // `admission` is `oneOf: [the object, null]`.
            schemas["EventPatch"]["properties"]["admission"]["oneOf"][0]["properties"]["max_active"]
                ["maximum"],
            MAX_ACTIVE
        );
    }

    /// Every code the document names is one `ApiError` answers with, and every
    /// code a route can answer with is documented.
    #[test]
    fn the_documented_error_codes_are_api_errors() {
        let answered: BTreeSet<&str> = [
            ApiError::InvalidRequest(String::new()),
            ApiError::Unauthorized,
            ApiError::NotFound,
            ApiError::EventExists,
            ApiError::SoldOut,
            ApiError::ChallengeRequired {
                reason: String::new(),
                fresh: Box::new(crate::http::challenge::ChallengeBody {
                    challenge: String::new(),
                    bits: 1,
                    expires_at: time::OffsetDateTime::UNIX_EPOCH,
                }),
            },
            ApiError::ChallengeUsed,
            ApiError::CodeRequired,
            ApiError::InvalidCode,
            ApiError::TooManyPlaces {
                retry_after: Duration::ZERO,
            },
            ApiError::InvalidToken,
            ApiError::InvalidPass,
            ApiError::SeatUnavailable(Vec::new()),
            ApiError::LimitExceeded,
            ApiError::Expired,
            ApiError::AlreadyPaid,
            ApiError::PayloadTooLarge,
            ApiError::RateLimited {
                retry_after: Duration::ZERO,
            },
            ApiError::Unavailable(BackendError::unavailable("redis", "down")),
        ]
        .iter()
        .map(|e| e.status_and_code().1)
        .collect();
        let doc = document_value();
        let documented: BTreeSet<&str> = doc["components"]["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, response)| response)
            .chain(
                doc["paths"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .flat_map(|(_, item)| item.as_object().into_iter().flatten())
                    .flat_map(|(_, op)| op["responses"].as_object().into_iter().flatten())
                    .map(|(_, response)| response),
            )
            .filter_map(|response| {
                response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]
                    ["enum"]
                    .as_array()
            })
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(documented, answered);
    }

    /// Every `$ref` names a component the document has: a schema a type refers
    /// to is registered with it.
    #[test]
    fn every_reference_resolves() {
        fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
            match value {
                Value::Object(fields) => fields.iter().for_each(|(name, field)| match field {
                    Value::String(target) if name == "$ref" => found.push(target),
                    other => refs(other, found),
                }),
                Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
                _ => {}
            }
        }
        let doc = document_value();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let pointer = target.strip_prefix('#').unwrap_or(target);
            assert!(
                doc.pointer(pointer).is_some(),
                "{target} resolves to nothing"
            );
        }
    }

    #[test]
    fn the_committed_snapshot_is_the_generated_document() {
        let generated = json();
        let committed = include_str!("../../static/openapi.json");
        assert!(
            committed.as_bytes() == generated.as_ref(),
            "static/openapi.json is not the document the handlers describe; refresh it with \
             `cargo run -- openapi > static/openapi.json` and commit it"
        );
    }
}
