//! Starting Chromium so that only this process can drive it.
//!
//! - Its DevTools protocol runs over two pipes (`--remote-debugging-pipe`: commands in on fd
//!   3, answers out on fd 4), never a TCP port that another local user could connect to.
//! - Its sandbox is on. Chromium refuses one for root, so when hoptrace runs as root the
//!   browser runs as [`BROWSER_ID`], a user and group no account or other process has (so no
//!   other local process can signal or trace it either). Where the sandbox cannot start
//!   (a container that forbids user namespaces), the browser runs without it and the reason
//!   is logged at start.
//! - It is killed when the thread that started it ends, however this process goes.
//!
//! chromiumoxide only speaks WebSocket, so [`bridge`] gives it one: a loopback listener whose
//! path carries a random secret, that takes exactly one connection and then closes.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

/// The user and group Chromium runs as when hoptrace runs as root: in the range Debian's
/// policy reserves (65000-65533), so no package's account has it.
pub const BROWSER_ID: u32 = 65_500;

/// The largest message the browser may send (a full-page screenshot is the largest real
/// one); a longer one ends the connection, and the browser is started again.
const MAX_MESSAGE: usize = 128 << 20;

/// How many of Chromium's last stderr lines are kept to explain a failed start.
const STDERR_LINES: usize = 20;

/// How the browser was started, for the log and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confinement {
    /// Chromium's own sandbox is on.
    pub sandboxed: bool,
    /// The uid it runs as, when hoptrace (root) started it as [`BROWSER_ID`].
    pub as_user: Option<u32>,
}

/// A started Chromium: the process, the protocol's two pipe ends and its stderr's tail.
pub struct Started {
    pub child: Child,
    pub confinement: Confinement,
    /// Where commands go (Chromium's fd 3).
    pub commands: pipe::Sender,
    /// Where answers and events come from (Chromium's fd 4).
    pub answers: Frames,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Started {
    /// Chromium's last words, for an error message.
    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Why Chromium could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot prepare Chromium's profile directory: {0}")]
    Profile(std::io::Error),
    #[error("cannot start Chromium: {0}")]
    Spawn(std::io::Error),
    #[error("tls.extra_ca_files: {0}")]
    Trust(String),
    #[error("Chromium did not answer on its control pipe ({why}){}", tail(.stderr))]
    NoAnswer { why: String, stderr: String },
}

fn tail(stderr: &str) -> String {
    match stderr.trim() {
        "" => String::new(),
        t => format!("; it said: {t}"),
    }
}

/// Starts Chromium at `path` with `flags` (no control flags: they are added here) and the
/// profile directory `profile`, trusting the PEM roots in `trust` beside its own, confined as
/// well as this host allows. Runs on the thread that is to own the browser (its death kills
/// the browser), inside a tokio runtime.
pub async fn start(
    path: &Path,
    flags: &[String],
    profile: &Path,
    trust: &[PathBuf],
    answer_within: Duration,
) -> Result<Started, LaunchError> {
    std::fs::create_dir_all(profile).map_err(LaunchError::Profile)?;
    if !trust.is_empty() {
        trust_roots(profile, trust)?;
    }
    let as_user = is_root().then_some(BROWSER_ID);
    if let Some(id) = as_user {
        chown_tree(profile, id).map_err(LaunchError::Profile)?;
    }
    let sandboxed = Confinement {
        sandboxed: true,
        as_user,
    };
    let first = match spawn(path, flags, profile, sandboxed) {
        Ok(started) => answered(started, answer_within).await,
        Err(e) => Err(e),
    };
    let why = match first {
        Ok(started) => return Ok(started),
        Err(e) => e,
    };
    // Only a sandbox that cannot start is worked around; any other failure is reported.
    if !why.to_string().to_ascii_lowercase().contains("sandbox") {
        return Err(why);
    }
    tracing::warn!(
        "Chromium's sandbox cannot start on this host, so the browser runs without it \
         (--no-sandbox): {why}"
    );
    let bare = Confinement {
        sandboxed: false,
        as_user,
    };
    answered(spawn(path, flags, profile, bare)?, answer_within).await
}

/// Waits for Chromium's answer to a first command: a browser that cannot start (its sandbox
/// refused, a bad binary) says why on stderr and closes the pipe.
async fn answered(mut started: Started, within: Duration) -> Result<Started, LaunchError> {
    let probe = async {
        started
            .commands
            .write_all(b"{\"id\":-1,\"method\":\"Browser.getVersion\"}\0")
            .await?;
        match started.answers.next().await? {
            Some(_) => Ok(()),
            None => Err(std::io::Error::other("it closed the pipe")),
        }
    };
    let why = match tokio::time::timeout(within, probe).await {
        Ok(Ok(())) => return Ok(started),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", within.as_millis()),
    };
    let _ = started.child.kill();
    let _ = started.child.wait();
    // The stderr reader ends with the process: give it a moment to take the last lines.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Err(LaunchError::NoAnswer {
        why,
        stderr: started.stderr_tail(),
    })
}

