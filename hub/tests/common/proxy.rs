//! A loopback TCP proxy in front of the broker that holds back the broker's first bytes on
//! every connection (its CONNACK) for a while: a broker, or a TLS handshake, slow to accept.
//! It counts the connections made through it, so a test can tell one patient connection from
//! attempts abandoned and started again.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

pub struct SlowProxy {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl SlowProxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream`, the broker's
    /// first bytes on each connection `delay` late.
    pub fn start(upstream: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("proxy address").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || relay(client, upstream, delay));
            }
        });
        Self { port, connections }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn relay(client: TcpStream, upstream: u16, delay: Duration) {
    let Ok(broker) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let (Ok(mut client_in), Ok(mut broker_out)) = (client.try_clone(), broker.try_clone()) else {
        return;
    };
    // Client to broker at once; when the client goes, so does the broker's side.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut broker_out);
        let _ = broker_out.shutdown(Shutdown::Both);
    });
    let (mut broker_in, mut client_out) = (broker, client);
    let mut buf = [0u8; 4096];
    let mut first = true;
    while let Ok(n @ 1..) = broker_in.read(&mut buf) {
        if first {
            std::thread::sleep(delay);
            first = false;
        }
        if client_out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client_out.shutdown(Shutdown::Both);
}
