//! Just enough rtnetlink to wire a lab's network: create a bridge and veth pairs, in the
//! namespace the socket was opened in. Requests are built byte by byte as the kernel's uapi
//! headers lay them out (netlink(7), rtnetlink(7)); each is acknowledged before the next.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 1 << 15;

/// A route netlink socket, bound to the network namespace it was opened in.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

/// A message body under construction: a fixed header, then attributes, 4-byte aligned.
#[derive(Default)]
pub struct Body {
    buf: Vec<u8>,
}

impl Body {
    /// `struct ifinfomsg` for `index` (0: a new link), with `flags` set in `change`.
    pub fn link(index: i32, up: bool) -> Body {
        let mut body = Body::default();
        body.ifinfo(index, up);
        body
    }

    fn ifinfo(&mut self, index: i32, up: bool) {
        let flags = if up { libc::IFF_UP as u32 } else { 0 };
        self.buf.push(libc::AF_UNSPEC as u8);
        self.buf.push(0);
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
    }

    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Body {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.align();
        self
    }

    pub fn name(&mut self, name: &str) -> &mut Body {
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        self.attr(IFLA_IFNAME, &value)
    }

    /// A nested attribute whose contents `fill` appends.
    pub fn nest(&mut self, kind: u16, fill: impl FnOnce(&mut Body)) -> &mut Body {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        fill(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.align();
        self
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

impl Rtnl {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Rtnl> {
        // SAFETY: plain socket and bind calls; the descriptor is owned at once.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            let ret = libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            if ret < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Rtnl { fd, seq: 0 })
        }
    }

    /// Creates a bridge named `name`, up.
    pub fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut body = Body::link(0, true);
        body.name(name).nest(IFLA_LINKINFO, |info| {
            info.attr(IFLA_INFO_KIND, b"bridge");
        });
        self.create(body)
    }

    /// Creates a veth pair: `name` here, up and attached to the bridge `master` (an index),
    /// and its peer `peer_name` in the network namespace `peer_ns`, down.
    pub fn add_veth(
        &mut self,
        name: &str,
        master: u32,
        peer_name: &str,
        peer_ns: RawFd,
    ) -> io::Result<()> {
        let mut body = Body::link(0, true);
        body.name(name)
            .attr(IFLA_MASTER, &master.to_ne_bytes())
            .nest(IFLA_LINKINFO, |info| {
                info.attr(IFLA_INFO_KIND, b"veth")
                    .nest(IFLA_INFO_DATA, |data| {
                        data.nest(VETH_INFO_PEER, |peer| {
                            peer.ifinfo(0, false);
                            peer.name(peer_name)
                                .attr(IFLA_NET_NS_FD, &peer_ns.to_ne_bytes());
                        });
                    });
            });
        self.create(body)
    }

    fn create(&mut self, body: Body) -> io::Result<()> {
        let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
        self.request(libc::RTM_NEWLINK, flags as u16, &body.buf)
    }

    /// Sends one request and waits for its acknowledgement.
    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.seq += 1;
        let len = 16 + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: send and recv on an owned socket with buffers of the given lengths.
        unsafe {
            if libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut reply = [0u8; 8192];
            loop {
                let n = libc::recv(
                    self.fd.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                );
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                if let Some(result) = self.ack_in(&reply[..n as usize]) {
                    return result;
                }
            }
        }
    }

    /// The acknowledgement of the last request in `reply`, if it holds one.
    fn ack_in(&self, mut reply: &[u8]) -> Option<io::Result<()>> {
        while reply.len() >= 16 {
            let len = u32::from_ne_bytes(reply[0..4].try_into().ok()?) as usize;
            let kind = u16::from_ne_bytes(reply[4..6].try_into().ok()?);
            let seq = u32::from_ne_bytes(reply[8..12].try_into().ok()?);
            if len < 16 || len > reply.len() {
                return Some(Err(io::Error::other("a malformed netlink reply")));
            }
            if kind == libc::NLMSG_ERROR as u16 && seq == self.seq && len >= 20 {
                let code = i32::from_ne_bytes(reply[16..20].try_into().ok()?);
                return Some(if code == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                });
            }
            reply = &reply[len.next_multiple_of(4).min(reply.len())..];
        }
        None
    }
}
