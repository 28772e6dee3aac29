//! IP networks for [`crate::ir::FieldTest::Cidr`]: reading `10.0.0.0/8` and `2001:db8::/32`, and
//! deciding whether a field's text is an address inside one.
//!
//! Both executors decide a CIDR test with [`text_is_in_network`] (the SQL executor through a Rust SQL
//! function), so what counts as an address is exactly Rust's `std::net::IpAddr` parsing: dotted IPv4
//! without leading zeros, IPv6 in any RFC 4291 spelling (`::ffff:10.0.0.1` included) but without a
//! zone (`%eth0`) or surrounding spaces. An address only belongs to a network of its own family: the
//! IPv4-mapped `::ffff:10.0.0.1` is an IPv6 address and is not in `10.0.0.0/8` (as in Python's
//! `ipaddress`, which pySigma uses).
//!
//! A network is written `address/prefix-length` and must not have host bits set (`10.1.0.0/8` is
//! refused and the error names `10.0.0.0/8`, as Python's strict `ip_network` does): a network
//! written with host bits is most often a typo for one address or for another network, and silently
//! widening it would hide that. Its canonical text ([`IpNetwork`]'s `Display`) is the address in
//! Rust's canonical form (RFC 5952 for IPv6, lowercase, `::` compression), a slash and the length.
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: an address whose bits past `prefix_length` are zero, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    address: IpAddr,
    prefix_length: u8,
}

/// Why a text is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// No `/length` after the address.
    #[error("no prefix length (write a network as address/length, e.g. 10.0.0.0/8)")]
    MissingPrefixLength,
    /// The part before the slash is not an IPv4 or IPv6 address.
    #[error("{address:?} is not an IP address")]
    InvalidAddress { address: String },
    /// The part after the slash is not a decimal number.
    #[error("the prefix length {length:?} is not a number")]
    InvalidPrefixLength { length: String },
    /// The prefix length is longer than the address.
    #[error("the prefix length {length} is longer than the {bits} bits of an {family} address")]
    PrefixLengthTooLong {
        length: u32,
        bits: u8,
        family: &'static str,
    },
    /// The address has bits set past the prefix.
    #[error("host bits are set past the prefix (the network is {network})")]
    HostBitsSet { network: IpNetwork },
}

impl IpNetwork {
    /// The network's first address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The number of leading bits that identify the network.
    pub fn prefix_length(&self) -> u8 {
        self.prefix_length
    }

    /// Whether `address` is inside the network (never for an address of the other family).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(candidate)) => {
                let mask = mask_u32(self.prefix_length);
                u32::from(candidate) & mask == u32::from(network)
            }
            (IpAddr::V6(network), IpAddr::V6(candidate)) => {
                let mask = mask_u128(self.prefix_length);
                u128::from(candidate) & mask == u128::from(network)
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix_length: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_length))
        .unwrap_or(0)
}

fn mask_u128(prefix_length: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_length))
        .unwrap_or(0)
}

impl FromStr for IpNetwork {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<IpNetwork, NetworkError> {
        let Some((address_text, length_text)) = text.split_once('/') else {
            return Err(NetworkError::MissingPrefixLength);
        };
        let address: IpAddr = address_text
            .parse()
            .map_err(|_| NetworkError::InvalidAddress {
                address: address_text.to_owned(),
            })?;
        let invalid_length = || NetworkError::InvalidPrefixLength {
            length: length_text.to_owned(),
        };
        if length_text.is_empty()
            || length_text.len() > 3
            || !length_text.bytes().all(|byte| byte.is_ascii_digit())
        {
            return Err(invalid_length());
        }
        let length: u32 = length_text.parse().map_err(|_| invalid_length())?;
        let (bits, family) = match address {
            IpAddr::V4(_) => (32, "IPv4"),
            IpAddr::V6(_) => (128, "IPv6"),
        };
        if length > u32::from(bits) {
            return Err(NetworkError::PrefixLengthTooLong {
                length,
                bits,
                family,
            });
        }
        let prefix_length = u8::try_from(length).map_err(|_| invalid_length())?;
        let network_address = match address {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & mask_u32(prefix_length)).into()),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & mask_u128(prefix_length)).into()),
        };
        let network = IpNetwork {
            address: network_address,
            prefix_length,
        };
        if network_address != address {
            return Err(NetworkError::HostBitsSet { network });
        }
        Ok(network)
    }
}

