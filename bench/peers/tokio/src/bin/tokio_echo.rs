//! tokio_echo: the TCP echo server of magpie's network benchmark, on Tokio.
//!
//!     tokio_echo [--port P] [--workers N] [--host H]
//!
//! Port 0 (the default) picks a free port; the chosen one is printed as
//! `listening on <port>` once the server accepts.  Every byte received on a
//! connection is written back (64 KiB buffer, TCP_NODELAY).  Exits with
//! status 0 on SIGINT or SIGTERM.

#[path = "../common.rs"]
mod common;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return, // EOF or reset: drop closes the socket
            Ok(n) => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn main() {
    let args = common::parse_args();
    if !args.names.is_empty() {
        eprintln!("tokio_echo: unexpected argument {}", args.names[0]);
        std::process::exit(2);
    }
    let rt = common::runtime(args.workers);
    rt.block_on(async {
        common::exit_on_signal();
        let listener = common::listen(&args.host, args.port).unwrap_or_else(|e| {
            eprintln!("tokio_echo: listen on {}:{}: {}", args.host, args.port, e);
            std::process::exit(1);
        });
        common::announce(&listener);
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    tokio::spawn(echo(conn));
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
    });
}
