//! `ember view`: one self-contained page per trace. The page is checked as text here; where
//! Chromium is installed (`.ci/run` installs it and sets `EMBER_REQUIRE_CHROMIUM=1`), it is
//! also loaded headless: a screenshot is taken, the DOM has a swimlane per process of the blog's
//! ex4, and opening it at another step selects that step.

mod common;
use common::ember;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ember-view-{}-{name}", std::process::id()))
}

/// The page of ex4's trace, at paths of its own (`tag`: tests run in parallel).
fn ex4_page(tag: &str) -> (PathBuf, String) {
    page_of(tag, &["examples/blog/ex4.basm"])
}

/// The page of a run of `program` (a file and its flags).
fn page_of(tag: &str, program: &[&str]) -> (PathBuf, String) {
    let trace = tmp(&format!("{tag}-ex4.jsonl"));
    let page = tmp(&format!("{tag}-ex4.html"));
    let mut args = vec!["run"];
    args.extend_from_slice(program);
    args.extend_from_slice(&["--trace", trace.to_str().unwrap()]);
    let (_, err, status) = ember(&args);
    assert_eq!(status, 0, "{err}");
    let (_, err, status) = ember(&[
        "view",
        trace.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{err}");
    let _ = std::fs::remove_file(&trace);
    let html = std::fs::read_to_string(&page).unwrap();
    (page, html)
}

#[test]
fn the_page_is_self_contained_and_holds_every_slice() {
    let (page, html) = ex4_page("text");
    let _ = std::fs::remove_file(&page);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for outside in ["http://", "https://", "<script src", "<link"] {
        assert!(!html.contains(outside), "no network: found {outside}");
    }
    assert!(
        html.contains("\"label\":\"ex4:main\""),
        "the slices are in the page"
    );
}

#[test]
fn a_long_trace_is_cut_and_the_page_says_so() {
    let trace = tmp("long.jsonl");
    let page = tmp("long.html");
    let mut text = String::from("{\"ev\":\"trace\",\"clock\":\"us\",\"t\":0}\n");
    for i in 0..10_050 {
        text.push_str(&format!(
            "{{\"ev\":\"slice\",\"pid\":0,\"reds\":1,\"outcome\":\"yield\",\"queue\":[0],\"start\":{i},\"label\":\"m:main\",\"t\":{i}}}\n"
        ));
    }
    std::fs::write(&trace, text).unwrap();
    let (_, err, status) = ember(&[
        "view",
        trace.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{err}");
    let html = std::fs::read_to_string(&page).unwrap();
    let _ = std::fs::remove_file(&trace);
    let _ = std::fs::remove_file(&page);
    assert!(html.contains("\"total\":10050"));
    assert_eq!(html.matches("\"outcome\":\"yield\"").count(), 10_000);
    assert!(html.contains("truncated: showing the first"));
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// Runs the browser headless on `url`, with a profile of its own.
fn headless(browser: &str, args: &[&str], url: &str) -> String {
    let profile = tmp(&format!("profile-{}", args.len()));
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("runs the browser");
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_page_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("EMBER_REQUIRE_CHROMIUM").is_none(),
            "EMBER_REQUIRE_CHROMIUM is set but no Chromium was found"
        );
        eprintln!("no Chromium here: the browser checks are skipped");
        return;
    };
    let (page, _) = ex4_page("browser");
    let url = format!("file://{}", page.display());
    let dom = headless(browser, &["--dump-dom"], &url);
    // ex4 runs two processes: a lane each.
    assert_eq!(dom.matches("class=\"lane\"").count(), 2, "{dom}");
    assert!(
        dom.contains("data-step=\"0\""),
        "the first step is selected"
    );
    let stepped = headless(browser, &["--dump-dom"], &format!("{url}#step=2"));
    assert!(
        stepped.contains("data-step=\"1\""),
        "opening at step 2 selects it"
    );
    assert!(stepped.contains("step 2 of"), "and says so");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("view-ex4.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,500",
        ],
        &url,
    );
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let _ = std::fs::remove_file(&page);

    // A trace of two schedulers has no single run queue: the page says so, and which
    // scheduler ran the step.
    let (page, _) = page_of(
        "browser-smp",
        &["examples/pingpong.basm", "--schedulers", "2"],
    );
    let dom = headless(
        browser,
        &["--dump-dom"],
        &format!("file://{}", page.display()),
    );
    assert!(dom.contains("a queue each, not recorded"), "{dom}");
    assert!(dom.contains("on scheduler "), "{dom}");
    assert!(dom.matches("class=\"lane\"").count() >= 2, "{dom}");
    let _ = std::fs::remove_file(&page);
}
