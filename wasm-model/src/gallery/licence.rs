//! Normalised licence ids of gallery items (`licence_id`, README "Gallery"): the licence strings galleries come
//! with ("CC-BY-SA-3.0", "Public domain", "GPLv2+", "CC BY 4.0", …) mapped to one lower-case SPDX-like id each, and
//! a table of what each id lets a writer do (public domain or CC0, commercial use, attribution, share-alike,
//! derivatives) — what layout and licence filters and credit lines read instead of parsing free text.

use serde::Serialize;

/// The id of a licence string that is empty or not recognised. Its properties are the cautious ones: nothing
/// is assumed to be allowed.
pub const UNKNOWN_LICENCE: &str = "unknown";

/// What a licence id stands for and allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LicenceInfo {
    /// Lower-case SPDX id (`cc-by-sa-3.0`, `gpl-2.0-or-later`, `mit`), or `pd` (public domain, no SPDX id) or
    /// [`UNKNOWN_LICENCE`].
    pub id: &'static str,
    /// How a credit line names it (`CC BY-SA 3.0`).
    pub name: &'static str,
    /// Where its text is (empty for `pd` and `unknown`).
    pub url: &'static str,
    /// Public domain or CC0: usable without conditions.
    pub public_domain_or_cc0: bool,
    pub commercial_use_allowed: bool,
    /// A credit (author, licence) must go with the picture.
    pub attribution_required: bool,
    /// Adapted versions must carry the same licence.
    pub share_alike: bool,
    /// Adapted versions (crops, edits) may be published (CC "ND" licences: no).
    pub derivatives_allowed: bool,
}

const fn free(id: &'static str, name: &'static str, url: &'static str) -> LicenceInfo {
    LicenceInfo { id, name, url, public_domain_or_cc0: true, commercial_use_allowed: true, attribution_required: false, share_alike: false, derivatives_allowed: true }
}

/// A licence that asks for a credit (permissive: `share_alike` false; copyleft: true).
const fn credit(id: &'static str, name: &'static str, url: &'static str, share_alike: bool) -> LicenceInfo {
    LicenceInfo { id, name, url, public_domain_or_cc0: false, commercial_use_allowed: true, attribution_required: true, share_alike, derivatives_allowed: true }
}

/// A Creative Commons BY licence: `nc` non-commercial, `nd` no derivatives, `sa` share-alike.
const fn cc(id: &'static str, name: &'static str, url: &'static str, nc: bool, nd: bool, sa: bool) -> LicenceInfo {
    LicenceInfo { id, name, url, public_domain_or_cc0: false, commercial_use_allowed: !nc, attribution_required: true, share_alike: sa, derivatives_allowed: !nd }
}

