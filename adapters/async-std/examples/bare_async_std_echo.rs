//! The churn baseline: a bare async-std line server with no tether core —
//! greets `hello #<n>.0`, echoes every line `<id>: <line>`, closes on EOF.
//! Same accept / greeting / line / close cycle as `tether serve`, so
//! `bench/loadgen.sh` can measure both side by side in one run.
//!
//! `cargo run --release -p tether-async-std --example bare_async_std_echo -- 127.0.0.1:7100`

use async_std::io::{BufReader, prelude::*};
use async_std::net::{TcpListener, TcpStream};
use async_std::stream::StreamExt;
use async_std::task;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7100".into());
    task::block_on(async {
        let listener = TcpListener::bind(&addr).await?;
        println!("bare async-std echo on {}", listener.local_addr()?);
        let mut next = 0u64;
        loop {
            let (stream, _) = listener.accept().await?;
            next += 1;
            task::spawn(serve(stream, next));
        }
    })
}

async fn serve(stream: TcpStream, n: u64) {
    let _ = stream.set_nodelay(true);
    let id = format!("#{n}.0");
    let mut writer = &stream;
    if writer
        .write_all(format!("hello {id}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut lines = BufReader::new(&stream).lines();
    while let Some(Ok(line)) = lines.next().await {
        if writer
            .write_all(format!("{id}: {line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
