//! The dashboards in a real headless browser (Debian's Chromium, driven
//! through chromedriver's WebDriver protocol — plain JSON over HTTP): a
//! review requested through the consumer's form shows up as PENDING_REVIEW
//! and flips to its decision live, without a reload; the help desk's page
//! shows the delivered case.
//!
//! Needs `chromium` and `chromium-driver` (`apt-get install chromium
//! chromium-driver`; `.ci/run` installs them and sets `REQUIRE_BROWSER=1`).
//! Without them the test says so and passes, unless `REQUIRE_BROWSER` is set.
//! `SCREENSHOT_DIR=docs` saves the README's screenshots.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use hookline_tests::process::free_port;
use hookline_tests::{Stack, wait_for};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver session on a chromedriver this test started. [`Browser::quit`]
/// ends the session (chromedriver then stops its Chromium); if the test fails
/// first, drop kills the Chromium processes that run on this session's own
/// profile dir, then chromedriver, by pid.
struct Browser {
    driver: Child,
    base: String,
    profile: std::path::PathBuf,
}

impl Browser {
    async fn start() -> Option<Self> {
        let available = std::path::Path::new(CHROMIUM).exists() && which("chromedriver");
        if !available {
            assert!(
                std::env::var_os("REQUIRE_BROWSER").is_none(),
                "REQUIRE_BROWSER is set but chromium/chromedriver are not installed"
            );
            eprintln!("SKIPPED: the browser test needs `apt-get install chromium chromium-driver`");
            return None;
        }
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = std::env::temp_dir().join(format!("hookline-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            profile,
        };
        let status = format!("{}/status", browser.base);
        wait_for(DEADLINE, "chromedriver to start", || async {
            let response = awc::Client::default().get(&status).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Leave prompts open for the test to read and answer.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1200,800",
                    format!("--user-data-dir={}", browser.profile.display()),
                ],
            },
        }}});
        let session = browser.call("POST", "/session", capabilities).await;
        let id = session["sessionId"].as_str().expect("a session id").to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        Some(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        match self.try_call(method, path, body).await {
            Ok(value) => value,
            Err(answer) => panic!("WebDriver {method} {path}: {answer}"),
        }
    }

    /// As [`Browser::call`], the WebDriver error as `Err` (e.g. `no such alert`).
    async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
        let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let request = client.request(method.clone(), format!("{}{path}", self.base));
        let mut response = if body.is_null() {
            request.send().await
        } else {
            request.send_json(&body).await
        }
        .unwrap();
        let answer: Value = response.json().limit(20 << 20).await.unwrap();
        if response.status().is_success() {
            Ok(answer["value"].clone())
        } else {
            Err(answer)
        }
    }

    /// The text of the open `prompt()`/`alert()`, if one is open.
    async fn dialog(&self) -> Option<String> {
        let text = self.try_call("GET", "/alert/text", Value::Null).await.ok()?;
        Some(text.as_str().unwrap_or_default().to_owned())
    }

    /// Types `text` into the open prompt and accepts it.
    async fn answer_dialog(&self, text: &str) {
        self.call("POST", "/alert/text", json!({"text": text})).await;
        self.call("POST", "/alert/accept", json!({})).await;
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({"url": url})).await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call("POST", "/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    /// Runs `script` in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Ends the session: chromedriver closes the browser it started.
    async fn quit(self) {
        self.call("DELETE", "", Value::Null).await;
    }

    async fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("SCREENSHOT_DIR") else {
            return;
        };
        let png = self.call("GET", "/screenshot", Value::Null).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver alone would leave its Chromium running (it is
        // re-parented to init); ours are the ones on our unique profile dir.
        let flag = format!("--user-data-dir={}", self.profile.display());
        for pid in processes_with_arg(&flag) {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Pids whose command line has `arg` (Linux `/proc`).
fn processes_with_arg(arg: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).any(|part| part == arg.as_bytes()))
        })
        .collect()
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[actix_web::test]
async fn a_review_requested_in_the_dashboard_flips_live_from_pending_to_its_decision() {
    let Some(browser) = Browser::start().await else { return };
    let stack = Stack::start(|hd| hd.review_delay_ms = "1500-2500".parse().unwrap()).await;
    // Some history, so the page has more than one row.
    stack.request_review("https://example.com/earlier-contract.pdf").await;
    stack.wait_until_all_decided(1, DEADLINE).await;

    browser.goto(&format!("{}/", stack.consumer.url)).await;
    wait_for(DEADLINE, "the live connection", || async {
        (browser
            .eval("return document.getElementById('live').classList.contains('on')")
            .await
            == json!(true))
        .then_some(())
    })
    .await;
    let input = browser.find("#document-url").await;
    browser
        .call("POST", &format!("/element/{input}/clear"), json!({}))
        .await;
    let url = "https://example.com/signed-in-the-browser.pdf";
    browser
        .call("POST", &format!("/element/{input}/value"), json!({"text": url}))
        .await;
    let button = browser.find("#request-review").await;
    browser
        .call("POST", &format!("/element/{button}/click"), json!({}))
        .await;

    let status_of_row = format!(
        "const row = [...document.querySelectorAll('#reviews tr')].find(r => r.querySelector('.url').textContent === '{url}');\
         return row ? row.dataset.status : null;"
    );
    wait_for(DEADLINE, "the new review's row", || async {
        (browser.eval(&status_of_row).await == json!("PENDING_REVIEW")).then_some(())
    })
    .await;
    // A marker that a reload would wipe: the flip must arrive over SSE.
    browser.eval("window.notReloaded = true; return null").await;
    let decided = wait_for(DEADLINE, "the row to flip", || async {
        let status = browser.eval(&status_of_row).await;
        (status != json!("PENDING_REVIEW")).then_some(status)
    })
    .await;
    assert!(
        decided == json!("ACCEPTED") || decided == json!("DECLINED"),
        "{decided}"
    );
    assert_eq!(
        browser.eval("return window.notReloaded === true").await,
        json!(true),
        "updated live, not by a reload"
    );
    let stored = stack.db.reviews().await;
    let row = stored.iter().find(|r| r.document_url == url).unwrap();
    assert_eq!(
        json!(row.status().as_str()),
        decided,
        "the page shows what the database holds"
    );
    browser.screenshot("dashboard-consumer.png").await;

    // The help desk's page shows the same case, delivered.
    let document_id = row.document_id.clone().unwrap();
    browser.goto(&format!("{}/", stack.helpdesk.url)).await;
    let delivery = format!(
        "const row = document.querySelector('#cases tr[data-document-id=\"{document_id}\"]');\
         return row ? row.dataset.delivery : null;"
    );
    wait_for(DEADLINE, "the help desk's row", || async {
        (browser.eval(&delivery).await == json!("DELIVERED")).then_some(())
    })
    .await;
    browser.screenshot("dashboard-helpdesk.png").await;
    browser.quit().await;
}

