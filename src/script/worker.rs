//! The engine's worker processes: this program started with [`WORKER_ARG`] reads one JSON
//! [`Request`] a line on stdin and answers one JSON [`Verdict`] a line, under an
//! address-space limit, dying with its parent. The parent keeps a few warm and replaces one
//! that dies, overruns or answers nonsense, naming why in the deferral.

use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use super::{evaluate, Defer, Deferral, Request, Verdict};

/// The hidden first argument that makes this program a worker.
pub const WORKER_ARG: &str = "__script-worker";
/// A worker's address space beyond what it has mapped at its start (the program, and the
/// allocator's reserved arena): the engine's stack and the pages' heap.
const MEMORY: u64 = 1 << 30;
/// The thread that runs the pages: deep parses need a deep stack.
const STACK: usize = 64 << 20;
/// A verdict is a URL and a few words; a longer line is nonsense.
const MAX_ANSWER: u64 = 1 << 20;
/// A worker says it is ready within this.
const START_TIME: Duration = Duration::from_secs(10);
const READY: &str = "ready";

/// The worker's side: serves requests until stdin closes. Returns the exit code.
pub fn serve() -> i32 {
    // Dies with the process that started it, whatever that one's end.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let _ = rlimit::setrlimit(rlimit::Resource::CORE, 0, 0);
    let limit = mapped_bytes().unwrap_or(0) + MEMORY;
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::AS, limit, limit) {
        eprintln!("script worker: cannot limit its memory: {e}");
        return 1;
    }
    let work = std::thread::Builder::new()
        .name("script".into())
        .stack_size(STACK)
        .spawn(|| {
            let stdin = std::io::stdin();
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{READY}").and_then(|_| out.flush()).is_err() {
                return;
            }
            for line in stdin.lock().lines() {
                let Ok(line) = line else { return };
                let verdict = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => std::panic::catch_unwind(|| evaluate(&req)).unwrap_or_else(|_| {
                        Verdict::Defer(Defer::Crashed.because("the engine panicked"))
                    }),
                    Err(e) => Verdict::Defer(Defer::Crashed.because(&format!("bad request: {e}"))),
                };
                let Ok(answer) = serde_json::to_string(&verdict) else {
                    return;
                };
                if writeln!(out, "{answer}").and_then(|_| out.flush()).is_err() {
                    return;
                }
            }
        });
    match work.map(|t| t.join()) {
        Ok(Ok(())) => 0,
        Ok(Err(_)) => 1,
        Err(e) => {
            eprintln!("script worker: cannot start its thread: {e}");
            1
        }
    }
}

/// The process's address space now (`VmSize`), in bytes.
fn mapped_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One running worker.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    async fn start(program: Option<&Path>) -> Result<Worker, Deferral> {
        let unavailable = |e: &dyn std::fmt::Display| {
            Defer::Unavailable.because(&format!("cannot start the script worker: {e}"))
        };
        let program = match program {
            Some(program) => program.to_path_buf(),
            None => std::env::current_exe().map_err(|e| unavailable(&e))?,
        };
        let mut child = Command::new(&program)
            .arg(WORKER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(&e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(unavailable(&"no pipes"));
        };
        let mut w = Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        match tokio::time::timeout(START_TIME, w.line()).await {
            Ok(Ok(line)) if line.trim() == READY => Ok(w),
            _ => Err(unavailable(&format!(
                "{} did not start as one",
                program.display()
            ))),
        }
    }

    /// One line of the worker's answer, bounded.
    async fn line(&mut self) -> std::io::Result<String> {
        let mut buf = Vec::new();
        (&mut self.stdout)
            .take(MAX_ANSWER)
            .read_until(b'\n', &mut buf)
            .await?;
        if buf.last() != Some(&b'\n') {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    async fn ask(&mut self, request: &[u8]) -> std::io::Result<Verdict> {
        self.stdin.write_all(request).await?;
        self.stdin.flush().await?;
        let line = self.line().await?;
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    /// Ends the worker and says what became of it.
    async fn end(mut self, timed_out: Option<Duration>) -> Deferral {
        if let Some(limit) = timed_out {
            let _ = self.child.kill().await;
            return Defer::Time.because(&format!(
                "scripts still running after {} ms",
                limit.as_millis()
            ));
        }
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        let _ = self.child.kill().await;
        match status.ok().and_then(Result::ok).and_then(|s| s.signal()) {
            // An allocation past the address-space limit aborts.
            Some(libc::SIGABRT) => Defer::Memory.because(&format!(
                "the script worker ran out of its {} MiB",
                MEMORY >> 20
            )),
            Some(libc::SIGSEGV) | Some(libc::SIGBUS) => {
                Defer::Recursion.because("the script worker overflowed its stack")
            }
            Some(sig) => Defer::Crashed.because(&format!("the script worker died (signal {sig})")),
            None => Defer::Crashed.because("the script worker ended"),
        }
    }
}

/// Warm workers, at most `slots` busy at once.
pub(super) struct Pool {
    program: Option<PathBuf>,
    idle: Mutex<Vec<Worker>>,
    slots: Semaphore,
}

impl Pool {
    pub(super) fn new(program: Option<PathBuf>, slots: usize) -> Pool {
        Pool {
            program,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(slots),
        }
    }

    /// Runs `request` in a worker within `time`.
    pub(super) async fn ask(&self, request: &Request, time: Duration) -> Verdict {
        let Ok(mut line) = serde_json::to_vec(request) else {
            return Verdict::Defer(Defer::Crashed.because("request not encodable"));
        };
        line.push(b'\n');
        let Ok(_slot) = self.slots.acquire().await else {
            return Verdict::Defer(Defer::Unavailable.because("engine closed"));
        };
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut worker = match idle {
            Some(w) => w,
            None => match Worker::start(self.program.as_deref()).await {
                Ok(w) => w,
                Err(d) => return Verdict::Defer(d),
            },
        };
        match tokio::time::timeout(time, worker.ask(&line)).await {
            Ok(Ok(verdict)) => {
                self.idle
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(worker);
                verdict
            }
            Ok(Err(_)) => Verdict::Defer(worker.end(None).await),
            Err(_) => Verdict::Defer(worker.end(Some(time)).await),
        }
    }
}
