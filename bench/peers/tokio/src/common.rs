//! Helpers shared by the Tokio peer programs: command-line parsing, the
//! runtime for a worker count, the listening socket and the shutdown signal.
//! Each binary includes this file with `#[path = "../common.rs"] mod common;`.
#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::{Builder, Runtime};

/// Options common to the peer programs.  `names` holds the positional
/// arguments (benchmark names); the servers reject any.
pub struct Args {
    pub workers: usize,
    pub quick: bool,
    pub port: u16,
    pub host: String,
    pub names: Vec<String>,
}

/// Number of CPUs this process may run on (sched_getaffinity), which is the
/// online CPU count unless the process is pinned; Go's runtime.NumCPU
/// answers the same question, so both peers default to the same N.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn usage(prog: &str, msg: &str) -> ! {
    eprintln!("{}: {}", prog, msg);
    eprintln!(
        "usage: {} [--workers N] [--quick] [name...]   (benchmarks)\n       {} [--port P] [--host H] [--workers N]   (servers)",
        prog, prog
    );
    std::process::exit(2);
}

pub fn parse_args() -> Args {
    let mut argv = std::env::args();
    let prog = argv.next().unwrap_or_else(|| "tokio_peer".into());
    let mut a = Args {
        workers: online_cpus(),
        quick: false,
        port: 0,
        host: "127.0.0.1".into(),
        names: Vec::new(),
    };
    while let Some(arg) = argv.next() {
        // Accept both "--opt value" and "--opt=value".
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> String {
            inline
                .clone()
                .or_else(|| argv.next())
                .unwrap_or_else(|| usage(&prog, &format!("{} needs a value", name)))
        };
        match key.as_str() {
            "--workers" => {
                a.workers = match value("--workers").parse() {
                    Ok(n) if n >= 1 && n <= 1024 => n,
                    _ => usage(&prog, "--workers must be between 1 and 1024"),
                }
            }
            "--port" => {
                a.port = value("--port")
                    .parse()
                    .unwrap_or_else(|_| usage(&prog, "--port must be 0..65535"))
            }
            "--host" => a.host = value("--host"),
            "--quick" => a.quick = true,
            "-h" | "--help" => usage(&prog, "help"),
            s if s.starts_with('-') => usage(&prog, &format!("unknown option {}", s)),
            _ => a.names.push(arg),
        }
    }
    a
}

/// The runtime for `workers` threads.  workers = 1 uses the current-thread
/// scheduler, which runs every task on the calling thread with no stealing:
/// that is the counterpart of magpie's single-threaded loop mode.  Larger
/// counts use the work-stealing multi-thread scheduler with exactly that
/// many workers.  Both get the I/O and time drivers.
pub fn runtime(workers: usize) -> Runtime {
    let mut b = if workers == 1 {
        Builder::new_current_thread()
    } else {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    b.enable_all().build().expect("cannot build the Tokio runtime")
}

/// Listens on host:port (port 0 picks a free one).  The backlog asked for is
/// larger than any kernel default so the kernel clamps it to somaxconn, which
/// is what Go's net package uses too.  Must be called inside the runtime.
pub fn listen(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let addr: SocketAddr = format!("{}:{}", host, port)
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad --host"))?;
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(65535)
}

/// Prints the readiness line the benchmark driver waits for.
pub fn announce(listener: &TcpListener) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {}", port);
    let _ = out.flush();
}

/// Makes SIGINT and SIGTERM end the process with status 0, without waiting
/// for open connections.  Call it inside the runtime before announcing, so a
/// signal sent right after the readiness line is not missed: the handlers
/// are installed before this returns.
pub fn exit_on_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [SignalKind::terminate(), SignalKind::interrupt()] {
        let mut sig = signal(kind).expect("cannot watch SIGINT/SIGTERM");
        tokio::spawn(async move {
            sig.recv().await;
            std::process::exit(0);
        });
    }
}
