//! The speed of the box's network interface a test ran on, so a result
//! can say what share of it the test reached: the local address of the
//! test's connections → the interface that holds it →
//! `/sys/class/net/<interface>/speed` (Mbit/s). Kept in the log entry's
//! `webperf3` key as `link_mbps` when the test is recorded, so it
//! survives restarts and later changes of the hardware.
//!
//! The choice is [`speed_for`], with no I/O (tested on made-up
//! interfaces); [`interfaces`] reads what it needs, once per recorded
//! test, on the thread that writes the log (never in a data path). No
//! speed is given for loopback, for virtual interfaces (no `device` in
//! sysfs: bridges, veth, tunnels), or where the kernel has none (Wi-Fi,
//! a cable unplugged: `-1` or an error).

use std::net::IpAddr;

use crate::report::json::Json;

/// One network interface of the box as [`speed_for`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name (`eth0`).
    pub name: String,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
    /// `/sys/class/net/<name>/speed`, as read (Mbit/s; `None` unreadable).
    pub speed_mbps: Option<i64>,
    /// It has a device behind it (`/sys/class/net/<name>/device`).
    pub physical: bool,
}

/// The link speed in Mbit/s of the interface holding `local`, if it is a
/// physical one with a known speed.
pub fn speed_for(local: IpAddr, interfaces: &[Interface]) -> Option<u32> {
    let local = local.to_canonical();
    if local.is_loopback() || local.is_unspecified() {
        return None;
    }
    let iface = interfaces
        .iter()
        .find(|i| i.addrs.iter().any(|a| a.to_canonical() == local))?;
    if !iface.physical {
        return None;
    }
    iface
        .speed_mbps
        .filter(|&s| s > 0)
        .and_then(|s| u32::try_from(s).ok())
}

/// The box's interfaces with their addresses, speeds and whether a
/// device is behind them; empty if the system does not say.
pub fn interfaces() -> Vec<Interface> {
    let mut out: Vec<Interface> = Vec::new();
    for (name, addr) in interface_addresses() {
        match out.iter_mut().find(|i| i.name == name) {
            Some(i) => i.addrs.push(addr),
            None => {
                let dir = std::path::Path::new("/sys/class/net").join(&name);
                let speed = std::fs::read_to_string(dir.join("speed"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                out.push(Interface {
                    physical: dir.join("device").exists(),
                    speed_mbps: speed,
                    addrs: vec![addr],
                    name,
                });
            }
        }
    }
    out
}

/// Every address of every interface, with the interface's name
/// (`getifaddrs`); empty if the call fails.
fn interface_addresses() -> Vec<(String, IpAddr)> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut at = head;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs made, not yet freed.
        let node = unsafe { &*at };
        at = node.ifa_next;
        if node.ifa_addr.is_null() || node.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a non-null ifa_addr points at a sockaddr whose family
        // says which (larger) sockaddr it is; the name is a C string.
        let (family, name) = unsafe {
            (
                i32::from((*node.ifa_addr).sa_family),
                std::ffi::CStr::from_ptr(node.ifa_name),
            )
        };
        let addr = match family {
            libc::AF_INET => {
                // SAFETY: the family is AF_INET: a sockaddr_in.
                let sin = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in>() };
                IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
            }
            libc::AF_INET6 => {
                // SAFETY: the family is AF_INET6: a sockaddr_in6.
                let sin6 = unsafe { &*node.ifa_addr.cast::<libc::sockaddr_in6>() };
                IpAddr::from(sin6.sin6_addr.s6_addr)
            }
            _ => continue,
        };
        out.push((name.to_string_lossy().into_owned(), addr));
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The local address `entry` says its first connection used
/// (`start.connected[0].local_host`), as our server and stock's client
/// write it.
fn local_of(entry: &Json) -> Option<IpAddr> {
    let Some(Json::Arr(connected)) = entry.get("start").and_then(|s| s.get("connected")) else {
        return None;
    };
    match connected.first()?.get("local_host")? {
        Json::Str(host) => host.parse().ok(),
        _ => None,
    }
}

/// Adds `link_mbps` to `entry`'s `webperf3` key (made if missing) when
/// the interface its test ran on has a known speed; else leaves it be.
pub fn note(entry: &mut Json) {
    let Some(speed) = local_of(entry).and_then(|local| speed_for(local, &interfaces())) else {
        return;
    };
    match entry.get_mut("webperf3") {
        Some(ours @ Json::Obj(_)) => ours.set("link_mbps", speed),
        _ => entry.set("webperf3", Json::obj().with("link_mbps", speed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addr: &str, speed: Option<i64>, physical: bool) -> Interface {
        Interface {
            name: name.into(),
            addrs: vec![addr.parse().unwrap()],
            speed_mbps: speed,
            physical,
        }
    }

    #[test]
    fn the_interface_holding_the_address_gives_its_speed() {
        let box_ = [
            iface("lo", "127.0.0.1", None, false),
            iface("eth0", "192.168.1.2", Some(1000), true),
            iface("eth1", "10.0.0.1", Some(2500), true),
            iface("wlan0", "192.168.2.2", None, true),
            iface("eth2", "10.1.0.1", Some(-1), true),
            iface("br0", "172.16.0.1", Some(10000), false),
        ];
        let at = |a: &str| speed_for(a.parse().unwrap(), &box_);
        assert_eq!(at("192.168.1.2"), Some(1000));
        assert_eq!(at("::ffff:10.0.0.1"), Some(2500));
        assert_eq!(at("127.0.0.1"), None, "loopback");
        assert_eq!(at("192.168.2.2"), None, "Wi-Fi has no speed");
        assert_eq!(at("10.1.0.1"), None, "unplugged: -1");
        assert_eq!(at("172.16.0.1"), None, "virtual");
        assert_eq!(at("10.9.9.9"), None, "no interface");
    }

    #[test]
    fn the_box_lists_its_loopback_address() {
        let all = interfaces();
        assert!(all
            .iter()
            .any(|i| i.addrs.contains(&"127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn an_entry_on_loopback_gets_no_speed() {
        let connected = Json::Arr(vec![Json::obj().with("local_host", "127.0.0.1")]);
        let mut entry = Json::obj().with("start", Json::obj().with("connected", connected));
        let before = entry.clone();
        note(&mut entry);
        assert_eq!(entry, before);
        assert_eq!(local_of(&entry), Some("127.0.0.1".parse().unwrap()));
    }
}
