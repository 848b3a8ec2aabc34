//! The sending side of one websocket connection's socket. A server's
//! websocket frames are never masked, so a text frame is the same bytes for
//! every client: `encode` makes its header once and the payload is the
//! shared buffer the hub already built. A `Wire` writes such frames straight
//! to the socket (one `send`, no copy per client) and keeps in order whatever
//! the socket did not take yet. Both the connection's own task and the screens'
//! fan-out (`fanout.rs`) push frames to it; tungstenite sees the socket
//! through `WireIo` and handles the reading side and control frames (ping,
//! pong, close).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Bytes a client may have waiting before the fan-out gives up on sending it
/// events one by one (it gets a fresh snapshot once it has caught up).
pub const MAX_QUEUED: usize = 256 * 1024;

/// A complete unmasked text frame: its header and its payload.
pub fn encode(text: &Utf8Bytes) -> [Bytes; 2] {
    let payload = Bytes::from(text.clone());
    let header = FrameHeader {
        is_final: true,
        opcode: OpCode::Data(Data::Text),
        mask: None,
        ..FrameHeader::default()
    };
    let mut h = Vec::with_capacity(10);
    // Writing to a Vec cannot fail.
    let _ = header.format(payload.len() as u64, &mut h);
    [Bytes::from(h), payload]
}

/// What became of a push.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// All of it went to the socket (or the socket is broken and it was dropped).
    Sent,
    /// Some of it waits in the queue; the connection's task must flush.
    Queued,
}

/// The socket and the bytes it has not taken yet.
pub struct Wire {
    sock: TcpStream,
    out: Mutex<Out>,
    /// Tells the connection's task that the queue needs flushing or that the
    /// fan-out let go of it.
    pub kick: Notify,
}

#[derive(Default)]
struct Out {
    /// Unsent bytes in order; the flag marks the last piece of a frame.
    queue: VecDeque<(Bytes, bool)>,
    queued: usize,
    /// Bytes the socket took so far (progress, for send timeouts).
    sent: u64,
    /// The socket failed: later pushes are dropped.
    broken: bool,
    /// Fan-out membership: the fan-out sends only while its ticket matches.
    ticket: u64,
    /// The fan-out dropped events for this client (it was too far behind).
    lagged: bool,
}

/// Unsent bytes the kernel may hold for a client (`TCP_NOTSENT_LOWAT`).
/// Without a limit Linux grows a slow reader's send buffer to megabytes of
/// stale frames and reports room only once half of it is gone, so a screen
/// reading slowly but steadily looked stuck for longer than the send
/// timeout and was dropped, and a lagging one read megabytes before its
/// snapshot. With it, what waits stays in the queue here, where
/// `MAX_QUEUED` lets go of a lagging screen, and progress shows in steps of
/// a few kilobytes.
pub const KERNEL_UNSENT: u32 = 128 * 1024;

