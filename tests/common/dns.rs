//! The DNS responder tests point hickory at (UDP on 127.0.0.1).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

/// A DNS responder on 127.0.0.1 (UDP). Each name maps to a list of answers; with more than
/// one, each query takes the next (the last repeats), which is how a rebinding name behaves.
#[derive(Clone)]
pub struct Dns {
    pub addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<Vec<IpAddr>>>>>,
    queries: Arc<Mutex<HashMap<(String, u16), usize>>>,
    /// The TTL of every answer, 0 unless [`Dns::set_ttl`] says otherwise.
    ttl: Arc<std::sync::atomic::AtomicU32>,
}

impl Dns {
    pub async fn start() -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dns = Dns {
            addr: socket.local_addr().unwrap(),
            records: Default::default(),
            queries: Default::default(),
            ttl: Default::default(),
        };
        let me = dns.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    break;
                };
                if let Some(reply) = me.answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        dns
    }

    /// Answers live `secs` from now on, as a real zone's do (the tests' default, 0, means
    /// every lookup asks again, so a test can change answers between hops). An empty answer
    /// then carries an SOA whose minimum is `secs`, so it is cached too.
    pub fn set_ttl(&self, secs: u32) {
        self.ttl.store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// `name` answers these addresses (A and AAAA records as their families say).
    pub fn set(&self, name: &str, addrs: &[&str]) {
        self.set_sequence(name, &[addrs]);
    }

    /// `name` answers the first list on the first query of a type, the second on the next...
    pub fn set_sequence(&self, name: &str, seq: &[&[&str]]) {
        let seq = seq
            .iter()
            .map(|a| a.iter().map(|s| s.parse().unwrap()).collect())
            .collect();
        self.records
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), seq);
    }

    /// How many queries of `qtype` (1 = A, 28 = AAAA) arrived for `name`.
    pub fn queries(&self, name: &str, qtype: u16) -> usize {
        *self
            .queries
            .lock()
            .unwrap()
            .get(&(name.to_ascii_lowercase(), qtype))
            .unwrap_or(&0)
    }

    /// Queries of any type for `name`.
    pub fn all_queries(&self, name: &str) -> usize {
        let n = name.to_ascii_lowercase();
        self.queries
            .lock()
            .unwrap()
            .iter()
            .filter(|((q, _), _)| *q == n)
            .map(|(_, c)| *c)
            .sum()
    }

    fn answer(&self, q: &[u8]) -> Option<Vec<u8>> {
        if q.len() < 12 {
            return None;
        }
        // Question name.
        let mut i = 12;
        let mut labels = Vec::new();
        loop {
            let len = *q.get(i)? as usize;
            i += 1;
            if len == 0 {
                break;
            }
            labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
            i += len;
        }
        let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
        let question_end = i + 4;
        let name = labels.join(".");
        *self
            .queries
            .lock()
            .unwrap()
            .entry((name.clone(), qtype))
            .or_default() += 1;

        let addrs: Option<Vec<IpAddr>> = {
            let mut recs = self.records.lock().unwrap();
            recs.get_mut(&name).map(|seq| {
                let all = seq[0].clone();
                // Advance per A query, so a sequence models answers changing over time.
                if qtype == 1 && seq.len() > 1 {
                    seq.remove(0);
                }
                all
            })
        };
        let mut out = Vec::new();
        out.extend_from_slice(&q[0..2]); // id
        let rcode = if addrs.is_none() { 3 } else { 0 };
        out.extend_from_slice(&[0x81, 0x80 | rcode]);
        let answers: Vec<IpAddr> = addrs
            .unwrap_or_default()
            .into_iter()
            .filter(|a| (qtype == 1 && a.is_ipv4()) || (qtype == 28 && a.is_ipv6()))
            .collect();
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        let ttl = self.ttl.load(std::sync::atomic::Ordering::Relaxed);
        let soa = answers.is_empty() && ttl > 0;
        out.extend_from_slice(&u16::from(soa).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&q[12..question_end]);
        for a in &answers {
            out.extend_from_slice(&[0xc0, 0x0c]);
            out.extend_from_slice(&qtype.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
            match a {
                IpAddr::V4(v4) => {
                    out.extend_from_slice(&4u16.to_be_bytes());
                    out.extend_from_slice(&v4.octets());
                }
                IpAddr::V6(v6) => {
                    out.extend_from_slice(&16u16.to_be_bytes());
                    out.extend_from_slice(&v6.octets());
                }
            }
        }
        if soa {
            // Owner: the question's name; mname and rname: the root; then serial, refresh,
            // retry, expire and minimum (the negative answer's TTL).
            out.extend_from_slice(&[0xc0, 0x0c]);
            out.extend_from_slice(&6u16.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&22u16.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            for v in [1, ttl, ttl, ttl, ttl] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        Some(out)
    }
}
