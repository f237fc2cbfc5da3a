//! Shared links that look good where they are pasted: `GET /?q=…` (or `/index.html?q=…`) answers the page's
//! `index.html` with Open Graph and Twitter card tags for that query — its title, a description and the preview
//! picture (`/api/preview.jpg?q=…`, a collage of the top results: `preview.rs`) — so a chat or a social site shows
//! the prompt and the pictures. Chat previews never run scripts, so the tags must be in the HTML itself.
//!
//! The tags replace the block between `<!-- share:start -->` and `<!-- share:end -->` in `index.html` (which
//! holds the generic tags a static host serves), or go before `</head>` when there is no block. The query is
//! the user's text: it is cut to [`MAX_TITLE_CHARS`], stripped of control characters and HTML-escaped in every
//! attribute; in URLs it is percent-encoded first. Without `q` the file is served as it is (ServeDir).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::reload::SharedSearcher;

pub const START: &str = "<!-- share:start -->";
pub const END: &str = "<!-- share:end -->";
/// Longest query shown in a title (chat previews cut titles at ~60–90 characters anyway).
pub const MAX_TITLE_CHARS: usize = 120;
/// `index.html` larger than this is served as it is (it is ~6 kB; this bounds the work of a request).
const MAX_PAGE_BYTES: u64 = 1 << 20;

/// Characters left as they are in a query-string value (the rest is percent-encoded).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// What the share middleware needs: the page, how to name this site in absolute URLs, and whether the preview
/// picture can be made (the native engine is up).
pub struct SharePage {
    index_html: PathBuf,
    public_url: Option<String>,
    searcher: SharedSearcher,
}

impl SharePage {
    /// `public_url`: the site's address as visitors see it (e.g. `https://pics.example.org/`); without it,
    /// absolute URLs are made from the request's `Host` (http).
    pub fn new(static_dir: &Path, public_url: Option<String>, searcher: SharedSearcher) -> Self {
        let public_url = public_url.map(|u| if u.ends_with('/') { u } else { format!("{u}/") });
        Self { index_html: static_dir.join("index.html"), public_url, searcher }
    }
}

/// Answers `/` and `/index.html` with a `q` parameter with the tagged page; everything else passes through.
pub async fn inject_share_tags(State(share): State<Arc<SharePage>>, req: Request, next: Next) -> Response {
    let is_page = matches!(req.uri().path(), "/" | "/index.html") && matches!(*req.method(), Method::GET | Method::HEAD);
    let query = is_page.then(|| query_param(req.uri().query().unwrap_or(""))).flatten();
    let Some(query) = query else { return next.run(req).await };
    let base = share.public_url.clone().or_else(|| host_base(req.headers().get(header::HOST)));
    let page = match tokio::fs::metadata(&share.index_html).await {
        Ok(m) if m.is_file() && m.len() <= MAX_PAGE_BYTES => tokio::fs::read_to_string(&share.index_html).await.ok(),
        _ => None,
    };
    let Some(page) = page else { return next.run(req).await };
    let with_preview = share.searcher.get().is_ok();
    match tagged_page(&page, &query, base.as_deref(), with_preview) {
        Some(html) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
            html,
        )
            .into_response(),
        None => next.run(req).await,
    }
}

/// The `q` of a query string, when it has words (a lone or empty `q` shares nothing); the first one if repeated.
fn query_param(raw: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).ok()?;
    let q = pairs.into_iter().find(|(k, _)| k == "q")?.1;
    let q = clean(&q);
    (!q.is_empty()).then_some(q)
}