/// Forks Chromium with the control pipe on fds 3 and 4, confined as `how` says.
fn spawn(
    path: &Path,
    flags: &[String],
    profile: &Path,
    how: Confinement,
) -> Result<Started, LaunchError> {
    let (their_commands, commands) = std::io::pipe().map_err(LaunchError::Spawn)?;
    let (answers, their_answers) = std::io::pipe().map_err(LaunchError::Spawn)?;
    let mut cmd = Command::new(path);
    cmd.args(flags)
        .arg("--headless")
        .arg("--hide-scrollbars")
        .arg("--remote-debugging-pipe")
        .arg(format!("--user-data-dir={}", profile.display()))
        // Nothing of the user's home is read or written: the profile is the browser's home.
        .env("HOME", profile)
        .env("XDG_CONFIG_HOME", profile)
        .env("XDG_CACHE_HOME", profile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if !how.sandboxed {
        cmd.arg("--no-sandbox");
    }
    let fds = (their_commands.as_raw_fd(), their_answers.as_raw_fd());
    let id = how.as_user;
    // SAFETY: the closure runs in the forked child before exec and makes only
    // async-signal-safe system calls (fcntl, dup2, setgroups, setresgid, setresuid, prctl),
    // touching no memory the parent's other threads could have held locked.
    unsafe {
        cmd.pre_exec(move || confine_child(fds, id));
    }
    let mut child = cmd.spawn().map_err(LaunchError::Spawn)?;
    // The child's ends are closed here, so an exiting browser closes the pipe.
    drop((their_commands, their_answers));
    let commands = pipe::Sender::from_owned_fd(OwnedFd::from(commands));
    let answers = pipe::Receiver::from_owned_fd(OwnedFd::from(answers));
    let (commands, answers) = match (commands, answers) {
        (Ok(c), Ok(a)) => (c, Frames::from_receiver(a)),
        (Err(e), _) | (_, Err(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::Spawn(e));
        }
    };
    let stderr = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(out) = child.stderr.take() {
        let lines = stderr.clone();
        std::thread::Builder::new()
            .name("hoptrace-chromium-stderr".into())
            .spawn(move || keep_tail(out, &lines))
            .map_err(LaunchError::Spawn)?;
    }
    Ok(Started {
        child,
        confinement: how,
        commands,
        answers,
        stderr,
    })
}

/// Reads Chromium's stderr to its end, keeping the last lines (it logs freely; none of it
/// goes to hoptrace's own stderr).
fn keep_tail(out: std::process::ChildStderr, lines: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A line is kept to 1 KiB; the rest of a longer one is skipped.
        match reader.by_ref().take(1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') && line.len() == 1024 {
            let _ = reader.skip_until(b'\n');
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        tracing::trace!(target: "chromium", "{text}");
        let mut kept = lines.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() == STDERR_LINES {
            kept.pop_front();
        }
        kept.push_back(text);
    }
}

/// In the forked child: the pipe on fds 3 (commands) and 4 (answers), the unprivileged
/// identity when asked, and death with the parent thread.
fn confine_child(fds: (i32, i32), id: Option<u32>) -> std::io::Result<()> {
    let check = |r: i32| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: plain system calls on file descriptors and ids this child owns.
    unsafe {
        // Copied above 4 first, so that neither dup2 overwrites the other's source.
        let commands = check(libc::fcntl(fds.0, libc::F_DUPFD_CLOEXEC, 10))?;
        let answers = check(libc::fcntl(fds.1, libc::F_DUPFD_CLOEXEC, 10))?;
        check(libc::dup2(commands, 3))?;
        check(libc::dup2(answers, 4))?;
        if let Some(id) = id {
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(id, id, id))?;
            check(libc::setresuid(id, id, id))?;
        }
        // After the identity change, which would clear it.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
    }
    Ok(())
}