impl std::fmt::Display for IpNetwork {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.address, self.prefix_length)
    }
}

/// Whether `text` (a scalar's rendered text) is an IP address inside `network`: the CIDR test of
/// both executors.
pub fn text_is_in_network(text: &str, network: &IpNetwork) -> bool {
    text.parse::<IpAddr>()
        .is_ok_and(|address| network.contains(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> IpNetwork {
        text.parse()
            .unwrap_or_else(|error| panic!("{text:?}: {error}"))
    }

    #[test]
    fn networks_read_and_print_canonically() {
        assert_eq!(network("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(network("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(network("10.1.2.3/32").to_string(), "10.1.2.3/32");
        assert_eq!(network("2001:DB8::/32").to_string(), "2001:db8::/32");
        assert_eq!(
            network("2001:0db8:0000:0000::/64").to_string(),
            "2001:db8::/64"
        );
        assert_eq!(network("::/0").to_string(), "::/0");
        assert_eq!(network("::1/128").to_string(), "::1/128");
    }

    #[test]
    fn bad_networks_say_why() {
        let error = |text: &str| text.parse::<IpNetwork>().expect_err(text).to_string();
        assert_eq!(
            error("10.0.0.0/33"),
            "the prefix length 33 is longer than the 32 bits of an IPv4 address"
        );
        assert_eq!(
            error("::/129"),
            "the prefix length 129 is longer than the 128 bits of an IPv6 address"
        );
        assert_eq!(error("300.1.1.1/8"), "\"300.1.1.1\" is not an IP address");
        assert_eq!(
            error("10.0.0.0"),
            "no prefix length (write a network as address/length, e.g. 10.0.0.0/8)"
        );
        assert_eq!(error("10.0.0.0/"), "the prefix length \"\" is not a number");
        assert_eq!(
            error("10.0.0.0/+8"),
            "the prefix length \"+8\" is not a number"
        );
        assert_eq!(
            error("10.0.0.0/8/8"),
            "the prefix length \"8/8\" is not a number"
        );
        assert_eq!(
            error("10.1.0.0/8"),
            "host bits are set past the prefix (the network is 10.0.0.0/8)"
        );
        assert_eq!(
            error("2001:db8::1/32"),
            "host bits are set past the prefix (the network is 2001:db8::/32)"
        );
        assert_eq!(error(" 10.0.0.0/8"), "\" 10.0.0.0\" is not an IP address");
    }

    #[test]
    fn addresses_are_inside_networks_of_their_family_only() {
        let private = network("10.0.0.0/8");
        assert!(text_is_in_network("10.0.0.1", &private));
        assert!(text_is_in_network("10.255.255.255", &private));
        assert!(!text_is_in_network("11.0.0.0", &private));
        assert!(!text_is_in_network("9.255.255.255", &private));
        assert!(!text_is_in_network("::ffff:10.0.0.1", &private));
        assert!(!text_is_in_network(" 10.0.0.1", &private));
        assert!(!text_is_in_network("010.0.0.1", &private));
        assert!(!text_is_in_network("10.0.0.0/8", &private));
        assert!(!text_is_in_network("host", &private));
        let every_v4 = network("0.0.0.0/0");
        assert!(text_is_in_network("255.255.255.255", &every_v4));
        assert!(!text_is_in_network("::", &every_v4));
        let one = network("192.168.1.5/32");
        assert!(text_is_in_network("192.168.1.5", &one));
        assert!(!text_is_in_network("192.168.1.4", &one));
        let documentation = network("2001:db8::/32");
        assert!(text_is_in_network("2001:DB8::1", &documentation));
        assert!(text_is_in_network(
            "2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff",
            &documentation
        ));
        assert!(!text_is_in_network("2001:db9::", &documentation));
        assert!(!text_is_in_network("fe80::1%eth0", &network("fe80::/10")));
        assert!(text_is_in_network("fe80::1", &network("fe80::/10")));
        assert!(text_is_in_network("::", &network("::/0")));
    }
}
