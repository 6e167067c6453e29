//! A loopback TCP relay in front of the API server that a test can cut: an API outage
//! (a network partition) for the one controller whose client goes through it.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A relay to the API server. While cut, nothing passes in either direction and new
/// connections are accepted but never answered (packets dropped, as in a partition);
/// on restore every connection held during the cut is closed, so clients reconnect.
pub struct ApiLink {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ApiLink {
    /// Starts relaying from a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<ApiLink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(relay(inbound, target, cut_rx.clone()));
            }
        });
        Ok(ApiLink { addr, cut, task })
    }

    /// `http://ADDR` of the relay.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client through the relay whose default namespace is `namespace`.
    pub fn client(&self, namespace: &str) -> Result<kube::Client, crate::Error> {
        let uri = self
            .url()
            .parse()
            .map_err(|e| crate::Error::Other(format!("relay URL: {e}")))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = namespace.to_owned();
        Ok(kube::Client::try_from(config)?)
    }

    /// Starts the outage.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Ends the outage.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for ApiLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side closes or the link is cut; a connection that saw
/// a cut is held silent until the restore, then closed.
async fn relay(mut inbound: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let silent_until_restored = |mut cut: watch::Receiver<bool>| async move {
        let _ = cut.wait_for(|c| !*c).await;
    };
    if *cut.borrow_and_update() {
        silent_until_restored(cut).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    let was_cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
        _ = cut.wait_for(|c| *c) => true,
    };
    if was_cut {
        silent_until_restored(cut).await;
    }
    let _ = inbound.shutdown().await;
}
