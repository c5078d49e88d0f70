//! The client's address: the connection's peer, or, when the peer is a configured trusted
//! proxy, the nearest untrusted address in `X-Forwarded-For`.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(ip),
                // A malformed chain cannot be trusted at all.
                Err(_) => return peer,
            }
        }
    }
    // Walk from the nearest hop back; the first address we do not trust is the client.
    for ip in hops.iter().rev() {
        if !is_trusted(ip) {
            return *ip;
        }
    }
    hops.first().copied().unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", xff.parse().unwrap());
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(ip("198.51.100.9"), &headers("1.2.3.4"), &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_ip(ip("198.51.100.9"), &headers("1.2.3.4"), &[]),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn trusted_proxies_are_skipped() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // client → 10.0.0.2 (proxy) → 10.0.0.1 (proxy, the peer)
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers("203.0.113.5, 10.0.0.2"), &trusted),
            ip("203.0.113.5")
        );
        // a client-supplied spoofed first entry is ignored: the nearest untrusted hop wins
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers("6.6.6.6, 203.0.113.5"), &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers("2001:db8::1"), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers("not an ip"), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }
}