/// The query as a title shows it: control characters dropped, whitespace runs made one space, cut to
/// [`MAX_TITLE_CHARS`] characters with an ellipsis.
pub fn clean(q: &str) -> String {
    let words: Vec<&str> = q.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect();
    let joined = words.join(" ");
    if joined.chars().count() <= MAX_TITLE_CHARS {
        return joined;
    }
    let cut: String = joined.chars().take(MAX_TITLE_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// `http://HOST/` when the `Host` header is a plain host name or address with an optional port; `None` for
/// anything else (it is the client's text: it never reaches the page unchecked).
fn host_base(host: Option<&HeaderValue>) -> Option<String> {
    let host = host?.to_str().ok()?;
    let ok = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then(|| format!("http://{host}/"))
}

/// Escapes text for an HTML attribute value or element content.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page with the share tags of `query` in place of its share block (or before `</head>`); `None` when the
/// page has neither. `base`: the site's absolute address (`…/`), or `None` for root-relative URLs.
pub fn tagged_page(page: &str, query: &str, base: Option<&str>, with_preview: bool) -> Option<String> {
    let tags = share_tags(query, base, with_preview);
    if let (Some(start), Some(end)) = (page.find(START), page.find(END)) {
        if start < end {
            return Some(format!("{}{START}\n{tags}  {}", &page[..start], &page[end..]));
        }
    }
    let head_end = page.find("</head>")?;
    Some(format!("{}{tags}{}", &page[..head_end], &page[head_end..]))
}

/// The title, description and Open Graph / Twitter tags for `query`, one per line.
fn share_tags(query: &str, base: Option<&str>, with_preview: bool) -> String {
    let q = escape_html(query);
    let encoded = utf8_percent_encode(query, QUERY_VALUE).to_string();
    let root = base.unwrap_or("/");
    let page_url = escape_html(&format!("{root}?q={encoded}"));
    let image_url = escape_html(&format!("{root}api/preview.jpg?q={encoded}"));
    let title = format!("“{q}” — imgpick");
    let description = format!("The pictures that fit “{q}” best, found by imgpick (the search runs in your browser).");
    let mut lines = vec![
        format!("<title>{title}</title>"),
        format!(r#"<meta name="description" content="{description}">"#),
        r#"<meta property="og:type" content="website">"#.to_string(),
        r#"<meta property="og:site_name" content="imgpick">"#.to_string(),
        format!(r#"<meta property="og:title" content="{title}">"#),
        format!(r#"<meta property="og:description" content="{description}">"#),
        format!(r#"<meta property="og:url" content="{page_url}">"#),
        format!(r#"<meta name="twitter:title" content="{title}">"#),
        format!(r#"<meta name="twitter:description" content="{description}">"#),
    ];
    if with_preview {
        let (w, h) = crate::preview::SIZE;
        lines.extend([
            format!(r#"<meta property="og:image" content="{image_url}">"#),
            r#"<meta property="og:image:type" content="image/jpeg">"#.to_string(),
            format!(r#"<meta property="og:image:width" content="{w}">"#),
            format!(r#"<meta property="og:image:height" content="{h}">"#),
            format!(r#"<meta property="og:image:alt" content="The pictures that fit “{q}” best">"#),
            r#"<meta name="twitter:card" content="summary_large_image">"#.to_string(),
            format!(r#"<meta name="twitter:image" content="{image_url}">"#),
        ]);
    } else {
        lines.push(r#"<meta name="twitter:card" content="summary">"#.to_string());
    }
    lines.iter().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<html><head>\n  <meta charset=\"utf-8\">\n  <!-- share:start -->\n  <title>imgpick</title>\n  <!-- share:end -->\n  <script src=\"app.js\"></script>\n</head><body></body></html>";

    #[test]
    fn hostile_queries_are_escaped_everywhere() {
        let q = r#""><script>alert('x')</script> & <img src=x onerror=y>"#;
        let html = tagged_page(PAGE, &clean(q), Some("https://pics.example.org/"), true).unwrap();
        assert!(!html.contains("<script>alert") && !html.contains("<img src=x"), "{html}");
        assert!(html.contains("&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img"), "{html}");
        // in URLs: percent-encoded, then the & of the query string escaped
        assert!(html.contains("https://pics.example.org/api/preview.jpg?q=%22%3E%3Cscript%3Ealert%28%27x%27%29"), "{html}");
        // one title (the block's replaced), the rest of the page intact
        assert_eq!(html.matches("<title>").count(), 1);
        assert!(html.contains("<script src=\"app.js\"></script>") && html.contains("<meta charset=\"utf-8\">"));
    }

    #[test]
    fn without_a_block_the_tags_go_before_the_head_end_and_without_a_head_nowhere() {
        let html = tagged_page("<html><head><title>x</title></head></html>", "a dog", None, false).unwrap();
        assert!(html.contains("og:title\" content=\"“a dog” — imgpick\"") && html.ends_with("</head></html>"), "{html}");
        assert!(html.contains("content=\"/?q=a%20dog\""), "root-relative without a base: {html}");
        assert!(!html.contains("og:image") && html.contains("twitter:card\" content=\"summary\""), "no engine: no picture");
        assert_eq!(tagged_page("<p>no head</p>", "a dog", None, true), None);
    }

    #[test]
    fn queries_are_cleaned_and_cut() {
        assert_eq!(clean("  a\tdog\n\u{0}on  the beach "), "a dog on the beach");
        let long = "word ".repeat(100);
        let c = clean(&long);
        assert_eq!(c.chars().count(), MAX_TITLE_CHARS);
        assert!(c.ends_with('…'));
        assert_eq!(query_param("q=%20%20&x=1"), None);
        assert_eq!(query_param("like=3"), None);
        assert_eq!(query_param("q=a+cat&q=a+dog").as_deref(), Some("a cat"));
    }

    #[test]
    fn only_plain_hosts_make_absolute_urls() {
        let h = |s: &str| host_base(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(h("127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080/"));
        assert_eq!(h("[::1]:80").as_deref(), Some("http://[::1]:80/"));
        assert_eq!(h("pics.example.org").as_deref(), Some("http://pics.example.org/"));
        for bad in ["evil\"><script>", "a b", "x/y", ""] {
            assert_eq!(h(bad), None, "{bad}");
        }
    }
}
