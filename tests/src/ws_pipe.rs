//! A websocket-aware TCP pipe for fault tests: between a client and the
//! server it passes the HTTP upgrade and then whole masked client frames,
//! asking of each frame's text whether to pass it, pass it and cut, or cut
//! before it; a cut stops both directions at once, so the client never gets
//! what the server answers afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What to do with one client frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The server gets it, then the connection is cut (after 500 ms, so the
    /// server surely reads it) before its answer reaches the client.
    PassThenCut,
    /// The server never gets it: the connection is cut instead.
    CutBefore,
}

/// Pipes `client` and `upstream` both ways on threads of their own;
/// `decide` sees the text of each client frame.
pub fn pipe(
    client: TcpStream,
    upstream: TcpStream,
    decide: impl FnMut(&str) -> Verdict + Send + 'static,
) {
    let cut = Arc::new(AtomicBool::new(false));
    let (mut from, mut to, down_cut) = (
        upstream.try_clone().expect("a socket clone"),
        client.try_clone().expect("a socket clone"),
        cut.clone(),
    );
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || down_cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
    std::thread::spawn(move || pipe_up(client, upstream, &cut, decide));
}

fn pipe_up(
    mut from: TcpStream,
    mut to: TcpStream,
    cut: &AtomicBool,
    mut decide: impl FnMut(&str) -> Verdict,
) {
    let mut acc: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16384];
    let mut header_done = false;
    let stop = |from: &TcpStream, to: &TcpStream| {
        let _ = from.shutdown(std::net::Shutdown::Both);
        let _ = to.shutdown(std::net::Shutdown::Both);
    };
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        acc.extend_from_slice(&buf[..n]);
        if !header_done {
            let Some(end) = acc.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if to.write_all(&acc[..end + 4]).is_err() {
                break;
            }
            acc.drain(..end + 4);
            header_done = true;
        }
        while let Some((frame, text)) = next_frame(&mut acc) {
            let verdict = decide(&text);
            if verdict == Verdict::CutBefore {
                cut.store(true, Ordering::SeqCst);
                return stop(&from, &to);
            }
            if to.write_all(&frame).is_err() {
                return;
            }
            if verdict == Verdict::PassThenCut {
                cut.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(500));
                return stop(&from, &to);
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// The next whole masked client frame in `acc` (taken out of it) and its
/// unmasked text; None until one has fully arrived.
fn next_frame(acc: &mut Vec<u8>) -> Option<(Vec<u8>, String)> {
    if acc.len() < 6 {
        return None;
    }
    let (len, hdr) = match (acc[1] & 0x7F) as usize {
        126 => (u16::from_be_bytes([acc[2], acc[3]]) as usize, 4),
        127 => return None,
        l => (l, 2),
    };
    if acc.len() < hdr + 4 + len {
        return None;
    }
    let mask = [acc[hdr], acc[hdr + 1], acc[hdr + 2], acc[hdr + 3]];
    let payload: Vec<u8> = acc[hdr + 4..hdr + 4 + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    let frame = acc.drain(..hdr + 4 + len).collect();
    Some((frame, String::from_utf8_lossy(&payload).into_owned()))
}
