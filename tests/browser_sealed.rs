//! The browser sends nothing around the gate: no WebRTC UDP, no DNS of its own. These leaks
//! only show on a host with a non-loopback interface (with `lo` alone Chromium sends
//! nothing, and a test would pass unfixed), so the test runs itself again inside a private
//! network and mount namespace holding a veth pair whose two ends both stay inside it, with
//! UDP listeners on the denied addresses a page names and on the resolver of a resolv.conf
//! made for the test. Nothing leaves the namespace. Needs root (CI and the dev machines run as
//! root), `unshare` and `ip`.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hoptrace::chain::Resolver;
use hoptrace::trace::Via;

const INNER: &str = "sealed_inside_a_namespace";
const MARK: &str = "HOPTRACE_IN_TEST_NAMESPACE";

#[test]
fn webrtc_and_dns_stay_inside_the_gate() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--net", "--mount", "--"])
        .arg(&exe)
        .args([
            "--exact",
            INNER,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MARK, "1")
        .output()
        .expect("unshare runs (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "inside the namespace:\n{stdout}\n{stderr}"
    );
    // The inner run really ran its test (a filter that matched nothing would pass too).
    assert!(
        stdout.contains("1 passed"),
        "the inner test ran:\n{stdout}\n{stderr}"
    );
}

/// Runs a shell command of the namespace's set-up, failing loudly.
fn sh(cmd: &str) {
    let ok = Command::new("sh")
        .args(["-c", cmd])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`{cmd}` failed");
}

/// A UDP listener counting the datagrams it gets.
async fn udp_listener(addr: &str) -> Arc<AtomicUsize> {
    let socket = tokio::net::UdpSocket::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            eprintln!("UDP datagram of {n} bytes from {from}");
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    count
}

/// The page: a peer connection naming STUN servers at denied addresses (and by a name, which
/// Chromium would resolve itself) and a remote ICE candidate at a denied address. It moves on
/// when ICE gathering is complete (or after 10 s), which shows the script ran to its end; a
/// long fetch keeps virtual time from skipping the wait (it stops while a fetch is pending),
/// since WebRTC works in real time (a few seconds here before its first STUN packet).
const RTC_PAGE: &str = r#"<script>
var pc = new RTCPeerConnection({ iceServers: [
  { urls: 'stun:127.0.0.9:3478' }, { urls: 'stun:10.99.0.9:3478' }, { urls: 'stun:stun.leak.test:3478' } ] });
pc.createDataChannel('x');
var peer = new RTCPeerConnection();
var moved = false;
function done() {
  if (moved) { return; }
  moved = true;
  location.href = '/rtc-' + 'done?gathering=' + pc.iceGatheringState;
}
pc.createOffer()
  .then(function (o) { return pc.setLocalDescription(o); })
  .then(function () { return peer.setRemoteDescription(pc.localDescription); })
  .then(function () { return peer.createAnswer(); })
  .then(function (a) { return peer.setLocalDescription(a).then(function () { return pc.setRemoteDescription(a); }); })
  .then(function () { return pc.addIceCandidate({ candidate: 'candidate:1 1 udp 2122260223 10.99.0.9 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 }); })
  .catch(function () {});
var waiting = false;
function wait() { if (!waiting) { waiting = true; fetch('/slow').then(done); } }
pc.onicegatheringstatechange = function () {
  if (pc.iceGatheringState === 'gathering') { wait(); }
  if (pc.iceGatheringState === 'complete') { setTimeout(done, 1000); }
};
setTimeout(wait, 3900);
</script>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run inside its own namespaces by webrtc_and_dns_stay_inside_the_gate"]
async fn sealed_inside_a_namespace() {
    assert!(
        std::env::var_os(MARK).is_some(),
        "run through webrtc_and_dns_stay_inside_the_gate: it needs a namespace of its own"
    );
    capture_logs();
    // One non-loopback interface, both ends of it inside this namespace.
    sh("ip link set lo up");
    sh("ip link add hoptrace0 type veth peer name hoptrace1");
    sh("ip addr add 10.99.0.1/24 dev hoptrace0 && ip addr add 10.99.0.9/24 dev hoptrace1");
    sh("ip link set hoptrace0 up && ip link set hoptrace1 up");
    sh("ip route add default via 10.99.0.9 dev hoptrace0");
    // The system resolver points at a listener here: a lookup by Chromium itself shows.
    let dir = tempfile::tempdir().unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.99.0.9\n").unwrap();
    sh(&format!(
        "mount --bind {} /etc/resolv.conf",
        resolv.display()
    ));

    let stun_loopback = udp_listener("127.0.0.9:3478").await;
    let stun_private = udp_listener("10.99.0.9:3478").await;
    let candidate = udp_listener("10.99.0.9:5000").await;
    let system_dns = udp_listener("10.99.0.9:53").await;

    let mut env = TestEnv::new().await;
    env.config.browser.enabled = true;
    env.config.limits.hop_timeout = std::time::Duration::from_millis(20_000);
    env.dns.set("rtc.test", &["127.0.0.1"]);
    let srv = Server::start("127.0.0.1", |req| async move {
        match req.uri().path() {
            "/rtc" => html(RTC_PAGE),
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                html("ok")
            }
            _ => html("<html>done</html>"),
        }
    })
    .await;
    let r = Resolver::new(&env.config, None).unwrap();
    let url = format!("http://rtc.test:{}/rtc", srv.port());
    let t = tokio::time::timeout(Duration::from_secs(60), r.resolve(&url, false))
        .await
        .expect("resolution finished");
    // Give any late STUN retransmission time to arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let hop = t.hops.get(1).map(|h| (h.url.as_str(), h.via));
    assert!(
        hop.is_some_and(|(u, via)| u.contains("/rtc-done?gathering=") && via == Via::Javascript),
        "the page's script ran to its end: {t:#?}"
    );
    eprintln!("the page moved on: {:?}", hop);
    let leaks: Vec<String> = [
        ("STUN to 127.0.0.9:3478", &stun_loopback),
        ("STUN to 10.99.0.9:3478", &stun_private),
        ("ICE check to 10.99.0.9:5000", &candidate),
        ("DNS to the system resolver (stun.leak.test)", &system_dns),
    ]
    .iter()
    .map(|(what, count)| (what, count.load(Ordering::SeqCst)))
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what}: {n} datagrams"))
    .collect();
    assert!(leaks.is_empty(), "left the browser: {leaks:?}");
}
