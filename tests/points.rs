//! Egress points: a SOCKS5 and an HTTP CONNECT proxy started by the test, dialling out from
//! 127.0.0.2 and 127.0.0.3, in front of a fixture that answers by its visitor's address. The
//! comparison finds the branch behind each point; every SSRF trap stays blocked through either
//! proxy, and neither proxy is ever asked for a denied address — or for a name.

mod common;

use common::proxies::{two_points, Kind, TestProxy};
use common::*;
use hoptrace::chain::Resolver;
use hoptrace::config::Point;
use hoptrace::trace::Outcome;

/// `geo.test` answers by where its visitor comes from: through 127.0.0.2 the phishing page,
/// through 127.0.0.3 the payload host, from hoptrace's own address a harmless page.
async fn geo_site(env: &TestEnv) -> Server {
    for h in ["geo.test", "rd.lesac.ru", "cdn.failhostingpolp.ru"] {
        env.dns.set(h, &["127.0.0.1"]);
    }
    let landing = Server::start("127.0.0.1", |_| async { html("<html>page</html>") }).await;
    let port = landing.port();
    std::mem::forget(landing);
    Server::start("127.0.0.1", move |req| {
        let peer = req
            .extensions()
            .get::<PeerAddr>()
            .unwrap()
            .0
            .ip()
            .to_string();
        async move {
            match peer.as_str() {
                "127.0.0.2" => redirect(302, format!("http://rd.lesac.ru:{port}/").as_bytes()),
                "127.0.0.3" => redirect(
                    302,
                    format!("http://cdn.failhostingpolp.ru:{port}/").as_bytes(),
                ),
                _ => html("<html>harmless</html>"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn each_point_sees_its_own_branch() {
    let mut env = TestEnv::new().await;
    let (socks, connect) = two_points(&mut env).await;
    let site = geo_site(&env).await;
    let r = Resolver::new(&env.config, None).unwrap();
    let url = format!("http://geo.test:{}/", site.port());
    let found = hoptrace::compare::compare(&r, &url, &[], &[])
        .await
        .unwrap();
    assert_eq!(
        found.cells.len(),
        6 + 2,
        "built-in profiles directly, the default through each point"
    );
    let end = |via: &str| {
        let c = found.cells.iter().find(|c| c.via == via).unwrap();
        c.trace.final_host.clone()
    };
    assert_eq!(end("direct"), "geo.test");
    assert_eq!(end("nl"), "rd.lesac.ru");
    assert_eq!(end("us"), "cdn.failhostingpolp.ru");
    assert!(found.cloaked);
    // The proxies were asked for vetted addresses only.
    let site_addr = format!("127.0.0.1:{}", site.port());
    assert!(socks.asked().contains(&site_addr), "{:?}", socks.asked());
    assert!(
        connect.asked().contains(&site_addr),
        "{:?}",
        connect.asked()
    );
    for asked in socks.asked().iter().chain(connect.asked().iter()) {
        assert!(asked.starts_with("127.0.0.1:"), "asked for {asked}");
    }

    // One profile through one point; an unknown point is refused by name.
    let t = r
        .resolve_as(&url, "windows-chrome", "us", false)
        .await
        .unwrap()
        .trace;
    assert_eq!(t.final_host, "cdn.failhostingpolp.ru");
    let e = r
        .resolve_as(&url, "windows-chrome", "mars", false)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no egress point `mars`"), "{e}");
}

#[tokio::test]
async fn every_trap_stays_blocked_through_each_proxy() {
    let mut env = TestEnv::new().await;
    let (socks, connect) = two_points(&mut env).await;
    let ok = Server::start("127.0.0.1", |_| async { html("<html>ok</html>") }).await;
    env.dns.set("internal.test", &["10.0.0.1"]);
    env.dns.set("metadata.test", &["169.254.169.254"]);
    env.dns.set("mixed.test", &["127.0.0.1", "10.1.2.3"]);
    env.dns.set("mapped.test", &["::ffff:127.0.0.2"]);
    env.dns.set("six.test", &["::1"]);
    env.dns.set("hop.test", &["127.0.0.1"]);
    let to_meta = Server::start("127.0.0.1", |_| async {
        redirect(302, b"http://169.254.169.254/latest/meta-data/")
    })
    .await;
    let traps = [
        "http://127.0.0.2/".to_string(),
        "http://0x7f000002/".into(),
        "http://2130706434/".into(),
        "http://[::ffff:127.0.0.2]/".into(),
        "http://[::1]/".into(),
        "http://10.0.0.1/".into(),
        "http://169.254.169.254/latest/".into(),
        "http://internal.test/".into(),
        "http://metadata.test/".into(),
        format!("http://mixed.test:{}/", ok.port()),
        "http://mapped.test/".into(),
        "http://six.test/".into(),
        format!("http://hop.test:{}/", to_meta.port()),
        "file:///etc/passwd".into(),
        "gopher://127.0.0.1:70/_x".into(),
    ];
    let r = Resolver::new(&env.config, None).unwrap();
    for via in ["nl", "us"] {
        for trap in &traps {
            let t = r
                .resolve_as(trap, "windows-chrome", via, false)
                .await
                .unwrap()
                .trace;
            assert_eq!(t.outcome, Outcome::Blocked, "{trap} via {via}: {t:#?}");
        }
    }
    // Only the allowed fixture was ever asked for (the redirect's first hop), by address.
    for asked in socks.asked().iter().chain(connect.asked().iter()) {
        assert_eq!(
            asked,
            &format!("127.0.0.1:{}", to_meta.port()),
            "asked for {asked}"
        );
    }
}

/// A point whose proxy is down, or refuses: an error of kind `proxy` that says which.
#[tokio::test]
async fn a_dead_or_refusing_proxy_is_a_proxy_error() {
    let mut env = TestEnv::new().await;
    let dead = common::db::free_port();
    env.config.egress.points.insert(
        "dead".into(),
        Point {
            proxy: format!("socks5://127.0.0.1:{dead}"),
            country: String::new(),
            nameservers: vec![],
        },
    );
    // A CONNECT proxy that cannot reach the target (nothing listens there) answers 502.
    let connect = TestProxy::start(Kind::Connect, "127.0.0.1", "127.0.0.3").await;
    env.config.egress.points.insert(
        "refusing".into(),
        Point {
            proxy: connect.url(Kind::Connect),
            country: String::new(),
            nameservers: vec![],
        },
    );
    env.dns.set("nobody.test", &["127.0.0.1"]);
    let closed = common::db::free_port();
    let r = Resolver::new(&env.config, None).unwrap();
    for (via, says) in [("dead", "cannot reach the proxy"), ("refusing", "502")] {
        let t = r
            .resolve_as(
                &format!("http://nobody.test:{closed}/"),
                "windows-chrome",
                via,
                false,
            )
            .await
            .unwrap()
            .trace;
        let e = t.error.as_ref().expect("an error");
        assert_eq!(e.kind.as_str(), "proxy", "{via}: {t:#?}");
        assert!(e.message.contains(says), "{via}: {}", e.message);
    }
}