/// Every id publish writes. GNU licences allow commercial use and ask for the copyright notice (attribution);
/// their copyleft is share-alike.
pub const LICENCES: &[LicenceInfo] = &[
    free("pd", "public domain", ""),
    free("cc0-1.0", "CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    cc("cc-by-2.0", "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/", false, false, false),
    cc("cc-by-2.5", "CC BY 2.5", "https://creativecommons.org/licenses/by/2.5/", false, false, false),
    cc("cc-by-3.0", "CC BY 3.0", "https://creativecommons.org/licenses/by/3.0/", false, false, false),
    cc("cc-by-4.0", "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/", false, false, false),
    cc("cc-by-sa-2.0", "CC BY-SA 2.0", "https://creativecommons.org/licenses/by-sa/2.0/", false, false, true),
    cc("cc-by-sa-2.5", "CC BY-SA 2.5", "https://creativecommons.org/licenses/by-sa/2.5/", false, false, true),
    cc("cc-by-sa-3.0", "CC BY-SA 3.0", "https://creativecommons.org/licenses/by-sa/3.0/", false, false, true),
    cc("cc-by-sa-4.0", "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/", false, false, true),
    cc("cc-by-nd-2.0", "CC BY-ND 2.0", "https://creativecommons.org/licenses/by-nd/2.0/", false, true, false),
    cc("cc-by-nd-2.5", "CC BY-ND 2.5", "https://creativecommons.org/licenses/by-nd/2.5/", false, true, false),
    cc("cc-by-nd-3.0", "CC BY-ND 3.0", "https://creativecommons.org/licenses/by-nd/3.0/", false, true, false),
    cc("cc-by-nd-4.0", "CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/", false, true, false),
    cc("cc-by-nc-2.0", "CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/", true, false, false),
    cc("cc-by-nc-2.5", "CC BY-NC 2.5", "https://creativecommons.org/licenses/by-nc/2.5/", true, false, false),
    cc("cc-by-nc-3.0", "CC BY-NC 3.0", "https://creativecommons.org/licenses/by-nc/3.0/", true, false, false),
    cc("cc-by-nc-4.0", "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/", true, false, false),
    cc("cc-by-nc-sa-2.0", "CC BY-NC-SA 2.0", "https://creativecommons.org/licenses/by-nc-sa/2.0/", true, false, true),
    cc("cc-by-nc-sa-2.5", "CC BY-NC-SA 2.5", "https://creativecommons.org/licenses/by-nc-sa/2.5/", true, false, true),
    cc("cc-by-nc-sa-3.0", "CC BY-NC-SA 3.0", "https://creativecommons.org/licenses/by-nc-sa/3.0/", true, false, true),
    cc("cc-by-nc-sa-4.0", "CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/", true, false, true),
    cc("cc-by-nc-nd-2.0", "CC BY-NC-ND 2.0", "https://creativecommons.org/licenses/by-nc-nd/2.0/", true, true, false),
    cc("cc-by-nc-nd-2.5", "CC BY-NC-ND 2.5", "https://creativecommons.org/licenses/by-nc-nd/2.5/", true, true, false),
    cc("cc-by-nc-nd-3.0", "CC BY-NC-ND 3.0", "https://creativecommons.org/licenses/by-nc-nd/3.0/", true, true, false),
    cc("cc-by-nc-nd-4.0", "CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/", true, true, false),
    credit("mit", "MIT licence", "https://opensource.org/license/mit", false),
    credit("apache-2.0", "Apache 2.0", "https://www.apache.org/licenses/LICENSE-2.0", false),
    credit("bsd-2-clause", "BSD 2-clause", "https://opensource.org/license/bsd-2-clause", false),
    credit("bsd-3-clause", "BSD 3-clause", "https://opensource.org/license/bsd-3-clause", false),
    credit("isc", "ISC licence", "https://opensource.org/license/isc-license-txt", false),
    credit("gpl-2.0-only", "GPL 2.0", "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html", true),
    credit("gpl-2.0-or-later", "GPL 2.0 or later", "https://www.gnu.org/licenses/old-licenses/gpl-2.0.html", true),
    credit("gpl-3.0-only", "GPL 3.0", "https://www.gnu.org/licenses/gpl-3.0.html", true),
    credit("gpl-3.0-or-later", "GPL 3.0 or later", "https://www.gnu.org/licenses/gpl-3.0.html", true),
    credit("lgpl-2.1-only", "LGPL 2.1", "https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html", true),
    credit("lgpl-2.1-or-later", "LGPL 2.1 or later", "https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html", true),
    credit("lgpl-3.0-only", "LGPL 3.0", "https://www.gnu.org/licenses/lgpl-3.0.html", true),
    credit("lgpl-3.0-or-later", "LGPL 3.0 or later", "https://www.gnu.org/licenses/lgpl-3.0.html", true),
    credit("agpl-3.0-only", "AGPL 3.0", "https://www.gnu.org/licenses/agpl-3.0.html", true),
    credit("agpl-3.0-or-later", "AGPL 3.0 or later", "https://www.gnu.org/licenses/agpl-3.0.html", true),
    credit("gfdl-1.2-only", "GFDL 1.2", "https://www.gnu.org/licenses/old-licenses/fdl-1.2.html", true),
    credit("gfdl-1.2-or-later", "GFDL 1.2 or later", "https://www.gnu.org/licenses/old-licenses/fdl-1.2.html", true),
    credit("gfdl-1.3-only", "GFDL 1.3", "https://www.gnu.org/licenses/fdl-1.3.html", true),
    credit("gfdl-1.3-or-later", "GFDL 1.3 or later", "https://www.gnu.org/licenses/fdl-1.3.html", true),
    LicenceInfo {
        id: UNKNOWN_LICENCE,
        name: "licence unknown",
        url: "",
        public_domain_or_cc0: false,
        commercial_use_allowed: false,
        attribution_required: true,
        share_alike: false,
        derivatives_allowed: false,
    },
];

/// The table's entry for `id`; an id this build does not know (a newer publisher's, or a hand-edited file)
/// gets the [`UNKNOWN_LICENCE`] entry, so a reader never assumes more than it knows.
pub fn licence_info(id: &str) -> &'static LicenceInfo {
    LICENCES.iter().find(|l| l.id == id).unwrap_or_else(|| LICENCES.last().expect("the table ends with unknown"))
}

