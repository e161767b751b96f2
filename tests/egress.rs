//! The sandbox: every way a link can try to reach a denied address is refused before any
//! connection. Tests allow only 127.0.0.1/32 and use other loopback addresses as the denied
//! targets; sentinels listening there prove nothing connected.

mod common;

use common::*;
use hoptrace::trace::{Outcome, Trace};

fn assert_blocked(t: &Trace, why: &str) {
    assert_eq!(t.outcome, Outcome::Blocked, "{t:#?}");
    let last = t.hops.last().unwrap();
    assert!(last.blocked, "{t:#?}");
    assert_eq!(last.status, None);
    let reason = last.reason.to_string();
    assert!(
        reason.contains(why),
        "reason {reason:?} should mention {why:?}"
    );
    assert!(t.error.is_none());
}

/// A port free on both 127.0.0.1 and 127.0.0.2, with a sentinel on 127.0.0.2.
async fn denied_sentinel() -> Sentinel {
    loop {
        let s = Sentinel::start("127.0.0.2", 0)
            .await
            .expect("127.0.0.2 is loopback on Linux");
        if std::net::TcpListener::bind(("127.0.0.1", s.addr.port())).is_ok() {
            return s;
        }
    }
}

#[tokio::test]
async fn ip_literals_in_every_spelling_are_judged_after_normalisation() {
    let env = TestEnv::new().await;
    let sentinel = denied_sentinel().await;
    let p = sentinel.addr.port();
    for spelling in [
        format!("http://127.0.0.2:{p}/"),
        format!("http://2130706434:{p}/"),
        format!("http://0x7f000002:{p}/"),
        format!("http://0177.0.0.2:{p}/"),
        format!("http://0x7f.0.0.2:{p}/"),
        format!("http://127.2:{p}/"),
        format!("http://127.0.2:{p}/"),
        format!("http://[::ffff:127.0.0.2]:{p}/"),
        format!("http://[::ffff:7f00:2]:{p}/"),
        // IPv4-translated (SIIT): judged as the IPv4 address inside it.
        format!("http://[::ffff:0:7f00:2]:{p}/"),
        format!("http://[::ffff:0:127.0.0.2]:{p}/"),
        format!("hxxp://127[.]0[.]0[.]2:{p}/"),
        format!("https://127.0.0.2:{p}/"),
    ] {
        let t = resolve(&env, &spelling).await;
        assert_blocked(&t, "loopback");
    }
    assert_eq!(sentinel.connections(), 0);
}

/// The case: an IPv4-translated literal of a private address is blocked, not tried.
#[tokio::test]
async fn ipv4_translated_literals_are_their_ipv4_address() {
    let env = TestEnv::new().await;
    assert_blocked(&resolve(&env, "http://[::ffff:0:a00:1]/").await, "private");
    assert_blocked(
        &resolve(&env, "http://[::ffff:0:a9fe:a9fe]/latest/meta-data/").await,
        "link-local",
    );
}

#[tokio::test]
async fn this_host_and_v6_loopback_are_denied() {
    let env = TestEnv::new().await;
    // 0.0.0.0 would reach a listener on 127.0.0.1: put a sentinel there.
    let any = Sentinel::start("127.0.0.1", 0).await.unwrap();
    let p = any.addr.port();
    for u in [format!("http://0.0.0.0:{p}/"), format!("http://0:{p}/")] {
        assert_blocked(&resolve(&env, &u).await, "this network");
    }
    assert_eq!(any.connections(), 0);
    let v6 = Sentinel::start("::1", 0).await;
    let p6 = v6.as_ref().map_or(p, |s| s.addr.port());
    assert_blocked(
        &resolve(&env, &format!("http://[::1]:{p6}/")).await,
        "loopback",
    );
    assert_blocked(
        &resolve(&env, &format!("http://[::]:{p6}/")).await,
        "unspecified",
    );
    if let Some(v6) = v6 {
        assert_eq!(v6.connections(), 0);
    }
}

#[tokio::test]
async fn redirect_to_a_denied_address_is_blocked_and_never_connected() {
    let env = TestEnv::new().await;
    let sentinel = denied_sentinel().await;
    let target = format!(
        "http://127.0.0.2:{}/latest/meta-data/",
        sentinel.addr.port()
    );
    let srv = redirector(&target).await;
    env.dns.set("redir.test", &["127.0.0.1"]);
    let t = resolve(&env, &format!("http://redir.test:{}/", srv.port())).await;
    assert_blocked(&t, "loopback");
    assert_eq!(t.hops.len(), 2);
    assert_eq!(t.hops[0].status, Some(302));
    assert_eq!(t.final_url, target);
    assert_eq!(sentinel.connections(), 0);
}

