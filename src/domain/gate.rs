//! The gate in front of sites Anteroom did not build: the origins an event may
//! send its admitted visitors back to, how a return address is checked against
//! them (never an open redirect), how it carries the pass, and which cookie
//! scope Anteroom and such a site share.

use std::borrow::Cow;

use serde::Serialize;
use url::{Host, Url};

use super::{EventId, InvalidField, Pass};

/// An event lists at most this many sites: a list, not a registry.
pub const MAX_RETURN_ORIGINS: usize = 32;
/// A return address longer than this is refused: it travels in query strings
/// and `Location` headers, which servers and proxies bound.
pub const MAX_RETURN_TO_BYTES: usize = 2048;
/// The query parameter (and cookie) that carries a pass to the protected site.
pub const PASS_PARAMETER: &str = "anteroom_pass";

/// Whether `pass` lets its holder in to `event` at `now_ms` (unix ms): the
/// rule of new holds and of the gate alike.
pub fn pass_admits(pass: &Pass, event: &EventId, now_ms: i64) -> bool {
    pass.event == *event && pass.expires_at_ms > now_ms
}

/// `scheme://host[:port]` of a web site, as browsers serialise an origin: lower
/// case, IDNs in punycode, the default port left out. Two spellings of one
/// origin compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Origin(String);

/// How an origin must be written, said once for every refusal.
const ORIGIN_FORM: &str = "must be an origin such as https://shop.example or http://127.0.0.1:8081 \
     (http or https, a host and an optional port; no path, query or user)";

