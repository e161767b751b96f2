//! HTTPS hops: rustls with `tls.extra_ca_files`, SNI by host name, HTTP/2 by ALPN, and a
//! clear `tls` error for a certificate nobody vouches for.

mod common;

use std::sync::Arc;

use common::pki::pki;
use common::*;
use hoptrace::chain::Resolver;
use hoptrace::trace::Outcome;

#[tokio::test]
async fn https_with_extra_ca_sni_and_http2() {
    let mut env = TestEnv::new().await;
    let pki = pki(&["secure.test"]);
    let ca = env.dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    env.config.tls.extra_ca_files = vec![ca];
    env.dns.set("secure.test", &["127.0.0.1"]);
    let h2 = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = h2.clone();
    let srv = Server::start_on(([127, 0, 0, 1], 0).into(), Some(pki.acceptor), move |req| {
        if req.version() == hyper::Version::HTTP_2 {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let v = format!("{:?}", req.version());
        async move {
            match req.uri().path() {
                "/start" => redirect(302, b"/landing"),
                _ => html(&format!("served over {v}")),
            }
        }
    })
    .await;
    let r = Resolver::new(&env.config, None).unwrap();
    let t = r
        .resolve(&format!("https://secure.test:{}/start", srv.port()), false)
        .await;
    assert_eq!(t.outcome, Outcome::Landed, "{t:#?}");
    assert_eq!(t.hops.len(), 2);
    // Both hops went over one HTTP/2 connection.
    assert_eq!(srv.connections(), 1);
    assert_eq!(srv.requests(), 2);
    assert_eq!(
        h2.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "ALPN chose HTTP/2"
    );

    // Each hop's record names the certificate its connection presented (the second hop
    // reused the first's connection), and the HAR of the chain reads in a HAR reader.
    let leaf_sha = hoptrace::record::sha256_hex(&pki.leaf_der);
    for hop in &t.hops {
        let r = hop.http.as_ref().expect("a fetched hop has its record");
        let tls = r.tls.as_ref().expect("an HTTPS hop has its certificate");
        assert_eq!(tls.sha256, leaf_sha);
        assert_eq!(tls.sans, vec!["secure.test"]);
        assert!(tls.not_before < tls.not_after, "{tls:?}");
        assert_eq!(r.http_version, "HTTP/2.0");
        assert!(r.request_headers.iter().any(|h| h.name == "user-agent"));
    }
    let landing = t.hops[1].http.as_ref().unwrap();
    let body = "served over HTTP/2.0".to_string();
    assert_eq!(
        landing.body_sha256.as_deref(),
        Some(hoptrace::record::sha256_hex(body.as_bytes()).as_str())
    );
    assert_eq!(
        t.evidence.as_ref().unwrap().body_sha256,
        landing.body_sha256
    );
    let har = hoptrace::har::har(&[&t]);
    assert_eq!(
        har["log"]["entries"][0]["_tls"]["sha256"],
        leaf_sha.as_str()
    );
    assert_eq!(
        har["log"]["entries"][0]["response"]["redirectURL"],
        t.hops[1].url.as_str()
    );
    let read = common::tools::check_har(&har);
    assert_eq!(
        read,
        vec![
            format!("page_1 {} 302", t.hops[0].url),
            format!("page_1 {} 200", t.hops[1].url),
        ]
    );
}

#[tokio::test]
async fn untrusted_or_wrong_name_certificates_are_tls_errors() {
    let env = TestEnv::new().await; // no extra CA
    let pki = pki(&["secure.test"]);
    env.dns.set("secure.test", &["127.0.0.1"]);
    env.dns.set("wrongname.test", &["127.0.0.1"]);
    let srv = Server::start_on(([127, 0, 0, 1], 0).into(), Some(pki.acceptor), |_| async {
        html("x")
    })
    .await;
    let r = Resolver::new(&env.config, None).unwrap();
    let t = r
        .resolve(&format!("https://secure.test:{}/", srv.port()), false)
        .await;
    assert_eq!(t.outcome, Outcome::Error, "{t:#?}");
    assert_eq!(t.error.as_ref().unwrap().kind, "tls", "{t:#?}");

    // Trusted CA, but the certificate is for another name: SNI/verification by host name.
    let mut env2 = TestEnv::new().await;
    let ca = env2.dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    env2.config.tls.extra_ca_files = vec![ca];
    env2.dns.set("wrongname.test", &["127.0.0.1"]);
    let r = Resolver::new(&env2.config, None).unwrap();
    let t = r
        .resolve(&format!("https://wrongname.test:{}/", srv.port()), false)
        .await;
    assert_eq!(
        t.error.as_ref().map(|e| e.kind.as_str()),
        Some("tls"),
        "{t:#?}"
    );
}

#[tokio::test]
async fn a_bad_extra_ca_file_is_a_startup_error() {
    let mut env = TestEnv::new().await;
    let f = env.dir.path().join("not-a-cert.pem");
    std::fs::write(&f, "hello").unwrap();
    env.config.tls.extra_ca_files = vec![f];
    let err = Resolver::new(&env.config, None).err().unwrap().to_string();
    assert!(
        err.contains("tls.extra_ca_files") && err.contains("not-a-cert.pem"),
        "{err}"
    );
}
