//! Shared links (`?q=…`): the page answered with Open Graph / Twitter tags naming the query (escaped), and the
//! preview picture they point to (`/api/preview.jpg`), driven in-process with `oneshot`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::{
    body::Body,
    http::{header, HeaderMap, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use tower::ServiceExt;
use web::{Config, GalleryEntry, Hit, Searcher};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A site whose `index.html` is the shipped page and whose gallery has three coloured thumbnails.
fn site() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("gallery/thumbs")).unwrap();
    std::fs::copy(Path::new(ROOT).join("static/index.html"), site.join("index.html")).unwrap();
    for (i, rgb) in [[230u8, 30, 30], [30, 200, 30], [30, 30, 230]].iter().enumerate() {
        image::RgbImage::from_pixel(320, 240, image::Rgb(*rgb)).save(site.join(format!("gallery/thumbs/{i}.jpg"))).unwrap();
    }
    (dir, site)
}

/// Answers every query with the three thumbnails, the first a strong match.
struct ThreeThumbs;
impl Searcher for ThreeThumbs {
    fn model_id(&self) -> String {
        "0123456789abcdef0123456789abcdef".into()
    }
    fn search(&self, _query: &str, k: usize) -> Result<Vec<Hit>, String> {
        Ok((0..k.min(3))
            .map(|i| Hit {
                id: i,
                score: 0.4 - i as f32 / 10.0,
                strong: Some(i == 0),
                entry: GalleryEntry {
                    file: format!("{i}.jpg"),
                    thumb: format!("thumbs/{i}.jpg"),
                    caption: format!("picture {i}"),
                    source: "test".into(),
                    licence: "CC0-1.0".into(),
                    url: None,
                },
                similar: Vec::new(),
            })
            .collect())
    }
    fn similar(&self, _id: usize, _k: usize) -> Result<Vec<Hit>, String> {
        Err("not in this test".into())
    }
}

fn app(site: &Path, engine: bool, public_url: Option<&str>) -> Router {
    let searcher: Result<Arc<dyn Searcher>, String> = if engine { Ok(Arc::new(ThreeThumbs)) } else { Err("no model in this test".into()) };
    web::router(Config { public_url: public_url.map(str::to_owned), ..Config::new(site, searcher) })
}