/// Spellings that are not SPDX ids, after [`canonical`].
const ALIASES: &[(&str, &str)] = &[
    ("public-domain", "pd"),
    ("publicdomain", "pd"),
    ("public-domain-mark", "pd"),
    ("public-domain-mark-1.0", "pd"),
    ("pdm", "pd"),
    ("pdm-1.0", "pd"),
    ("cc-pdm-1.0", "pd"),
    ("cc0", "cc0-1.0"),
    ("cc-0", "cc0-1.0"),
    ("cc-zero", "cc0-1.0"),
    ("cc0-1", "cc0-1.0"),
    ("cc-0-1.0", "cc0-1.0"),
    ("cc-zero-1.0", "cc0-1.0"),
    ("expat", "mit"),
    ("apache-2", "apache-2.0"),
    ("bsd-2", "bsd-2-clause"),
    ("bsd-3", "bsd-3-clause"),
];

/// Lower case; runs of whitespace, `_`, `-` and `/` become one `-`; a trailing "licence" / "license" word and
/// CC's version names ("unported", "international", "generic") are dropped; "creative-commons-" becomes "cc-".
fn canonical(text: &str) -> String {
    let lower = text.trim().to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        if c.is_whitespace() || matches!(c, '_' | '-' | '/') {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    let mut s = out.trim_end_matches('-').to_string();
    for suffix in ["-licence", "-license", "-unported", "-international", "-generic"] {
        if let Some(rest) = s.strip_suffix(suffix) {
            s = rest.to_string();
        }
    }
    if let Some(rest) = s.strip_prefix("creative-commons-") {
        s = format!("cc-{rest}");
    }
    s
}

/// `2` → `2.0` (SPDX versions have a minor number).
fn full_version(v: &str) -> Option<String> {
    let valid = |part: &str| !part.is_empty() && part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('.') {
        None if valid(v) => Some(format!("{v}.0")),
        Some((major, minor)) if valid(major) && valid(minor) => Some(v.to_string()),
        _ => None,
    }
}

/// GNU licences in their usual spellings: `GPL-2.0+`, `GPLv2+`, `gpl-2.0-or-later`, `LGPL-3.0-only`, `GFDL 1.2`
/// (an unsuffixed version is SPDX's deprecated "only" id), → `gpl-2.0-or-later` …
fn gnu(key: &str) -> Option<String> {
    let family = ["agpl", "lgpl", "gpl", "gfdl"].into_iter().find(|f| key.starts_with(f))?;
    let rest = key[family.len()..].trim_start_matches('-');
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let (version, later) = if let Some(v) = rest.strip_suffix("-or-later").or_else(|| rest.strip_suffix("-later")) {
        (v, true)
    } else if let Some(v) = rest.strip_suffix('+') {
        (v.trim_end_matches('-'), true)
    } else {
        (rest.strip_suffix("-only").unwrap_or(rest), false)
    };
    let version = full_version(version)?;
    Some(format!("{family}-{version}-{}", if later { "or-later" } else { "only" }))
}

/// Creative Commons in its usual spellings: `CC-BY-SA-3.0`, `CC BY-SA 3.0`, `cc-by-sa-3` → `cc-by-sa-3.0`.
fn creative_commons(key: &str) -> Option<String> {
    let (terms, version) = key.rsplit_once('-')?;
    if !terms.starts_with("cc-by") {
        return None;
    }
    Some(format!("{terms}-{}", full_version(version)?))
}

/// The normalised id of a licence string, or `None` when it is empty or not recognised (publish then stores
/// [`UNKNOWN_LICENCE`] and lists the string in its summary, so the captions can be fixed).
pub fn normalise_licence(text: &str) -> Option<&'static str> {
    let key = canonical(text);
    if key.is_empty() {
        return None;
    }
    let key = ALIASES.iter().find(|(alias, _)| *alias == key).map(|(_, id)| id.to_string()).unwrap_or(key);
    let candidates = [Some(key.clone()), gnu(&key), creative_commons(&key)];
    candidates.into_iter().flatten().find_map(|k| LICENCES.iter().find(|l| l.id == k && l.id != UNKNOWN_LICENCE)).map(|l| l.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every licence string of the default gallery's captions and the photo captions of the tests
    /// (scripts/gallery/captions.json, demo-photos.json) maps to an id, and spellings of one licence agree.
    #[test]
    fn the_galleries_licence_strings_all_map() {
        for (text, id) in [
            ("GPL-2.0-or-later", "gpl-2.0-or-later"),
            ("Public-Domain", "pd"),
            ("public domain", "pd"),
            ("Public domain", "pd"),
            ("CC-BY-SA-3.0", "cc-by-sa-3.0"),
            ("CC0-1.0", "cc0-1.0"),
            ("CC0", "cc0-1.0"),
            ("CC-BY-SA-4.0", "cc-by-sa-4.0"),
            ("LGPL-3.0-only", "lgpl-3.0-only"),
            ("CC-BY-4.0", "cc-by-4.0"),
            ("MIT", "mit"),
            ("MIT License", "mit"),
            ("CC-BY-2.0", "cc-by-2.0"),
            ("CC-BY-3.0", "cc-by-3.0"),
            ("GFDL-1.2-or-later", "gfdl-1.2-or-later"),
            ("GPL-2.0+", "gpl-2.0-or-later"),
            ("GPLv2+", "gpl-2.0-or-later"),
            ("gpl 3", "gpl-3.0-only"),
            ("GPL-3.0", "gpl-3.0-only"),
            ("CC BY-SA 3.0", "cc-by-sa-3.0"),
            ("cc by sa 3.0 unported", "cc-by-sa-3.0"),
            ("Creative Commons BY-NC-ND 4.0 International", "cc-by-nc-nd-4.0"),
            ("cc-by-4", "cc-by-4.0"),
            ("  Apache 2.0 ", "apache-2.0"),
            ("Apache-2.0", "apache-2.0"),
            ("BSD-3-Clause", "bsd-3-clause"),
            ("PD", "pd"),
        ] {
            assert_eq!(normalise_licence(text), Some(id), "{text:?}");
        }
    }

    #[test]
    fn what_is_not_a_known_licence_stays_unmapped() {
        for text in ["", "   ", "see the scikit-image data README", "CC-BY-SA", "GPL", "gpl-2.0-or-sooner", "cc-by-9x", "unknown", "cc-by-sa-3.0-de", "all rights reserved"] {
            assert_eq!(normalise_licence(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_table_is_consistent() {
        let mut ids: Vec<&str> = LICENCES.iter().map(|l| l.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), LICENCES.len(), "ids are unique");
        for l in LICENCES {
            assert_eq!(l.id, l.id.to_lowercase());
            assert_eq!(normalise_licence(l.id), (l.id != UNKNOWN_LICENCE).then_some(l.id), "an id normalises to itself");
            assert_eq!(licence_info(l.id), l);
            if l.public_domain_or_cc0 {
                assert!(l.commercial_use_allowed && !l.attribution_required && !l.share_alike && l.derivatives_allowed, "{}", l.id);
            }
            assert_eq!(l.url.is_empty(), matches!(l.id, "pd" | UNKNOWN_LICENCE), "{}", l.id);
        }
        let (nc, sa, nd) = (licence_info("cc-by-nc-sa-4.0"), licence_info("cc-by-sa-3.0"), licence_info("cc-by-nd-4.0"));
        assert!(!nc.commercial_use_allowed && nc.share_alike && nc.attribution_required);
        assert!(sa.commercial_use_allowed && sa.share_alike && !sa.public_domain_or_cc0);
        assert!(!nd.derivatives_allowed && !nd.share_alike);
        assert!(licence_info("mit").attribution_required && !licence_info("mit").share_alike);
        assert!(licence_info("gpl-2.0-or-later").share_alike);
        let unknown = licence_info("some-future-id");
        assert_eq!(unknown.id, UNKNOWN_LICENCE);
        assert!(!unknown.commercial_use_allowed && !unknown.public_domain_or_cc0 && unknown.attribution_required);
    }
}
