//! The pages' words, one file per language (`static/i18n/<lang>.json`): the
//! templates read them on the server and the scripts in the browser (the page
//! carries its language's texts), so a text is translated in one place.
//!
//! A visitor's language is, first, the one they chose with the switch (`?lang=`,
//! remembered in a cookie), else the best match of `Accept-Language`, else English.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use utoipa::PartialSchema;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};

/// The cookie that remembers a language chosen with the switch.
const COOKIE: &str = "anteroom_lang";

/// One language's texts.
pub struct Texts {
    /// The BCP 47 code, as `<html lang>` and `Intl` take it.
    pub lang: &'static str,
    /// The language's own name, for the switch.
    pub name: &'static str,
    map: BTreeMap<String, String>,
    /// The same texts as JSON, for the page's scripts.
    pub json: String,
}

impl Texts {
    fn load(lang: &'static str, source: &str) -> Self {
        // The files are compiled in and checked by the tests below: a broken one
        // is a bug of this build, caught before it ships.
        let map: BTreeMap<String, String> =
            serde_json::from_str(source).unwrap_or_else(|e| panic!("static/i18n/{lang}.json: {e}"));
        let name = map
            .get("language.name")
            .cloned()
            .unwrap_or_else(|| lang.to_owned())
            .leak();
        let json = serde_json::to_string(&map).unwrap_or_default();
        Self {
            lang,
            name,
            map,
            json,
        }
    }

    /// Every language, for the switch.
    pub fn all(&self) -> &'static [Texts] {
        LANGUAGES.as_slice()
    }

    /// The text for `key`; the key itself if this language lacks it (a test
    /// keeps every language complete).
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.map.get(key).map_or(key, String::as_str)
    }

    /// The text for `key` with `{name}` placeholders filled in.
    pub fn fill(&self, key: &str, values: &[(&str, &str)]) -> String {
        values
            .iter()
            .fold(self.get(key).to_owned(), |text, (name, value)| {
                text.replace(&format!("{{{name}}}"), value)
            })
    }
}

/// Every language the pages speak, English first (the fallback).
pub static LANGUAGES: LazyLock<[Texts; 2]> = LazyLock::new(|| {
    [
        Texts::load("en", include_str!("../../static/i18n/en.json")),
        Texts::load("de", include_str!("../../static/i18n/de.json")),
    ]
});

fn by_code(code: &str) -> Option<&'static Texts> {
    let primary = code.split(['-', '_']).next().unwrap_or_default().trim();
    LANGUAGES
        .iter()
        .find(|t| t.lang.eq_ignore_ascii_case(primary))
}

/// The visitor's language, and whether they just chose it with the switch
/// (then the page remembers the choice in a cookie).
pub struct Lang {
    pub texts: &'static Texts,
    pub chosen_now: bool,
}

impl Lang {
    /// The `Set-Cookie` that remembers a choice made with the switch, for a year.
    pub fn remember(&self) -> Option<HeaderValue> {
        self.chosen_now
            .then(|| {
                format!(
                    "{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                    self.texts.lang
                )
            })
            .and_then(|cookie| HeaderValue::from_str(&cookie).ok())
    }

    fn from_parts(parts: &Parts) -> Self {
        let from_query = parts
            .uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name == "lang").then(|| by_code(value)).flatten()
            });
        if let Some(texts) = from_query {
            return Self {
                texts,
                chosen_now: true,
            };
        }
        let from_cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == COOKIE).then(|| by_code(value)).flatten()
            });
        let texts = from_cookie
            .or_else(|| {
                let accepted = parts.headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
                best_accepted(accepted)
            })
            .unwrap_or(&LANGUAGES[0]);
        Self {
            texts,
            chosen_now: false,
        }
    }
}

/// The language of `Accept-Language` with the highest weight that the pages speak.
fn best_accepted(header: &str) -> Option<&'static Texts> {
    header
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let texts = by_code(parts.next()?)?;
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q=")?.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (weight > 0.0).then_some((texts, weight))
        })
        // Stable: among equal weights the first listed wins.
        .fold(
            None,
            |best: Option<(&'static Texts, f32)>, (texts, weight)| match best {
                Some((_, w)) if w >= weight => best,
                _ => Some((texts, weight)),
            },
        )
        .map(|(texts, _)| texts)
}

