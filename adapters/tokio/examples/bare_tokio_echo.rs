//! The churn baseline for the tokio adapter: a bare tokio line server with
//! no tether core — greets `hello #<n>.0`, echoes every line `<id>: <line>`,
//! closes on EOF. The same accept / greeting / line / close cycle as
//! `tether serve --runtime tokio`, so `bench/loadgen.sh` measures both side
//! by side in one run.
//!
//! `cargo run --release -p tether-tokio --example bare_tokio_echo -- 127.0.0.1:7200`

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7200".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("bare tokio echo on {}", listener.local_addr()?);
    let mut next = 0u64;
    loop {
        let (stream, _) = listener.accept().await?;
        next += 1;
        tokio::spawn(serve(stream, next));
    }
}

async fn serve(stream: TcpStream, n: u64) {
    let _ = stream.set_nodelay(true);
    let id = format!("#{n}.0");
    let (read, mut write) = stream.into_split();
    if write
        .write_all(format!("hello {id}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if write
            .write_all(format!("{id}: {line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