#[actix_web::test]
async fn the_help_desk_dashboard_asks_for_the_api_key_once_and_again_only_if_refused() {
    const KEY: &str = "hookline-browser-key-0123456789";
    let Some(browser) = Browser::start().await else { return };
    let stack = Stack::start_with(
        |hd| hd.api_keys = KEY.parse().unwrap(),
        |c| c.helpdesk_api_key = Some(hookline_kit::config::Secret::new(KEY.to_owned())),
    )
    .await;
    let review = stack.request_review("https://example.com/behind-a-key.pdf").await;
    stack.wait_until_all_decided(1, DEADLINE).await;
    let document_id = review.document_id.clone().unwrap();

    browser.goto(&format!("{}/", stack.helpdesk.url)).await;
    let question = wait_for(DEADLINE, "the page to ask for the key", || browser.dialog()).await;
    assert!(question.contains("needs an API key"), "{question}");
    browser.answer_dialog("not-the-key-0123456789").await;
    let again = wait_for(DEADLINE, "the page to ask again", || browser.dialog()).await;
    assert!(again.contains("refused"), "{again}");
    browser.answer_dialog(KEY).await;

    let delivery = format!(
        "const row = document.querySelector('#cases tr[data-document-id=\"{document_id}\"]');\
         return row ? row.dataset.delivery : null;"
    );
    wait_for(DEADLINE, "the case behind the key", || async {
        (browser.eval(&delivery).await == json!("DELIVERED")).then_some(())
    })
    .await;
    // The page polls every second: three more rounds, and no more questions.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(browser.dialog().await, None, "asked once, kept for the tab");
    assert_eq!(
        browser.eval("return sessionStorage.length").await,
        json!(1),
        "the key lives in this tab's sessionStorage only"
    );
    browser.quit().await;
}

