//! Driving the web view from a real browser: the test's own Chromium (a plain client of the
//! view, not hoptrace's sandboxed one), waiting for what a page shows, reading its text.

use std::time::Duration;

use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;

/// The test's own Chromium, a plain client of the view (not hoptrace's sandboxed one).
pub async fn client() -> (Browser, tokio::task::JoinHandle<()>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = hoptrace::browser::find_chromium(None).unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(path)
        .no_sandbox()
        .user_data_dir(dir.path())
        .window_size(1280, 900)
        .arg("disable-gpu")
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    let driving = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, driving, dir)
}

/// Waits until `js` (an expression) is true in `page`.
pub async fn until(page: &Page, js: &str) {
    for _ in 0..200 {
        let v = page
            .evaluate(js)
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok());
        if v == Some(true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at = page.url().await.ok().flatten().unwrap_or_default();
    let html = page.content().await.unwrap_or_default();
    panic!("never true: {js}\nat {at}:\n{html}");
}

/// The page's text.
pub async fn text(page: &Page) -> String {
    page.evaluate("document.body.innerText")
        .await
        .unwrap()
        .into_value()
        .unwrap()
}
