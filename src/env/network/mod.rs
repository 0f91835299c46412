//! The private network of a several-machine lab (section 6 of the contract).
//!
//! Each machine gets a network namespace of its own, made here before its container: an
//! `eth0` with a stable address (the first machine 10.89.0.2, the next .3, ...) besides `lo`.
//! The other ends of those veth pairs sit on a bridge in a hub namespace that has no other
//! link: the machines reach each other, and nothing else. Nothing is named on the machine
//! (no /run/netns entry, no interface in the machine's namespace): the namespaces live as long
//! as labrun's descriptors and the containers' processes, so the network disappears with the
//! run however it ends. `/etc/hosts` gives every machine the others' names.

pub mod netns;
pub mod rtnl;

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use rtnl::Rtnl;

/// The lab network's prefix length, and the first machine's address.
pub const PREFIX: u8 = 24;
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 2);
const BRIDGE: &str = "lab0";
/// Addresses .2 to .254 of the /24.
pub const MAX_MACHINES: usize = 253;

/// What one machine needs to join the lab's network.
#[derive(Debug, Clone)]
pub struct NetAttach {
    /// The machine's network namespace, with `eth0` already in it (down, no address).
    pub netns: Arc<OwnedFd>,
    pub address: Ipv4Addr,
    /// The `/etc/hosts` every machine of the lab gets.
    pub hosts: String,
}

/// A lab network, alive while this value and the machines' processes are.
pub struct LabNetwork {
    /// Held so the bridge lives until the run ends.
    _hub: OwnedFd,
    machines: Vec<(String, Ipv4Addr, Arc<OwnedFd>)>,
}

/// The address of the `index`-th machine.
pub fn address_of(index: usize) -> Ipv4Addr {
    let [a, b, c, d] = FIRST.octets();
    Ipv4Addr::new(a, b, c, d + index as u8)
}

impl LabNetwork {
    /// Builds the network for machines named `names`, in order.
    pub fn create(names: &[String]) -> io::Result<LabNetwork> {
        if names.len() > MAX_MACHINES {
            return Err(io::Error::other(format!(
                "a lab's network holds at most {MAX_MACHINES} machines, not {}",
                names.len()
            )));
        }
        let mut machines = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let (ns, ()) = netns::with_new(|| Ok(()))?;
            machines.push((name.clone(), address_of(i), Arc::new(ns)));
        }
        let peers: Vec<OwnedFd> = machines
            .iter()
            .map(|(_, _, ns)| ns.try_clone())
            .collect::<io::Result<_>>()?;
        let (hub, ()) = netns::with_new(move || wire_hub(&peers))?;
        Ok(LabNetwork {
            _hub: hub,
            machines,
        })
    }

    /// `/etc/hosts` for every machine: loopback, then each machine by name.
    pub fn hosts(&self) -> String {
        let mut text =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for (name, address, _) in &self.machines {
            text.push_str(&format!("{address}\t{name}\n"));
        }
        text
    }

    /// The machines' names and addresses, in order.
    pub fn addresses(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.machines.iter().map(|(n, a, _)| (n.as_str(), *a))
    }

    /// What the `index`-th machine needs to join.
    pub fn attach(&self, index: usize) -> Option<NetAttach> {
        let (_, address, netns) = self.machines.get(index)?;
        Some(NetAttach {
            netns: netns.clone(),
            address: *address,
            hosts: self.hosts(),
        })
    }
}

/// In the hub namespace: the bridge, and one veth pair a machine whose peer is that
/// machine's `eth0`.
fn wire_hub(peers: &[OwnedFd]) -> io::Result<()> {
    let step = |what: String| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let mut rtnl = Rtnl::open().map_err(step("opening a netlink socket".into()))?;
    rtnl.add_bridge(BRIDGE)
        .map_err(step(format!("creating the bridge {BRIDGE}")))?;
    let name = std::ffi::CString::new(BRIDGE).expect("no NUL byte");
    // SAFETY: a valid C string.
    let master = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if master == 0 {
        return Err(step(format!("finding the bridge {BRIDGE}"))(
            io::Error::last_os_error(),
        ));
    }
    for (i, peer) in peers.iter().enumerate() {
        rtnl.add_veth(&format!("veth{i}"), master, "eth0", peer.as_raw_fd())
            .map_err(step(format!("creating the veth pair of machine {}", i + 1)))?;
    }
    Ok(())
}