#[tokio::test]
async fn a_name_answering_a_denied_address_is_blocked() {
    let env = TestEnv::new().await;
    let sentinel = denied_sentinel().await;
    env.dns.set("evil.test", &["127.0.0.2"]);
    let t = resolve(&env, &format!("http://evil.test:{}/", sentinel.addr.port())).await;
    assert_blocked(&t, "127.0.0.2, in the loopback range");
    assert_eq!(sentinel.connections(), 0);
}

#[tokio::test]
async fn a_name_answering_mixed_addresses_is_blocked_whole() {
    let env = TestEnv::new().await;
    let denied = denied_sentinel().await;
    let allowed = Sentinel::start("127.0.0.1", denied.addr.port())
        .await
        .unwrap();
    env.dns.set("mixed.test", &["127.0.0.1", "127.0.0.2"]);
    let t = resolve(&env, &format!("http://mixed.test:{}/", denied.addr.port())).await;
    assert_blocked(&t, "127.0.0.2");
    assert_eq!(denied.connections(), 0);
    assert_eq!(
        allowed.connections(),
        0,
        "a name with any denied address is not reached at all"
    );
}

#[tokio::test]
async fn v4_mapped_v6_answers_are_judged_by_their_v4() {
    let env = TestEnv::new().await;
    let sentinel = denied_sentinel().await;
    env.dns.set("mapped.test", &["::ffff:127.0.0.2"]);
    let t = resolve(
        &env,
        &format!("http://mapped.test:{}/", sentinel.addr.port()),
    )
    .await;
    assert_blocked(&t, "127.0.0.2, in the loopback range");
    env.dns.set("nat64.test", &["64:ff9b::7f00:2"]);
    let t = resolve(
        &env,
        &format!("http://nat64.test:{}/", sentinel.addr.port()),
    )
    .await;
    assert_blocked(&t, "NAT64");
    assert_eq!(sentinel.connections(), 0);
}

#[tokio::test]
async fn dns_rebinding_gains_nothing_the_vetted_address_is_used() {
    let env = TestEnv::new().await;
    let denied = denied_sentinel().await;
    let port = denied.addr.port();
    let srv = Server::start_on(([127, 0, 0, 1], port).into(), None, |_| async {
        html("fine")
    })
    .await;
    // First answer passes the check; any later lookup would say 127.0.0.2.
    env.dns
        .set_sequence("rebind.test", &[&["127.0.0.1"], &["127.0.0.2"]]);
    let t = resolve(&env, &format!("http://rebind.test:{port}/")).await;
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    assert_eq!(t.hops[0].ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        env.dns.queries("rebind.test", 1),
        1,
        "resolved once, no second lookup at connect"
    );
    assert_eq!(srv.connections(), 1);
    assert_eq!(denied.connections(), 0);
}

#[tokio::test]
async fn only_http_and_https_are_followed() {
    let env = TestEnv::new().await;
    for u in [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_x",
        "ftp://127.0.0.1/x",
        "javascript:alert(1)",
        "data:text/html,<script>x</script>",
    ] {
        let t = resolve(&env, u).await;
        assert_blocked(&t, "is not allowed");
    }
    // ... also when a redirect asks for them.
    env.dns.set("to-file.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        match req.uri().path() {
            "/file" => redirect(302, b"file:///etc/passwd"),
            _ => redirect(302, b"gopher://127.0.0.2:70/"),
        }
    })
    .await;
    for path in ["/file", "/gopher"] {
        let t = resolve(&env, &format!("http://to-file.test:{}{path}", srv.port())).await;
        assert_blocked(&t, "is not allowed");
        assert_eq!(t.hops.len(), 2);
    }
}

#[tokio::test]
async fn the_default_policy_denies_loopback_without_an_exception() {
    let mut env = TestEnv::new().await;
    env.config.policy.allow_cidrs.clear();
    let s = Sentinel::start("127.0.0.1", 0).await.unwrap();
    env.dns.set("home.test", &["127.0.0.1"]);
    let t = resolve(&env, &format!("http://home.test:{}/", s.addr.port())).await;
    assert_blocked(&t, "loopback");
    assert_eq!(s.connections(), 0);
}