impl Origin {
    /// An origin as an operator writes it; a lone trailing `/` is forgiven.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let url = web_url(raw).ok_or(ORIGIN_FORM)?;
        let bare = url.path() == "/"
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
            && !raw.trim_end_matches('/').contains(['?', '#'])
            && raw.trim_end_matches('/').matches('/').count() == 2;
        if !bare {
            return Err(ORIGIN_FORM);
        }
        Ok(Self::of(&url))
    }

    fn of(url: &Url) -> Self {
        Self(url.origin().ascii_serialization())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The return origins of an event, each checked, at most [`MAX_RETURN_ORIGINS`].
pub fn parse_return_origins(raw: &[String]) -> Result<Vec<Origin>, InvalidField> {
    if raw.len() > MAX_RETURN_ORIGINS {
        return Err(InvalidField::new(
            "return_origins",
            format!("at most {MAX_RETURN_ORIGINS} origins"),
        ));
    }
    let mut origins: Vec<Origin> = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        let origin = Origin::parse(text)
            .map_err(|why| InvalidField::new(format!("return_origins[{i}]"), why))?;
        // The same site twice (perhaps spelled differently) is kept once.
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// Why a return address was refused, in words the refusal page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL at all, or one that is too long.
    Malformed,
    /// `//host/…`: it would inherit whatever scheme the page had.
    ProtocolRelative,
    /// A URL, but not of a web page (`javascript:`, `data:`, `file:`…).
    NotWeb,
    /// `https://user:password@host`: a classic way to disguise where a link goes.
    Credentials,
    /// A web address of a site the event does not list.
    NotListed(Origin),
}

/// A return address that the event lists: the only kind Anteroom redirects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnTo(Url);

impl ReturnTo {
    /// Checks `raw` against the event's origins. What is redirected to later is
    /// this parse's serialisation, never `raw`: browsers read it exactly as it
    /// was checked.
    pub fn parse(raw: &str, allowed: &[Origin]) -> Result<Self, Refusal> {
        if raw.len() > MAX_RETURN_TO_BYTES {
            return Err(Refusal::Malformed);
        }
        let Some(url) = web_url(raw) else {
            let trimmed = raw.trim_start();
            return Err(
                if trimmed.starts_with("//") || trimmed.starts_with("\\\\") {
                    Refusal::ProtocolRelative
                } else if Url::parse(trimmed).is_ok() {
                    Refusal::NotWeb
                } else {
                    Refusal::Malformed
                },
            );
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        let origin = Origin::of(&url);
        if !allowed.contains(&origin) {
            return Err(Refusal::NotListed(origin));
        }
        Ok(Self(url))
    }

    /// The site as the page names it: its host, and its port when not the
    /// scheme's default ("shop.example", "127.0.0.1:8081").
    pub fn site(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Where the admitted visitor is sent: this address with `anteroom_pass=<pass>`
    /// added to its query (the rest of the query kept as it was written; an old
    /// pass in it replaced).
    pub fn with_pass(&self, pass: &str) -> String {
        let mut url = self.0.clone();
        let kept = url.query().map(|q| without_pass(q).into_owned());
        let pass: String = url::form_urlencoded::byte_serialize(pass.as_bytes()).collect();
        let query = match kept.as_deref() {
            None | Some("") => format!("{PASS_PARAMETER}={pass}"),
            Some(kept) => format!("{kept}&{PASS_PARAMETER}={pass}"),
        };
        url.set_query(Some(&query));
        url.into()
    }

    /// Which cookie scope Anteroom, at `anteroom`, can set the pass in so that
    /// this site receives it.
    pub fn cookie_scope(&self, anteroom: &Url) -> Option<CookieScope> {
        cookie_scope(anteroom.host()?, self.0.host()?)
    }
}

/// An absolute `http:`/`https:` URL written with its `//`; anything else `None`.
fn web_url(raw: &str) -> Option<Url> {
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    // The parser would read `https:\\evil.example` as `https://evil.example` and
    // forgive spaces and tabs: a return address must not need forgiving.
    if raw.contains('\\') || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    url.host().is_some().then_some(url)
}

/// A query without its `anteroom_pass` parameters, every other one as written.
fn without_pass(query: &str) -> Cow<'_, str> {
    let is_pass = |pair: &&str| pair.split('=').next() == Some(PASS_PARAMETER);
    if !query.split('&').any(|pair| is_pass(&pair)) {
        return Cow::Borrowed(query);
    }
    Cow::Owned(
        query
            .split('&')
            .filter(|pair| !is_pass(pair) && !pair.is_empty())
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// A URL as a proxy reported it, without any pass in its query: the address to
/// come back to after the line, not a pass to keep showing around.
pub fn strip_pass(raw: &str) -> Cow<'_, str> {
    let Some((before, rest)) = raw.split_once('?') else {
        return Cow::Borrowed(raw);
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (rest, None),
    };
    match without_pass(query) {
        Cow::Borrowed(_) => Cow::Borrowed(raw),
        Cow::Owned(query) => {
            let mut out = before.to_owned();
            if !query.is_empty() {
                out.push('?');
                out.push_str(&query);
            }
            if let Some(fragment) = fragment {
                out.push('#');
                out.push_str(fragment);
            }
            Cow::Owned(out)
        }
    }
}

/// Where a cookie set by Anteroom reaches the protected site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieScope {
    /// The same host: a cookie without `Domain` (browsers send it to every port).
    HostOnly,
    /// `Domain=<parent>`: the parent domain both hosts are under.
    Domain(String),
}

/// The scope both hosts share, if any: the same host, or the longest parent
/// domain of at least two labels that both are in. An IP address shares only
/// with itself. A shared parent that is a public suffix (`github.io`, `co.uk`)
/// is offered too: browsers refuse such a cookie, and the site still gets the
/// pass from the query.
pub fn cookie_scope(anteroom: Host<&str>, site: Host<&str>) -> Option<CookieScope> {
    match (anteroom, site) {
        (Host::Domain(a), Host::Domain(s)) => {
            let (a, s) = (a.trim_end_matches('.'), s.trim_end_matches('.'));
            if a.eq_ignore_ascii_case(s) {
                return Some(CookieScope::HostOnly);
            }
            let shared: Vec<&str> = a
                .rsplit('.')
                .zip(s.rsplit('.'))
                .take_while(|(x, y)| x.eq_ignore_ascii_case(y))
                .map(|(x, _)| x)
                .collect();
            (shared.len() >= 2).then(|| {
                let labels: Vec<&str> = shared.into_iter().rev().collect();
                CookieScope::Domain(labels.join(".").to_ascii_lowercase())
            })
        }
        (a, s) => (a == s).then_some(CookieScope::HostOnly),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(raw: &[&str]) -> Vec<Origin> {
        parse_return_origins(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_pass_admits_to_its_own_event_until_it_ends() {
        let event = EventId::parse("rock").unwrap();
        let pass = Pass {
            event: event.clone(),
            key: crate::domain::TokenKey::regular(1),
            token_id: uuid::Uuid::nil(),
            expires_at_ms: 1_000,
        };
        assert!(pass_admits(&pass, &event, 999));
        assert!(!pass_admits(&pass, &event, 1_000), "not at its end");
        assert!(!pass_admits(&pass, &EventId::parse("jazz").unwrap(), 999));
    }

    #[test]
    fn origins_are_normalised_as_browsers_write_them() {
        let cases = [
            ("https://shop.example", "https://shop.example"),
            ("https://shop.example/", "https://shop.example"),
            ("HTTPS://Shop.EXAMPLE:443", "https://shop.example"),
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
            ("http://shop.example:80", "http://shop.example"),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ];
        for (raw, origin) in cases {
            assert_eq!(
                Origin::parse(raw).map(|o| o.0),
                Ok(origin.to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn anything_but_a_bare_web_origin_is_refused() {
        for bad in [
            "",
            "shop.example",
            "//shop.example",
            "ftp://shop.example",
            "javascript:alert(1)",
            "https://shop.example/path",
            "https://shop.example?q=1",
            "https://shop.example/?q=1",
            "https://shop.example#top",
            "https://user@shop.example",
            "https://user:pw@shop.example",
            "https:shop.example",
            "https:\\\\shop.example",
            " https://shop.example",
            "https://shop .example",
            "https://",
            "https://shop.example//",
        ] {
            assert_eq!(Origin::parse(bad), Err(ORIGIN_FORM), "{bad:?}");
        }
    }

    #[test]
    fn the_list_is_bounded_and_each_entry_named_when_refused() {
        let many: Vec<String> = (0..=MAX_RETURN_ORIGINS)
            .map(|i| format!("https://s{i}.example"))
            .collect();
        assert_eq!(
            parse_return_origins(&many).unwrap_err().field,
            "return_origins"
        );
        assert!(parse_return_origins(&many[..MAX_RETURN_ORIGINS]).is_ok());
        let refused =
            parse_return_origins(&["https://a.example".into(), "https://b.example/x".into()])
                .unwrap_err();
        assert_eq!(refused.field, "return_origins[1]");
        assert_eq!(
            origins(&["https://a.example", "HTTPS://A.example:443/"]),
            origins(&["https://a.example"]),
            "one site spelled twice is kept once"
        );
    }

    #[test]
    fn a_return_address_must_be_on_a_listed_origin() {
        let allowed = origins(&["https://shop.example", "http://127.0.0.1:8081"]);
        for ok in [
            "https://shop.example",
            "https://shop.example/checkout?item=7#pay",
            "HTTPS://SHOP.example:443/a",
            "http://127.0.0.1:8081/protected",
        ] {
            assert!(ReturnTo::parse(ok, &allowed).is_ok(), "{ok}");
        }
        let not_listed = |raw: &str, origin: &str| {
            assert_eq!(
                ReturnTo::parse(raw, &allowed),
                Err(Refusal::NotListed(Origin(origin.into()))),
                "{raw}"
            )
        };
        not_listed("https://evil.example/", "https://evil.example");
        not_listed("http://shop.example/", "http://shop.example");
        not_listed("https://shop.example:8443/", "https://shop.example:8443");
        not_listed(
            "https://shop.example.evil.example/",
            "https://shop.example.evil.example",
        );
        not_listed("http://127.0.0.1:8082/", "http://127.0.0.1:8082");
        // The host is what follows the last `@` of the authority, as browsers read it.
        assert_eq!(
            ReturnTo::parse("https://shop.example@evil.example/", &allowed),
            Err(Refusal::Credentials)
        );
        let refused = |raw: &str, why: Refusal| {
            assert_eq!(ReturnTo::parse(raw, &allowed), Err(why), "{raw:?}")
        };
        refused("//evil.example/", Refusal::ProtocolRelative);
        refused("\\\\evil.example/", Refusal::ProtocolRelative);
        refused("javascript:alert(document.cookie)", Refusal::NotWeb);
        refused("JavaScript:alert(1)//https://shop.example", Refusal::NotWeb);
        refused("data:text/html,<script>alert(1)</script>", Refusal::NotWeb);
        refused("https:evil.example", Refusal::NotWeb);
        refused("https:\\\\evil.example", Refusal::NotWeb);
        refused("https://shop.example\\@evil.example", Refusal::NotWeb);
        refused("/events/x", Refusal::Malformed);
        refused("", Refusal::Malformed);
        refused("https://shop.example/\n", Refusal::NotWeb);
        refused("https://user:pw@shop.example/", Refusal::Credentials);
        let long = format!("https://shop.example/{}", "a".repeat(MAX_RETURN_TO_BYTES));
        refused(&long, Refusal::Malformed);
    }

    #[test]
    fn the_site_is_named_by_its_host_and_any_port_that_is_not_the_default() {
        let allowed = origins(&["https://shop.example", "http://127.0.0.1:8081"]);
        let site = |raw: &str| ReturnTo::parse(raw, &allowed).unwrap().site();
        assert_eq!(site("https://shop.example:443/a"), "shop.example");
        assert_eq!(site("http://127.0.0.1:8081/a"), "127.0.0.1:8081");
    }

    #[test]
    fn the_pass_is_added_to_the_query_as_it_was_written() {
        let allowed = origins(&["https://shop.example"]);
        let at = |raw: &str| ReturnTo::parse(raw, &allowed).unwrap().with_pass("p.q");
        assert_eq!(
            at("https://shop.example"),
            "https://shop.example/?anteroom_pass=p.q"
        );
        assert_eq!(
            at("https://shop.example/cart?a=b%20c&x=1+2#pay"),
            "https://shop.example/cart?a=b%20c&x=1+2&anteroom_pass=p.q#pay"
        );
        assert_eq!(
            at("https://shop.example/?anteroom_pass=old&a=1&anteroom_pass=older"),
            "https://shop.example/?a=1&anteroom_pass=p.q",
            "an old pass is replaced, not repeated"
        );
        assert_eq!(
            ReturnTo::parse("https://shop.example/", &allowed)
                .unwrap()
                .with_pass("a+b/c="),
            "https://shop.example/?anteroom_pass=a%2Bb%2Fc%3D"
        );
    }

    #[test]
    fn a_reported_url_loses_its_pass_and_keeps_the_rest() {
        assert_eq!(
            strip_pass("https://s.example/a?b=1"),
            "https://s.example/a?b=1"
        );
        assert_eq!(
            strip_pass("https://s.example/a?anteroom_pass=x"),
            "https://s.example/a"
        );
        assert_eq!(
            strip_pass("https://s.example/a?anteroom_pass=x&b=1#f"),
            "https://s.example/a?b=1#f"
        );
        assert_eq!(
            strip_pass("https://s.example/a?b=1&anteroom_pass=x"),
            "https://s.example/a?b=1"
        );
        assert_eq!(
            strip_pass("https://s.example/a?anteroom_passport=1"),
            "https://s.example/a?anteroom_passport=1"
        );
        assert_eq!(strip_pass("https://s.example/a"), "https://s.example/a");
    }

    #[test]
    fn cookies_are_shared_only_under_a_common_parent_domain() {
        let scope = |a: &str, s: &str| {
            let a = Url::parse(a).unwrap();
            let s = Url::parse(s).unwrap();
            cookie_scope(a.host().unwrap(), s.host().unwrap())
        };
        let domain = |d: &str| Some(CookieScope::Domain(d.into()));
        assert_eq!(
            scope("https://queue.shop.example", "https://shop.example"),
            domain("shop.example")
        );
        assert_eq!(
            scope("https://queue.shop.example", "https://www.shop.example"),
            domain("shop.example")
        );
        assert_eq!(
            scope("https://q.a.shop.example", "https://w.a.shop.example"),
            domain("a.shop.example")
        );
        assert_eq!(
            scope("https://Queue.Shop.Example", "https://www.shop.example"),
            domain("shop.example")
        );
        assert_eq!(
            scope("https://shop.example", "https://shop.example:8443"),
            Some(CookieScope::HostOnly)
        );
        assert_eq!(
            scope("http://127.0.0.1:8080", "http://127.0.0.1:9000"),
            Some(CookieScope::HostOnly)
        );
        assert_eq!(scope("https://anteroom.io", "https://shop.example"), None);
        assert_eq!(
            scope("https://a.example", "https://b.example"),
            None,
            "a top-level domain is not shared"
        );
        assert_eq!(
            scope("http://localhost:8080", "http://127.0.0.1:9000"),
            None
        );
        assert_eq!(scope("http://10.0.0.1", "http://10.0.0.2"), None);
    }
}
