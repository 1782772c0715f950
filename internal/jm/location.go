package jm

import (
	"crypto/sha3"
	"errors"
	"strconv"
	"strings"
)

const (
	onionSuffix = ".onion"
	// onionV3Len is the number of base32 characters of a v3 onion host.
	onionV3Len = 56
	// onionV2Len is the number of base32 characters of a (dead) v2 onion host.
	onionV2Len = 16
	// onionV3Version is the version byte at the end of a v3 address.
	onionV3Version = 3
	// onionChecksumPrefix is hashed before the key and version (rend-spec-v3).
	onionChecksumPrefix = ".onion checksum"

	localIPv4 = "127.0.0.1"
	localName = "localhost"
)

// Errors returned by ParseLocation. They are preallocated so that rejecting
// garbage costs no allocation either.
var (
	errLocEmpty     = errors.New("empty location")
	errLocNoPort    = errors.New("missing port")
	errLocBadPort   = errors.New("invalid port")
	errLocPortRange = errors.New("port out of range")
	errLocNoHost    = errors.New("missing host")
	errLocV2        = errors.New("v2 onion addresses are not supported")
	errLocNotV3     = errors.New("not a v3 onion address")
	errLocNotLocal  = errors.New("not a v3 onion address or local host")
)

// Location is a parsed location-string (docs/protocol.md §3.7).
type Location struct {
	Host string // lower-cased onion host ("xxx.onion"), or "127.0.0.1"/"localhost" in local mode; "" when not serving
	Port int    // 1..65535; 0 when not serving
}

// Serving reports whether the location names a reachable host, i.e. it is
// not NotServing.
func (l Location) Serving() bool { return l.Host != "" }

// String returns the location-string: "host:port", or NotServing when the
// location is not serving.
func (l Location) String() string {
	if !l.Serving() {
		return NotServing
	}
	return l.Host + ":" + strconv.Itoa(l.Port)
}

// ParseLocation validates a client's location-string: NotServing, or a v3
// onion "host:port" (56 base32 chars + ".onion", case-insensitive, version
// byte 3 and SHA3-256 checksum verified, stored lower-case) with a decimal
// port 1..65535 (digits only: no sign, no leading zeros). With allowLocal
// (regtest/testing mode) it also accepts "127.0.0.1:port" and
// "localhost:port" (the latter case-insensitively, stored lower-case).
// Anything else is an error with a short lower-case message saying what is
// wrong; the returned Location is then the zero value.
//
// ParseLocation does not allocate unless the host contains upper-case
// letters.
func ParseLocation(s string, allowLocal bool) (Location, error) {
	if s == NotServing {
		return Location{}, nil
	}
	if s == "" {
		return Location{}, errLocEmpty
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Location{}, errLocNoPort
	}
	host, portStr := s[:i], s[i+1:]
	port, err := parsePort(portStr)
	if err != nil {
		return Location{}, err
	}
	if host == "" {
		return Location{}, errLocNoHost
	}
	if allowLocal {
		switch {
		case host == localIPv4:
			return Location{Host: localIPv4, Port: port}, nil
		case strings.EqualFold(host, localName):
			return Location{Host: localName, Port: port}, nil
		}
	}
	if !ValidOnionV3(host) {
		switch {
		case isOnionV2(host):
			return Location{}, errLocV2
		case allowLocal:
			return Location{}, errLocNotLocal
		default:
			return Location{}, errLocNotV3
		}
	}
	// ToLower returns host itself when it is already lower-case.
	return Location{Host: strings.ToLower(host), Port: port}, nil
}

// parsePort parses a decimal TCP port 1..65535 written with digits only and
// without leading zeros.
func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errLocNoPort
	}
	if len(s) > 5 {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, errLocBadPort
			}
		}
		return 0, errLocPortRange
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errLocBadPort
		}
		n = n*10 + int(c-'0')
	}
	if s[0] == '0' && len(s) > 1 {
		return 0, errLocBadPort
	}
	if n < 1 || n > 65535 {
		return 0, errLocPortRange
	}
	return n, nil
}

// b32Digit maps an ASCII byte to its RFC 4648 base32 value (either case), or
// 0xff if it is not a base32 character.
var b32Digit = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
		t[alphabet[i]|0x20] = byte(i) // lower-case letters; digits unchanged
	}
	return t
}()

// hasOnionSuffix reports whether host ends in ".onion" (any case) and returns
// the label before it.
func hasOnionSuffix(host string) (string, bool) {
	if len(host) < len(onionSuffix) || !strings.EqualFold(host[len(host)-len(onionSuffix):], onionSuffix) {
		return "", false
	}
	return host[:len(host)-len(onionSuffix)], true
}

// isOnionV2 reports whether host looks like a v2 onion address (16 base32
// chars + ".onion"); used only to choose an error message.
func isOnionV2(host string) bool {
	label, ok := hasOnionSuffix(host)
	if !ok || len(label) != onionV2Len {
		return false
	}
	for i := 0; i < len(label); i++ {
		if b32Digit[label[i]] == 0xff {
			return false
		}
	}
	return true
}

// ValidOnionV3 reports whether host (with ".onion", any case) is a valid v3
// onion address: 56 base32 characters decoding to a 32-byte ed25519 key, a
// 2-byte checksum and version byte 3, where the checksum is the first two
// bytes of SHA3-256(".onion checksum" || key || version). Whether the key is
// a valid curve point is not checked.
func ValidOnionV3(host string) bool {
	label, ok := hasOnionSuffix(host)
	if !ok || len(label) != onionV3Len {
		return false
	}
	// 56 chars × 5 bits = 280 bits = 35 bytes exactly: key(32) ‖ checksum(2) ‖ version(1).
	// Decoded directly into the checksum input, which is laid out as
	// ".onion checksum" ‖ key ‖ version; the checksum bytes go to sum.
	const p = len(onionChecksumPrefix)
	var buf [p + 32 + 1]byte
	var raw [35]byte
	copy(buf[:], onionChecksumPrefix)
	for g := 0; g < onionV3Len/8; g++ {
		var acc uint64
		for j := 0; j < 8; j++ {
			d := b32Digit[label[g*8+j]]
			if d == 0xff {
				return false
			}
			acc = acc<<5 | uint64(d)
		}
		for j := 0; j < 5; j++ {
			raw[g*5+j] = byte(acc >> (8 * (4 - j)))
		}
	}
	if raw[34] != onionV3Version {
		return false
	}
	copy(buf[p:], raw[:32])
	buf[p+32] = raw[34]
	sum := sha3.Sum256(buf[:])
	return sum[0] == raw[32] && sum[1] == raw[33]
}
