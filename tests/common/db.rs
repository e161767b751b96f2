//! Real PostgreSQL and Redis for tests, from Debian's packages (scripts/setup installs them):
//! each server is started in a folder of its own on a free loopback port and dies with the
//! test that started it (a dedicated thread owns the process; `setpriv --pdeathsig KILL`
//! takes it down with that thread, even when the test binary is killed). PostgreSQL refuses
//! to run as root, so as root it runs as the `postgres` user (or `nobody`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The user a server runs as: unchanged, or (as root) an unprivileged one.
fn run_as() -> Option<&'static str> {
    if !is_root() {
        return None;
    }
    let exists = |u: &str| {
        Command::new("id")
            .arg(u)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    Some(if exists("postgres") {
        "postgres"
    } else {
        "nobody"
    })
}

/// `program args` as `user`, dying with the thread that started it.
fn command(user: Option<&str>, program: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    if let Some(u) = user {
        c.args(["--reuid", u, "--regid", u, "--init-groups"]);
    }
    c.args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .args(args);
    c
}

/// A server process owned by a thread of its own: dropping the handle stops it (SIGINT, then
/// SIGKILL), and so does the test binary's death.
struct Owned {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pid: u32,
}

impl Owned {
    fn spawn(mut cmd: Command, log: PathBuf) -> Owned {
        let (pid_tx, pid_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let log = std::fs::File::create(&log).unwrap();
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start a server (is it installed? scripts/setup)");
            pid_tx.send(child.id()).unwrap();
            // Until asked to stop (or the handle is gone).
            let _ = stop_rx.recv();
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        });
        let pid = pid_rx.recv().unwrap();
        Owned {
            stop: Some(stop_tx),
            thread: Some(thread),
            pid,
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    fn kill9(&self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not start on port {port}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

// ---------------------------------------------------------------- PostgreSQL

fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (scripts/setup installs it)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.pop().unwrap().join(name)
}

/// A PostgreSQL server in a temp folder: superuser `hoptrace`, trust auth on loopback.
pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<Owned>,
    user: Option<&'static str>,
}

impl Postgres {
    pub fn start() -> Postgres {
        let user = run_as();
        let dir = tempfile::Builder::new()
            .prefix("hoptrace-pg")
            .tempdir()
            .unwrap();
        if let Some(u) = user {
            let status = Command::new("chown")
                .args(["-R", u])
                .arg(dir.path())
                .status();
            assert!(status.is_ok_and(|s| s.success()), "chown {u}");
        }
        let data = dir.path().join("data");
        let out = command(
            user,
            &pg_bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "hoptrace",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            port: free_port(),
            dir,
            process: None,
            user,
        };
        pg.run();
        pg
    }

    fn run(&mut self) {
        let data = self.dir.path().join("data");
        let sockets = self.dir.path().to_str().unwrap().to_string();
        let port = self.port.to_string();
        let cmd = command(
            self.user,
            &pg_bin("postgres"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-p",
                &port,
                "-k",
                &sockets,
                "-c",
                "listen_addresses=127.0.0.1",
                // Tests never crash the database itself, only its clients.
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
        );
        let log = self.dir.path().join("postgres.log");
        self.process = Some(Owned::spawn(cmd, log.clone()));
        // An open port is not a server that takes queries (it says "starting up").
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(pg_bin("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "hoptrace",
                    "-d",
                    "postgres",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start on port {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown); [`Postgres::restart`] brings it back on its port.
    pub fn stop(&mut self) {
        self.process = None;
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// A new, empty database on this server, and its URL.
    pub async fn database(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        self.url(name)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://hoptrace@127.0.0.1:{}/{db}", self.port)
    }
}

/// One PostgreSQL server for a whole test binary (a database per test), started on first use.
/// (Its folder outlives the binary; the next run removes the folders of dead servers.)
pub fn shared_postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| {
        remove_dead_servers();
        Postgres::start()
    })
}

/// Folders of shared servers whose process is gone (their binaries ended).
fn remove_dead_servers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if !e.file_name().to_string_lossy().starts_with("hoptrace-pg") {
            continue;
        }
        let pid = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_string));
        let alive = pid.is_some_and(|p| Path::new("/proc").join(p.trim()).exists());
        // A folder still being set up has no pid file yet but is new: leave it a minute.
        let young = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(60));
        if !alive && !young {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// A fresh database on the shared server.
pub async fn fresh_database() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let pg = shared_postgres();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    pg.database(&name).await
}

// ---------------------------------------------------------------- Redis

/// A Redis server on a free loopback port, keeping nothing on disk.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<Owned>,
}

impl Redis {
    pub fn start() -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("hoptrace-redis")
            .tempdir()
            .unwrap();
        let mut r = Redis {
            port: free_port(),
            dir,
            process: None,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let port = self.port.to_string();
        let cmd = command(
            None,
            Path::new("/usr/bin/redis-server"),
            &[
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.path().to_str().unwrap(),
            ],
        );
        let log = self.dir.path().join("redis.log");
        self.process = Some(Owned::spawn(cmd, log.clone()));
        wait_for_port(self.port, "Redis", &log);
    }

    pub fn stop(&mut self) {
        if let Some(p) = &self.process {
            p.kill9();
        }
        self.process = None;
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}
