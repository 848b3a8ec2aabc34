//! A network thermal printer on loopback for tests and benchmarks: it keeps
//! the bytes of every print job, notes when each job's first byte arrived,
//! and answers DLE EOT status queries with scripted bytes.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct FakePrinter {
    pub addr: std::net::SocketAddr,
    /// Answers to DLE EOT 1, 2 and 4.
    pub status: Arc<Mutex<[u8; 3]>>,
    /// Every print job's bytes, in arrival order.
    pub jobs: Arc<Mutex<Vec<u8>>>,
    /// When each print job's first byte arrived.
    pub first_bytes: Arc<Mutex<Vec<Instant>>>,
}

impl FakePrinter {
    pub fn start(status: [u8; 3]) -> FakePrinter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let status = Arc::new(Mutex::new(status));
        let jobs = Arc::new(Mutex::new(Vec::new()));
        let first_bytes = Arc::new(Mutex::new(Vec::new()));
        let (st, jb, fb) = (status.clone(), jobs.clone(), first_bytes.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                let (st, jb, fb) = (st.clone(), jb.clone(), fb.clone());
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut first = true;
                    let mut status_conn = false;
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if first {
                            // A connection is either status queries or one print job.
                            status_conn = buf[0] == 0x10;
                            if !status_conn {
                                fb.lock().expect("lock").push(Instant::now());
                            }
                            first = false;
                        }
                        if status_conn {
                            for q in buf[..n].chunks(3) {
                                if let [0x10, 0x04, k] = q {
                                    let s = *st.lock().expect("lock");
                                    let answer = match k {
                                        1 => s[0],
                                        2 => s[1],
                                        _ => s[2],
                                    };
                                    let _ = conn.write_all(&[answer]);
                                }
                            }
                        } else {
                            jb.lock().expect("lock").extend_from_slice(&buf[..n]);
                        }
                    }
                });
            }
        });
        FakePrinter {
            addr,
            status,
            jobs,
            first_bytes,
        }
    }
}
