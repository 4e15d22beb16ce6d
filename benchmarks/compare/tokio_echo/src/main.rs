//! The Tokio echo server of the side-by-side networking benchmark (../run_net.sh): one
//! current_thread runtime (single-threaded, like corio's loop), one spawned task per
//! connection, the shape of Tokio's own examples/echo.rs.
//!
//!   cargo build --release --offline      # in benchmarks/compare/tokio_echo/
//!
//!   tokio_echo [--port 0]     # prints the real port on stdout; serves until killed
use std::io::Write;
use std::process;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Builder;

// One connection: read what arrived (up to 64 KiB), write it all back, until EOF or an error.
async fn echo(mut socket: TcpStream) {
    let _ = socket.set_nodelay(true);
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = match args.as_slice() {
        [_] => 0,
        [_, flag, p] if flag == "--port" => p.parse().unwrap_or_else(|_| usage()),
        _ => usage(),
    };
    let rt = Builder::new_current_thread().enable_io().build().expect("runtime");
    rt.block_on(async move {
        // TcpListener::bind: SO_REUSEADDR, backlog 1024.
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        println!("{}", listener.local_addr().expect("local_addr").port());
        std::io::stdout().flush().expect("flush");
        loop {
            match listener.accept().await {
                Ok((socket, _)) => {
                    tokio::spawn(echo(socket));
                }
                Err(e) => eprintln!("tokio_echo: accept: {e}"),
            }
        }
    });
}

fn usage() -> ! {
    eprintln!("usage: tokio_echo [--port N]");
    process::exit(2);
}