/// Gives the browser the roots the HTTP client trusts beside the built-in ones: Chromium on
/// Linux takes locally added roots from the NSS database in its home (`~/.pki/nssdb`, the
/// profile here), which NSS's `certutil` writes. Each certificate of each PEM file is added.
fn trust_roots(profile: &Path, files: &[PathBuf]) -> Result<(), LaunchError> {
    let db = profile.join(".pki").join("nssdb");
    std::fs::create_dir_all(&db).map_err(LaunchError::Profile)?;
    let db = format!("sql:{}", db.display());
    let certutil = |args: &[&str]| -> Result<(), LaunchError> {
        let out = Command::new("certutil")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => LaunchError::Trust(
                    "the browser is given these roots with NSS's certutil, which is not \
                     installed (apt-get install libnss3-tools)"
                        .into(),
                ),
                _ => LaunchError::Trust(format!("certutil: {e}")),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(LaunchError::Trust(format!(
                "certutil {}: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    };
    certutil(&["-N", "-d", &db, "--empty-password"])?;
    let mut n = 0;
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| LaunchError::Trust(format!("{}: {e}", file.display())))?;
        for pem in pem_certificates(&text) {
            let one = profile.join(format!("root-{n}.pem"));
            std::fs::write(&one, pem).map_err(LaunchError::Profile)?;
            let name = format!("hoptrace root {n}");
            let path = one.display().to_string();
            certutil(&["-A", "-d", &db, "-n", &name, "-t", "C,,", "-i", &path])?;
            n += 1;
        }
    }
    Ok(())
}

/// The certificate blocks of a PEM text, markers included.
fn pem_certificates(text: &str) -> Vec<&str> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let end = start + len + END.len();
        found.push(&rest[start..end]);
        rest = &rest[end..];
    }
    found
}

/// Gives `dir` and everything in it to `id` (the browser's user).
fn chown_tree(dir: &Path, id: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(id), Some(id))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chown_tree(&entry.path(), id)?;
        } else {
            std::os::unix::fs::chown(entry.path(), Some(id), Some(id))?;
        }
    }
    Ok(())
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// The browser's messages, NUL-terminated on its answer pipe, one at a time.
pub struct Frames {
    reader: tokio::io::BufReader<pipe::Receiver>,
    buf: Vec<u8>,
}

impl Frames {
    pub fn from_receiver(rx: pipe::Receiver) -> Frames {
        Frames {
            reader: tokio::io::BufReader::with_capacity(64 << 10, rx),
            buf: Vec::new(),
        }
    }

    /// The next message; `None` when the browser closed the pipe. A message over
    /// [`MAX_MESSAGE`] is an error.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.buf.clear();
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                return Ok(None);
            }
            let (taken, done) = match memchr::memchr(0, chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if self.buf.len() + taken > MAX_MESSAGE {
                return Err(std::io::Error::other(format!(
                    "the browser sent a message of over {MAX_MESSAGE} bytes"
                )));
            }
            self.buf.extend_from_slice(&chunk[..taken]);
            self.reader.consume(taken + usize::from(done));
            if done {
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for Chromium: refuses to start with its sandbox (as Chromium does where
    /// user namespaces are forbidden), and otherwise answers one command on its pipe.
    fn stand_in(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("chromium");
        std::fs::write(
            &path,
            "#!/bin/bash\n\
             case \" $* \" in *' --no-sandbox '*) ;; *) echo 'No usable sandbox!' >&2; exit 1;; esac\n\
             read -r -d '' msg <&3\n\
             printf '{\"id\":-1,\"result\":{}}\\0' >&4\n\
             sleep 30\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn without_a_usable_sandbox_the_browser_starts_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = stand_in(dir.path());
        let profile = dir.path().join("profile");
        let mut started = start(&path, &[], &profile, &[], Duration::from_secs(10))
            .await
            .expect("started on the second try");
        assert!(!started.confinement.sandboxed);
        assert_eq!(started.confinement.as_user, is_root().then_some(BROWSER_ID));
        let _ = started.child.kill();
        let _ = started.child.wait();
    }

    #[tokio::test]
    async fn another_failure_is_reported_with_what_the_browser_said() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chromium");
        std::fs::write(&path, "#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = start(
            &path,
            &[],
            &dir.path().join("p"),
            &[],
            Duration::from_secs(10),
        )
        .await
        .err()
        .expect("it fails");
        assert!(e.to_string().contains("cannot open display"), "{e}");
    }
}