async fn get(app: &Router, uri: &str, host: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::builder().uri(uri);
    if let Some(h) = host {
        req = req.header(header::HOST, h);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

/// The content of `<meta property|name="NAME" content="…">` in `html`.
fn meta<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("=\"{name}\" content=\"");
    let rest = &html[html.find(&pattern)? + pattern.len()..];
    Some(&rest[..rest.find('"')?])
}

#[tokio::test]
async fn a_shared_link_names_its_query_in_the_tags() {
    let (_dir, site) = site();
    let app = app(&site, true, None);
    let (status, headers, body) = get(&app, "/?q=a%20bird%20flying", Some("pics.example.org:8080")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let html = String::from_utf8(body).unwrap();
    assert_eq!(meta(&html, "og:title"), Some("“a bird flying” — imgpick"));
    assert_eq!(meta(&html, "twitter:card"), Some("summary_large_image"));
    assert_eq!(meta(&html, "og:image"), Some("http://pics.example.org:8080/api/preview.jpg?q=a%20bird%20flying"));
    assert_eq!(meta(&html, "og:url"), Some("http://pics.example.org:8080/?q=a%20bird%20flying"));
    assert!(html.contains("<title>“a bird flying” — imgpick</title>"));
    assert_eq!(html.matches("<title>").count(), 1, "the page's own title is replaced");
    assert!(html.contains(r#"<script type="module" src="app.js"></script>"#), "the rest of the page is intact");
    // /index.html too, and the page's headers (CSP) still apply
    let (_, headers, body) = get(&app, "/index.html?q=cats&in=mine", None).await;
    assert!(String::from_utf8(body).unwrap().contains("“cats” — imgpick"));
    assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
}

#[tokio::test]
async fn a_hostile_query_or_host_is_escaped() {
    let (_dir, site) = site();
    let app = app(&site, true, None);
    let q = r#""><script>alert(1)</script><meta http-equiv="refresh" content="0;url=//evil">'&"#;
    let uri = format!("/?q={}", q.bytes().map(|b| format!("%{b:02X}")).collect::<String>());
    let (status, _, body) = get(&app, &uri, Some("evil\"><script>x</script>")).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).unwrap();
    assert!(!html.contains("<script>alert") && !html.contains("http-equiv=\"refresh\"") && !html.contains("evil\">"), "{html}");
    let title = meta(&html, "og:title").unwrap();
    assert!(title.starts_with("“&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;meta http-equiv=&quot;refresh&quot;"), "{title}");
    assert!(title.contains("&#39;&amp;"), "{title}");
    // a Host that is not a plain host name is not used: root-relative URLs
    assert!(meta(&html, "og:image").unwrap().starts_with("/api/preview.jpg?q=%22%3E%3Cscript%3E"), "{html}");
}

#[tokio::test]
async fn without_q_the_page_is_served_as_it_is() {
    let (_dir, site) = site();
    let app = app(&site, true, Some("https://pics.example.org"));
    let file = std::fs::read(site.join("index.html")).unwrap();
    for uri in ["/", "/index.html", "/?like=3", "/?q=", "/?q=%20%20"] {
        let (status, _, body) = get(&app, uri, None).await;
        assert_eq!((status, body == file), (StatusCode::OK, true), "{uri}");
    }
    // the static page's own tags are the generic ones
    let html = String::from_utf8(file).unwrap();
    assert_eq!(meta(&html, "og:title"), Some("imgpick — find the picture for your words"));
    // --public-url names the site in absolute URLs
    let (_, _, body) = get(&app, "/?q=dog", Some("127.0.0.1:9")).await;
    assert_eq!(meta(&String::from_utf8(body).unwrap(), "og:image"), Some("https://pics.example.org/api/preview.jpg?q=dog"));
}

#[tokio::test]
async fn the_preview_is_a_jpeg_collage_of_the_top_results() {
    let (_dir, site) = site();
    let app = app(&site, true, None);
    let (status, headers, body) = get(&app, "/api/preview.jpg?q=a%20bird", None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=3600");
    let img = image::load_from_memory_with_format(&body, image::ImageFormat::Jpeg).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), web::preview::SIZE);
    // the first tile is the first result's thumbnail (red), the second the second's (green)
    let px = |x: u32, y: u32| img.get_pixel(x, y).0;
    let (r, g) = (px(150, 160), px(450, 160));
    assert!(r[0] > 180 && r[1] < 80 && g[1] > 150 && g[0] < 80, "{r:?} {g:?}");
    // the same query again: the same bytes (cached)
    assert_eq!(get(&app, "/api/preview.jpg?q=a%20bird", None).await.2, body);
}

#[tokio::test]
async fn preview_errors_are_json() {
    let (_dir, site) = site();
    let (status, _, body) = get(&app(&site, true, None), "/api/preview.jpg", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(body).unwrap().contains("missing query"));
    let long = format!("/api/preview.jpg?q={}", "a".repeat(2000));
    assert_eq!(get(&app(&site, true, None), &long, None).await.0, StatusCode::BAD_REQUEST);
    // no engine: 503 naming why, and the shared page leaves the picture out
    let no_engine = app(&site, false, None);
    let (status, headers, body) = get(&no_engine, "/api/preview.jpg?q=dog", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER) && String::from_utf8(body).unwrap().contains("no model in this test"));
    let html = String::from_utf8(get(&no_engine, "/?q=dog", None).await.2).unwrap();
    assert!(meta(&html, "og:image").is_none() && meta(&html, "twitter:card") == Some("summary"), "{html}");
    assert_eq!(meta(&html, "og:title"), Some("“dog” — imgpick"));
}
