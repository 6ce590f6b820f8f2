//! A TCP sink on the host for the kprobe cells: accepts one connection from the guest, reads
//! exactly `up` bytes, answers `down` bytes, closes, and reports what it moved.

use std::{
    io::{Read, Write},
    net::TcpListener,
    thread::JoinHandle,
    time::Duration,
};

use hw_tests::signals::Sink;

pub struct Running {
    pub port: u16,
    thread: JoinHandle<Sink>,
}

pub fn start(up: u64, down: u64) -> Result<Running, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("sink: {e}"))?;
    let port = l.local_addr().map_err(|e| format!("sink: {e}"))?.port();
    let thread = std::thread::spawn(move || {
        let mut seen = Sink {
            port,
            ..Default::default()
        };
        let Ok((mut s, _)) = l.accept() else {
            return seen;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
        let mut buf = vec![0u8; 65536];
        while seen.up < up {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.up += n as u64,
            }
        }
        if s.write_all(&vec![b'k'; down as usize]).is_ok() {
            seen.down = down;
        }
        seen
    });
    Ok(Running { port, thread })
}

impl Running {
    /// What the sink moved (waits for its connection to end; the guest has stopped by now).
    pub fn finish(self) -> Sink {
        let port = self.port;
        if !self.thread.is_finished() {
            // The guest never connected: unblock accept() with a connection of our own.
            let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        }
        self.thread.join().unwrap_or(Sink {
            port,
            ..Default::default()
        })
    }
}
