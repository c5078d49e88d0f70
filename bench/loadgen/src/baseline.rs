//! The baseline: a minimal hyper HTTP/1.1 server that reads the whole request body and
//! answers 200 `{"success":true}`. It measures what accepting an HTTP request costs on this
//! machine, with nothing behind it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Clone, clap::Args)]
pub struct BaselineArgs {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Worker threads (default: one per core, like Sluice's runtime).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Exit after this many seconds, so a forgotten server does not run forever.
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let status = match request.into_body().collect().await {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::BAD_REQUEST,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"success\":true}")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

pub fn serve(args: BaselineArgs) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!("the baseline listens on loopback addresses only");
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!("baseline listening on {}", listener.local_addr()?);
        let stop = tokio::time::sleep(Duration::from_secs(args.max_seconds));
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut stop => {
                    eprintln!("baseline: --max-seconds reached, exiting");
                    return Ok(());
                }
            };
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}