/// Documents `?lang=`; the cookie and `Accept-Language` are what browsers send anyway.
impl utoipa::IntoParams for Lang {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let codes: Vec<&str> = LANGUAGES.iter().map(|texts| texts.lang).collect();
        // Text, not an enum: an unknown code is not refused, the page falls back.
        let choice = ParameterBuilder::new()
            .name("lang")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(format!(
                "The page's language ({}), remembered in a cookie; without it the cookie's, \
                 then Accept-Language's, then {}",
                codes.join(", "),
                codes[0]
            )))
            .schema(Some(String::schema()));
        vec![choice.build()]
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn lang(uri: &str, headers: &[(&str, &str)]) -> Lang {
        let mut request = axum::http::Request::builder().uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        Lang::from_parts(&parts)
    }

    #[test]
    fn the_switch_wins_over_the_cookie_and_the_cookie_over_the_browser() {
        let chosen = lang(
            "/?lang=de",
            &[("cookie", "anteroom_lang=en"), ("accept-language", "en")],
        );
        assert_eq!(chosen.texts.lang, "de");
        assert!(
            chosen
                .remember()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("anteroom_lang=de;")
        );
        let remembered = lang(
            "/",
            &[
                ("cookie", "a=b; anteroom_lang=de"),
                ("accept-language", "en"),
            ],
        );
        assert_eq!(
            (remembered.texts.lang, remembered.chosen_now),
            ("de", false)
        );
        assert!(remembered.remember().is_none());
    }

    #[test]
    fn accept_language_picks_the_heaviest_language_the_pages_speak() {
        assert_eq!(
            lang("/", &[("accept-language", "fr-FR, de-AT;q=0.8, en;q=0.5")])
                .texts
                .lang,
            "de"
        );
        assert_eq!(
            lang("/", &[("accept-language", "de;q=0.4, en-GB;q=0.9")])
                .texts
                .lang,
            "en"
        );
        assert_eq!(lang("/", &[("accept-language", "de;q=0")]).texts.lang, "en");
        assert_eq!(lang("/", &[("accept-language", "*")]).texts.lang, "en");
        assert_eq!(lang("/?lang=xx", &[]).texts.lang, "en");
    }

    /// The keys the templates and scripts ask for: `t.get("…")` / `t.fill("…"` in
    /// templates, `t("…"` in scripts.
    fn keys_used() -> BTreeSet<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut used = BTreeSet::new();
        for dir in ["templates", "static"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let source = match path.extension().and_then(|e| e.to_str()) {
                    Some("html" | "js") => std::fs::read_to_string(&path).unwrap(),
                    _ => continue,
                };
                for opener in ["t.get(\"", "t.fill(\"", "t(\""] {
                    for (i, _) in source.match_indices(opener) {
                        let rest = &source[i + opener.len()..];
                        let preceded_by_word = source[..i]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_alphanumeric());
                        if !preceded_by_word {
                            used.insert(rest[..rest.find('"').unwrap()].to_owned());
                        }
                    }
                }
            }
        }
        used
    }

    #[test]
    fn every_language_has_every_text_the_pages_use_and_no_other() {
        let english: BTreeSet<&String> = LANGUAGES[0].map.keys().collect();
        for texts in LANGUAGES.iter() {
            let keys: BTreeSet<&String> = texts.map.keys().collect();
            assert_eq!(keys, english, "{} has other keys than en", texts.lang);
            assert!(
                texts.map.values().all(|v| !v.trim().is_empty()),
                "{} has an empty text",
                texts.lang
            );
        }
        let used = keys_used();
        let missing: Vec<_> = used
            .iter()
            .filter(|k| !LANGUAGES[0].map.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "texts used but not defined: {missing:?}"
        );
        let unused: Vec<_> = english
            .iter()
            .filter(|k| !used.contains(k.as_str()) && !k.starts_with("language."))
            .collect();
        assert!(
            unused.is_empty(),
            "texts defined but never used: {unused:?}"
        );
    }

    #[test]
    fn placeholders_are_filled_by_name() {
        let texts = &LANGUAGES[0];
        let filled = texts.fill(
            "home.availability",
            &[("available", "150"), ("total", "200")],
        );
        assert!(
            filled.contains("150") && filled.contains("200") && !filled.contains('{'),
            "{filled}"
        );
    }
}