#[actix_web::test]
async fn the_help_desk_dashboard_lists_subscriptions_and_sends_a_test_event_on_a_click() {
    let Some(browser) = Browser::start().await else { return };
    let redis = hookline_tests::TestRedis::default();
    let helpdesk = hookline_tests::start_helpdesk(hookline_tests::helpdesk_settings(&redis)).await;
    let mut receiver = hookline_tests::Receiver::start(200).await;
    let (status, _, sub) = hookline_tests::call(
        "POST",
        &format!("{}/webhooks", helpdesk.url),
        &[],
        Some(&json!({"url": receiver.url, "events": ["webhook.test"], "description": "from the browser test"})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap();

    browser.goto(&format!("{}/", helpdesk.url)).await;
    let delivered = format!(
        "const row = document.querySelector('#subscriptions tr[data-subscription=\"{id}\"]');\
         return row ? row.querySelector('.delivered').textContent : null;"
    );
    wait_for(DEADLINE, "the subscription's row", || async {
        (browser.eval(&delivered).await == json!("0")).then_some(())
    })
    .await;
    let button = browser.find(&format!("button[data-test=\"{id}\"]")).await;
    browser
        .call("POST", &format!("/element/{button}/click"), json!({}))
        .await;
    let test = receiver.next(DEADLINE).await;
    assert_eq!(test.body["type"], "webhook.test");
    test.verify_with(sub["secret"].as_str().unwrap()).unwrap();
    wait_for(DEADLINE, "the row to count the delivery", || async {
        (browser.eval(&delivered).await == json!("1")).then_some(())
    })
    .await;
    browser.screenshot("dashboard-helpdesk-subscriptions.png").await;
    browser.quit().await;
}

#[actix_web::test]
async fn the_help_desk_dashboard_shows_why_a_subscription_is_disabled_and_enables_it_on_a_click() {
    let Some(browser) = Browser::start().await else { return };
    let redis = hookline_tests::TestRedis::default();
    let helpdesk = hookline_tests::start_helpdesk(hookline_tests::helpdesk_settings(&redis)).await;
    let mut gone = hookline_tests::Receiver::start(410).await;
    let (status, _, sub) = hookline_tests::call(
        "POST",
        &format!("{}/webhooks", helpdesk.url),
        &[],
        Some(&json!({"url": gone.url, "events": ["webhook.test"]})),
    )
    .await;
    assert_eq!(status, 201, "{sub}");
    let id = sub["id"].as_str().unwrap();
    let url = format!("{}/webhooks/{id}", helpdesk.url);
    hookline_tests::call("POST", &format!("{url}/test"), &[], None).await;
    gone.next(DEADLINE).await;

    browser.goto(&format!("{}/", helpdesk.url)).await;
    let why = format!(
        "const row = document.querySelector('#subscriptions tr[data-subscription=\"{id}\"]');\
         return row ? row.textContent : null;"
    );
    wait_for(
        DEADLINE,
        "the row to say the subscription is disabled by a 410",
        || async {
            let text = browser.eval(&why).await;
            text.as_str()
                .is_some_and(|text| text.contains("DISABLED") && text.contains("410 Gone"))
                .then_some(())
        },
    )
    .await;
    let button = browser.find(&format!("button[data-enable=\"{id}\"]")).await;
    browser
        .call("POST", &format!("/element/{button}/click"), json!({}))
        .await;
    wait_for(DEADLINE, "the subscription to be enabled", || async {
        let (_, _, shown) = hookline_tests::call("GET", &url, &[], None).await;
        (shown["disabled"] == false).then_some(())
    })
    .await;
    browser.quit().await;
}

#[actix_web::test]
async fn the_help_desk_dashboard_shows_the_faults_chaos_injected_and_who_failed_them() {
    let Some(browser) = Browser::start().await else { return };
    let redis = hookline_tests::TestRedis::default();
    let mut settings = hookline_tests::helpdesk_settings(&redis);
    settings.chaos = "duplicate=1".parse().unwrap();
    let helpdesk = hookline_tests::start_helpdesk(settings).await;
    // A receiver that verifies nothing: it takes the forgery as well.
    let mut receiver = hookline_tests::Receiver::start(200).await;
    let (status, _, accepted) = hookline_tests::call(
        "POST",
        &format!("{}/document", helpdesk.url),
        &[
            ("x-callback-url", &receiver.url),
            ("hookline-chaos", "forged_signature=1,duplicate=1"),
        ],
        Some(&json!({"documentUrl": "https://example.com/a.pdf"})),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    for _ in 0..3 {
        receiver.next(DEADLINE).await; // the forgery, the delivery, its duplicate
    }

    browser.goto(&format!("{}/", helpdesk.url)).await;
    let row = |fault: &str| {
        format!(
            "const row = document.querySelector('#chaos tr[data-fault=\"{fault}\"]');\
             return row ? [...row.querySelectorAll('td')].map((td) => td.textContent) : null;"
        )
    };
    let forged = wait_for(DEADLINE, "the forged_signature row", || async {
        let cells = browser.eval(&row("forged_signature")).await;
        (!cells.is_null()).then_some(cells)
    })
    .await;
    assert_eq!(forged, json!(["forged_signature", "1", "2xx: 1", "1"]));
    let duplicate = browser.eval(&row("duplicate")).await;
    assert_eq!(duplicate, json!(["duplicate", "1", "2xx: 1", "0"]));
    let profile = browser
        .eval("return document.getElementById('chaos-profile').textContent;")
        .await;
    assert_eq!(profile, json!("CHAOS duplicate=1"));
    let id = accepted["documentId"].as_str().unwrap();
    let badges = format!(
        "return [...document.querySelectorAll('#cases tr[data-document-id=\"{id}\"] .badge.chaos, \
         #cases tr[data-document-id=\"{id}\"] .badge.DEAD')].map((b) => b.textContent);"
    );
    assert_eq!(browser.eval(&badges).await, json!(["forged_signature", "duplicate"]));
    browser.screenshot("dashboard-helpdesk-chaos.png").await;
    browser.quit().await;
}

#[actix_web::test]
async fn the_consumer_dashboard_asks_for_its_api_key_and_updates_live_with_it() {
    const KEY: &str = "hookline-consumer-browser-key-0123";
    let Some(browser) = Browser::start().await else { return };
    let stack = Stack::start_with(
        |hd| hd.review_delay_ms = "1500-2500".parse().unwrap(),
        |c| c.api_keys = KEY.parse().unwrap(),
    )
    .await;

    browser.goto(&format!("{}/", stack.consumer.url)).await;
    let question = wait_for(DEADLINE, "the page to ask for the key", || browser.dialog()).await;
    assert!(question.contains("needs an API key"), "{question}");
    browser.answer_dialog(KEY).await;
    wait_for(DEADLINE, "the live connection, with the key", || async {
        (browser
            .eval("return document.getElementById('live').classList.contains('on')")
            .await
            == json!(true))
        .then_some(())
    })
    .await;

    // A review requested by another client shows up, and flips, over the keyed stream.
    let authorization = format!("Bearer {KEY}");
    let (status, _, review) = hookline_tests::call(
        "POST",
        &format!("{}/documents", stack.consumer.url),
        &[("authorization", &authorization)],
        Some(&json!({"documentUrl": "https://example.com/behind-the-consumer-key.pdf"})),
    )
    .await;
    assert_eq!(status, 201, "{review}");
    let status_of_row = format!(
        "const row = document.getElementById('review-{}'); return row ? row.dataset.status : null;",
        review["id"].as_str().unwrap()
    );
    wait_for(DEADLINE, "the new review's row", || async {
        (browser.eval(&status_of_row).await == json!("PENDING_REVIEW")).then_some(())
    })
    .await;
    let decided = wait_for(DEADLINE, "the row to flip", || async {
        let status = browser.eval(&status_of_row).await;
        (status != json!("PENDING_REVIEW")).then_some(status)
    })
    .await;
    assert!(
        decided == json!("ACCEPTED") || decided == json!("DECLINED"),
        "{decided}"
    );
    assert_eq!(browser.dialog().await, None, "asked once, kept for the tab");
    browser.quit().await;
}