impl Wire {
    pub fn new(sock: TcpStream) -> Arc<Wire> {
        if let Err(e) = socket2::SockRef::from(&sock).set_tcp_notsent_lowat(KERNEL_UNSENT) {
            tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT not set");
        }
        Arc::new(Wire {
            sock,
            out: Mutex::new(Out::default()),
            kick: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Out> {
        self.out.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `parts` after whatever is waiting: whole frames as pairs of
    /// header and payload (a buffer of complete frames goes as an empty
    /// header and the buffer).
    pub fn push(&self, parts: &[Bytes]) -> Pushed {
        let mut out = self.lock();
        self.push_locked(&mut out, parts)
    }

    fn push_locked(&self, out: &mut Out, parts: &[Bytes]) -> Pushed {
        if out.broken {
            return Pushed::Sent;
        }
        let mut written = 0;
        if out.queue.is_empty() {
            match self.write(parts.iter()) {
                Ok(n) => {
                    written = n;
                    out.sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    out.broken = true;
                    return Pushed::Sent;
                }
            }
        }
        for (i, p) in parts.iter().enumerate() {
            if written >= p.len() {
                written -= p.len();
                continue;
            }
            let rest = p.slice(written..);
            written = 0;
            out.queued += rest.len();
            out.queue.push_back((rest, i % 2 == 1));
        }
        if out.queue.is_empty() {
            Pushed::Sent
        } else {
            Pushed::Queued
        }
    }

    /// One non-blocking write of `parts`: `send` for a single buffer (the
    /// fan-out's case: no allocation), `writev` for several.
    fn write<'a>(&self, parts: impl Iterator<Item = &'a Bytes>) -> io::Result<usize> {
        let mut parts = parts.filter(|p| !p.is_empty());
        match (parts.next(), parts.next()) {
            (None, _) => Ok(0),
            (Some(one), None) => self.sock.try_write(one),
            (Some(first), Some(second)) => {
                let slices: Vec<IoSlice<'_>> = [first, second]
                    .into_iter()
                    .chain(parts)
                    .map(|p| IoSlice::new(p))
                    .collect();
                self.sock.try_write_vectored(&slices)
            }
        }
    }

    /// Writes what the socket takes now; true when nothing is left.
    fn drain(&self, out: &mut Out) -> io::Result<bool> {
        while !out.queue.is_empty() {
            let mut n = match self.write(out.queue.iter().take(64).map(|(b, _)| b)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    out.broken = true;
                    return Err(e);
                }
            };
            out.queued -= n;
            out.sent += n as u64;
            while n > 0 {
                let Some((front, _)) = out.queue.front_mut() else {
                    break;
                };
                if n >= front.len() {
                    n -= front.len();
                    out.queue.pop_front();
                } else {
                    let _ = front.split_to(n);
                    n = 0;
                }
            }
        }
        Ok(true)
    }

    /// Ready once the queue is empty (or the socket failed).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut out = self.lock();
                if out.broken {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                if self.drain(&mut out)? {
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(self.sock.poll_write_ready(cx))?;
        }
    }

    pub async fn flush(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Bytes the socket has taken so far.
    pub fn sent(&self) -> u64 {
        self.lock().sent
    }

    /// Bytes waiting for the socket.
    pub fn queued(&self) -> usize {
        self.lock().queued
    }

    /// From now on the fan-out entry with `ticket` sends to this client.
    pub fn join(&self, ticket: u64) {
        let mut out = self.lock();
        out.ticket = ticket;
        out.lagged = false;
    }

    /// The fan-out stops sending to this client (its entry goes at the next event).
    pub fn leave(&self) {
        self.lock().ticket = 0;
    }

    /// The fan-out lets go of this client, which must start again from a
    /// snapshot; false when `ticket` was no longer its entry.
    pub fn let_go(&self, ticket: u64) -> bool {
        let mut out = self.lock();
        if out.ticket != ticket {
            return false;
        }
        out.ticket = 0;
        out.lagged = true;
        drop(out);
        self.kick.notify_one();
        true
    }

    /// Whether the fan-out let go of this client because it was too far behind.
    pub fn lagged(&self) -> bool {
        self.lock().lagged
    }

    /// The fan-out's push: only while `ticket` is still this client's; when
    /// too much is waiting, it drops what was not started, marks the client
    /// lagged and lets go of it. Kicks the connection's task whenever there
    /// is something for it to do.
    pub fn fan(&self, ticket: u64, parts: &[Bytes]) -> Fanned {
        let mut out = self.lock();
        if out.ticket != ticket {
            return Fanned::Gone;
        }
        let fanned = if out.queued >= MAX_QUEUED {
            // Keep the first frame, which may be partly on the wire already
            // (a cut frame would break the connection); the rest is replaced
            // by a snapshot.
            let keep = out
                .queue
                .iter()
                .position(|(_, end)| *end)
                .map_or(0, |i| i + 1);
            out.queue.truncate(keep);
            out.queued = out.queue.iter().map(|(b, _)| b.len()).sum();
            out.ticket = 0;
            out.lagged = true;
            Fanned::Lagged
        } else {
            match self.push_locked(&mut out, parts) {
                Pushed::Sent => return Fanned::Sent,
                Pushed::Queued => Fanned::Queued,
            }
        };
        drop(out);
        // Its task flushes the queue, or fetches a snapshot.
        self.kick.notify_one();
        fanned
    }
}

/// What became of a fan-out push.
#[derive(Debug, PartialEq, Eq)]
pub enum Fanned {
    Sent,
    /// Some of it waits; the connection's task was kicked to flush it.
    Queued,
    /// Let go of; the connection's task was kicked to resync it.
    Lagged,
    /// The client left the fan-out (or never joined under this ticket).
    Gone,
}

/// The socket as tungstenite sees it: reads come from the socket (after any
/// bytes read ahead during the HTTP upgrade), writes join the wire's queue.
pub struct WireIo {
    pub wire: Arc<Wire>,
}

impl AsyncRead for WireIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.wire.sock.poll_read_ready(cx))?;
            match self.wire.sock.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for WireIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // A client that never reads cannot grow the queue without bound
        // (pongs to a flood of pings, say): past the limit, wait for it.
        if self.wire.queued() >= MAX_QUEUED {
            ready!(self.wire.poll_flush(cx))?;
        }
        self.wire.push(&[Bytes::new(), Bytes::copy_from_slice(buf)]);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.wire.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes when the last handle to the wire is dropped.
        self.wire.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpSocket};

