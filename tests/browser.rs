//! A real headless Chromium for the dashboard tests, driven over WebDriver
//! (`fantoccini`) through a `chromedriver` the test starts on a free
//! loopback port and stops when dropped. `scripts/setup` installs Debian's
//! `chromium` and `chromium-driver`.
//!
//! The methods are blocking so tests read step by step like the harness's
//! other helpers; each waits for what it looks for (up to [`WAIT`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use crate::{free_port, root, wait_until};

/// How long an element may take to appear.
pub const WAIT: Duration = Duration::from_secs(20);

/// `chromedriver` on a free port, stopped when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts `chromedriver` and waits until it accepts connections.
    pub fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (scripts/setup installs chromium-driver)");
        let driver = Driver { child, port };
        assert!(
            wait_until(WAIT, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "chromedriver did not start"
        );
        driver
    }

    /// A new browser window (its own cookies) showing pages of the host's
    /// HTTP server on `host_port`.
    pub fn browser(&self, host_port: u16) -> Browser {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ];
        let caps = serde_json::json!({
            "goog:chromeOptions": { "args": args }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{}", self.port);
        let client = rt
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&url),
            )
            .expect("a Chromium session");
        Browser {
            rt,
            client: Some(client),
            base: format!("http://127.0.0.1:{host_port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window.
pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    base: String,
}

impl Browser {
    fn client(&self) -> &Client {
        self.client.as_ref().expect("open browser")
    }

    /// Opens `path` on the host.
    pub fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(self.client().goto(&url)).unwrap();
    }

    /// The path (and query) of the page shown.
    pub fn path(&self) -> String {
        let url = self.rt.block_on(self.client().current_url()).unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Waits until the page shown is `path` (with its query), e.g. after a
    /// click that navigates.
    pub fn wait_path(&self, path: &str) {
        let mut now = String::new();
        let arrived = wait_until(WAIT, || {
            now = self.path();
            now == path
        });
        assert!(arrived, "expected page {path}, still on {now}");
    }

    /// Waits for the element `css`, then does `act` with it; panics
    /// naming `what` and the element if either fails.
    fn with_element<T, F, Fut>(&self, what: &str, css: &str, act: F) -> T
    where
        F: FnOnce(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        self.rt
            .block_on(async {
                let e = self
                    .client()
                    .wait()
                    .at_most(WAIT)
                    .for_element(Locator::Css(css))
                    .await?;
                act(e).await
            })
            .unwrap_or_else(|e| panic!("{what} {css}: {e}"))
    }

    /// Types `text` into the element `css`.
    pub fn fill(&self, css: &str, text: &str) {
        self.with_element("fill", css, |e| async move {
            e.clear().await?;
            e.send_keys(text).await
        })
    }

    /// Clicks the element `css`.
    pub fn click(&self, css: &str) {
        self.with_element("click", css, |e| async move { e.click().await })
    }

    /// The visible text of the element `css`, once it is there.
    pub fn text(&self, css: &str) -> String {
        self.with_element("text of", css, |e| async move { e.text().await })
    }

    /// Waits until the element `css` shows `want`, e.g. while the page
    /// updates itself; elements replaced meanwhile are looked up again.
    pub fn wait_text(&self, css: &str, want: &str) -> bool {
        wait_until(WAIT, || {
            self.rt
                .block_on(async { self.client().find(Locator::Css(css)).await?.text().await })
                .is_ok_and(|t| t == want)
        })
    }

    /// How many elements match `css` now.
    pub fn count(&self, css: &str) -> usize {
        self.rt
            .block_on(self.client().find_all(Locator::Css(css)))
            .unwrap()
            .len()
    }

    /// The page's `<title>`.
    pub fn title(&self) -> String {
        self.rt.block_on(self.client().title()).unwrap()
    }

    /// Saves a PNG of the window as `target/screenshots/NAME.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.client().screenshot()).unwrap();
        let dir = root().join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(client.close());
        }
    }
}
