//! The host and port of a server URL, checked as the drivers will read
//! them, so that a malformed one is a usage error before anything connects.

use std::net::Ipv6Addr;

/// Characters no host may hold (the URL standard's forbidden host code
/// points; `/`, `?`, `#` and `@` cannot reach here).
const FORBIDDEN: [char; 12] = [
    ' ', '\t', '\n', '\r', '\0', '<', '>', '[', '\\', ']', '^', '|',
];

const BAD_PORT: &str =
    "the port must be a number from 1 to 65535 (an IPv6 address goes in brackets: [::1]:5432)";

/// Checks the authority at the start of `rest`, the part of a URL after
/// `scheme://`: `[user[:password]@]host[:port]`, where `host` is a name or
/// an IPv6 address in brackets and `port` a number from 1 to 65535. An empty
/// host is allowed (the driver's default). With `several`, the authority is
/// a comma-separated list of `host[:port]` (a Redis Cluster's seed nodes).
///
/// # Errors
///
/// Why the host or port cannot be read.
pub(super) fn check(rest: &str, several: bool) -> Result<(), &'static str> {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if several {
        hosts.split(',').map(str::trim).try_for_each(host_port)
    } else {
        host_port(hosts)
    }
}

fn host_port(host_port: &str) -> Result<(), &'static str> {
    let port = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6
                .split_once(']')
                .ok_or("an IPv6 address in brackets lacks its closing ]")?;
            addr.parse::<Ipv6Addr>()
                .map_err(|_| "the brackets hold no IPv6 address")?;
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or("expected :PORT after ]")?),
            }
        }
        None => {
            let (host, port) = match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            };
            if host.contains(FORBIDDEN) {
                return Err("the host holds a character no host name has");
            }
            port
        }
    };
    match port {
        None | Some("") => Ok(()),
        Some(port)
            if port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok_and(|p| p != 0) =>
        {
            Ok(())
        }
        Some(_) => Err(BAD_PORT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports_the_drivers_accept_pass() {
        for rest in [
            "",
            "/db",
            "u:p@h/db",
            "u@127.0.0.1:5432/db?sslmode=disable",
            "[::1]:5432/db",
            "[::1]",
            "h:/db",
            "%2Fvar%2Frun%2Fpostgresql/db",
            "u:p:q@h:65535",
            "u@[bad@h:1/x",
        ] {
            assert_eq!(check(rest, false), Ok(()), "{rest:?}");
        }
        assert_eq!(check("a:7000, b:7001,c/", true), Ok(()));
    }

    #[test]
    fn malformed_hosts_and_ports_are_refused() {
        for rest in [
            "[bad",
            "[not-v6]:1/db",
            "[::1]5432",
            "root@127.0.0.1:99999/x",
            "h:notaport",
            "h:0",
            "h:+80",
            "::1:5432/db",
            "h^x/db",
            "a b:1",
        ] {
            assert!(check(rest, false).is_err(), "{rest:?}");
        }
        assert!(check("a:7000,b:x", true).is_err());
    }
}