    /// A wire on a socket with small kernel buffers, and its peer.
    async fn pair() -> (Arc<Wire>, TcpStream) {
        let l = TcpSocket::new_v4().unwrap();
        l.set_recv_buffer_size(4096).unwrap();
        l.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let l: TcpListener = l.listen(8).unwrap();
        let s = TcpSocket::new_v4().unwrap();
        s.set_send_buffer_size(4096).unwrap();
        let (ours, theirs) = tokio::join!(s.connect(l.local_addr().unwrap()), l.accept());
        (Wire::new(ours.unwrap()), theirs.unwrap().0)
    }

    fn frame(i: usize) -> Utf8Bytes {
        Utf8Bytes::from(format!(
            r#"{{"type":"event","seq":{i},"pad":"{}"}}"#,
            "x".repeat(700)
        ))
    }

    /// Splits a byte stream of unmasked text frames into their payloads;
    /// panics on a cut or malformed frame.
    fn frames(mut bytes: &[u8]) -> Vec<String> {
        let mut out = vec![];
        while !bytes.is_empty() {
            let mut c = std::io::Cursor::new(bytes);
            let (h, len) = FrameHeader::parse(&mut c)
                .unwrap()
                .expect("a whole frame header");
            assert_eq!(h.opcode, OpCode::Data(Data::Text));
            assert!(h.is_final && h.mask.is_none());
            let start = c.position() as usize;
            let end = start + len as usize;
            assert!(end <= bytes.len(), "a frame was cut");
            out.push(String::from_utf8(bytes[start..end].to_vec()).unwrap());
            bytes = &bytes[end..];
        }
        out
    }

    #[tokio::test]
    async fn what_the_socket_cannot_take_waits_in_order_and_arrives_whole() {
        let (wire, mut peer) = pair().await;
        // Far more than the kernel buffers hold while the peer reads nothing.
        let mut queued = false;
        for i in 0..400 {
            queued |= wire.push(&encode(&frame(i))) == Pushed::Queued;
        }
        assert!(queued, "the socket filled up");
        assert!(wire.queued() > 0);
        let reader = tokio::spawn(async move {
            let mut got = vec![];
            peer.read_to_end(&mut got).await.unwrap();
            got
        });
        wire.flush().await.unwrap();
        assert_eq!(wire.queued(), 0);
        drop(wire);
        let got = frames(&reader.await.unwrap());
        let want: Vec<String> = (0..400).map(|i| frame(i).to_string()).collect();
        assert_eq!(got, want, "every frame, whole, in order");
    }

    #[tokio::test]
    async fn the_fan_out_lets_go_of_a_client_too_far_behind_without_cutting_a_frame() {
        let (wire, mut peer) = pair().await;
        wire.join(7);
        let mut sent = 0;
        let lagged = loop {
            match wire.fan(7, &encode(&frame(sent))) {
                Fanned::Sent | Fanned::Queued => sent += 1,
                other => break other,
            }
            assert!(sent < 10_000, "the fan-out never let go");
        };
        assert_eq!(lagged, Fanned::Lagged);
        assert!(wire.lagged());
        // Let go of: later pushes under the old ticket are refused.
        assert_eq!(wire.fan(7, &encode(&frame(0))), Fanned::Gone);
        assert!(wire.queued() < 1024, "the backlog was dropped");
        // The peer gets a prefix of what was pushed, in whole frames.
        let reader = tokio::spawn(async move {
            let mut got = vec![];
            peer.read_to_end(&mut got).await.unwrap();
            got
        });
        wire.flush().await.unwrap();
        // Joined again (after its snapshot), it is sent to again.
        wire.join(8);
        assert!(!wire.lagged());
        assert_ne!(wire.fan(8, &encode(&frame(9999))), Fanned::Gone);
        wire.flush().await.unwrap();
        drop(wire);
        let got = frames(&reader.await.unwrap());
        assert!(got.len() < sent + 1 && got.len() > 1);
        for (i, f) in got[..got.len() - 1].iter().enumerate() {
            assert_eq!(*f, frame(i).to_string());
        }
        assert_eq!(got[got.len() - 1], frame(9999).to_string());
    }
}
