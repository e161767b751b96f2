//! `hoptrace watch`: the watchlist of a running server.

use std::io::Write;

use super::client::{answered, call_server};
use super::*;
use crate::terminal::Shown;

pub(super) async fn watch(args: WatchArgs) -> Result<(), Failure> {
    let enc = |u: &str| {
        percent_encoding::utf8_percent_encode(u, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (method, path, body) = match &args.action {
        WatchAction::Add {
            url,
            every,
            profiles,
            via,
        } => (
            http::Method::POST,
            "/v1/watch".to_string(),
            Some(serde_json::json!({
                "url": url, "every_seconds": every, "profiles": profiles, "via": via,
            })),
        ),
        WatchAction::List => (http::Method::GET, "/v1/watch".to_string(), None),
        WatchAction::Remove { url } => (
            http::Method::DELETE,
            format!("/v1/watch?url={}", enc(url)),
            None,
        ),
        WatchAction::History { url } => (
            http::Method::GET,
            format!("/v1/history?url={}", enc(url)),
            None,
        ),
    };
    let (status, answer) =
        call_server(&args.server, args.token.as_deref(), method, &path, body).await?;
    answered(status, &answer)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        if !answer.is_null() {
            serde_json::to_writer_pretty(&mut out, &answer)?;
            writeln!(out)?;
        }
        return Ok(());
    }
    let text = |v: &serde_json::Value| Shown(v.as_str().unwrap_or("-")).to_string();
    match &args.action {
        WatchAction::Add { .. } => writeln!(
            out,
            "{} {} every {} s; next run {}",
            if status == 201 {
                "watching"
            } else {
                "updated:"
            },
            text(&answer["url"]),
            Shown(&answer["every_seconds"]),
            text(&answer["next_due"]),
        )?,
        WatchAction::Remove { url } => writeln!(out, "no longer watching {}", Shown(url))?,
        WatchAction::List => {
            let list = answer["watches"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                writeln!(out, "nothing is watched")?;
            }
            for w in list {
                writeln!(
                    out,
                    "{}\n    every {} s, next {}, last {}{}{}",
                    text(&w["url"]),
                    Shown(&w["every_seconds"]),
                    text(&w["next_due"]),
                    text(&w["last_run"]),
                    if w["auto"] == true {
                        " (added automatically: a fake shortener)"
                    } else {
                        ""
                    },
                    visitors(&w),
                )?;
            }
        }
        WatchAction::History { .. } => write_history(&mut out, &answer)?,
    }
    Ok(())
}

/// `, as a, b via x, y` for a watch that names profiles or points; nothing otherwise.
fn visitors(w: &serde_json::Value) -> String {
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    let (profiles, via) = (names(&w["profiles"]), names(&w["via"]));
    if profiles.is_empty() && via.is_empty() {
        return String::new();
    }
    let or = |v: Vec<String>, d: &str| match v.is_empty() {
        true => d.to_string(),
        false => Shown(v.join(", ")).to_string(),
    };
    format!(
        ", as {} via {}",
        or(profiles, crate::profile::DEFAULT),
        or(via, crate::chain::DIRECT)
    )
}
