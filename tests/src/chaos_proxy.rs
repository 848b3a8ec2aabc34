//! A TCP proxy for network fault tests: it passes bytes both ways and, on
//! command, cuts every open connection, stalls (holds bytes back until told
//! otherwise) or slows them (32-byte pieces, 40 ms apart).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Pass = 0,
    Slow = 1,
    Stall = 2,
}

pub struct ChaosProxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// Connections cut so far.
    pub cuts: AtomicUsize,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
}

impl ChaosProxy {
    pub fn start(upstream: SocketAddr) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(vec![]));
        let accepted = Arc::new(AtomicUsize::new(0));
        {
            let (mode, open, accepted) = (mode.clone(), open.clone(), accepted.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { break };
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    accepted.fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut o) = open.lock() {
                        o.extend(client.try_clone().ok());
                        o.extend(server.try_clone().ok());
                    }
                    for (from, to) in [
                        (client.try_clone(), server.try_clone()),
                        (server.try_clone(), client.try_clone()),
                    ] {
                        if let (Ok(from), Ok(to)) = (from, to) {
                            let mode = mode.clone();
                            std::thread::spawn(move || pump(from, to, mode));
                        }
                    }
                }
            });
        }
        ChaosProxy {
            addr,
            mode,
            open,
            cuts: AtomicUsize::new(0),
            accepted,
        }
    }

    pub fn set(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Closes every open connection at once, both ways.
    pub fn cut(&self) {
        if let Ok(mut o) = self.open.lock() {
            for s in o.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        self.cuts.fetch_add(1, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, mode: Arc<AtomicU8>) {
    let mut buf = [0u8; 16384];
    'read: while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        loop {
            match mode.load(Ordering::SeqCst) {
                m if m == Mode::Stall as u8 => std::thread::sleep(Duration::from_millis(20)),
                m if m == Mode::Slow as u8 => {
                    for piece in buf[..n].chunks(32) {
                        std::thread::sleep(Duration::from_millis(40));
                        if to.write_all(piece).is_err() {
                            break 'read;
                        }
                    }
                    break;
                }
                _ => {
                    if to.write_all(&buf[..n]).is_err() {
                        break 'read;
                    }
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
