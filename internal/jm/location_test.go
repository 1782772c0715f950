package jm

import (
	"crypto/sha3"
	"encoding/base32"
	"strings"
	"testing"
)

const (
	makerOnion = "4xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion"
	dirOnion   = "uom3agl4xqbn64nruvktasjvzfmdmrovevpe4ivxnu65lqnqahtgc3yd.onion"
	// makerOnion with its first character changed ('4' -> '5'): checksum fails.
	corruptOnion = "5xds6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.onion"
	v2Onion      = "expyuzz4wqqyqhjn.onion"
)

// makeOnion builds a v3-shaped address for key with the given version byte
// and a correct checksum for that version, using encoding/base32 as an
// independent reference for the encoding.
func makeOnion(key [32]byte, version byte) string {
	in := append([]byte(".onion checksum"), key[:]...)
	in = append(in, version)
	sum := sha3.Sum256(in)
	raw := append(key[:], sum[0], sum[1], version)
	return strings.ToLower(base32.StdEncoding.EncodeToString(raw)) + ".onion"
}

func TestValidOnionV3(t *testing.T) {
	var k [32]byte
	for i := range k {
		k[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		host string
		want bool
	}{
		{"maker", makerOnion, true},
		{"directory", dirOnion, true},
		{"upper case", strings.ToUpper(makerOnion), true},
		{"mixed case", "4XDS6aoarwrib7aa3xsnvjcoy3w2jfburxaxl3jxk7qdquf7fmnn2nad.OnIoN", true},
		{"constructed", makeOnion(k, 3), true},
		{"zero key", makeOnion([32]byte{}, 3), true},

		{"checksum corrupted", corruptOnion, false},
		{"last char flipped", dirOnion[:55] + "a.onion", false},
		{"version 4 with valid checksum", makeOnion(k, 4), false},
		{"version 0 with valid checksum", makeOnion(k, 0), false},
		{"v2", v2Onion, false},
		{"no suffix", strings.TrimSuffix(makerOnion, ".onion"), false},
		{"other suffix", strings.TrimSuffix(makerOnion, ".onion") + ".onior", false},
		{"too long", "a" + makerOnion, false},
		{"too short", makerOnion[1:], false},
		{"non-base32 1", "1" + makerOnion[1:], false},
		{"non-base32 8", "8" + makerOnion[1:], false},
		{"padding char", "=" + makerOnion[1:], false},
		{"newline inside", makerOnion[:10] + "\n" + makerOnion[11:], false},
		{"empty", "", false},
		{"only suffix", ".onion", false},
		{"ip", "127.0.0.1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidOnionV3(tc.host); got != tc.want {
				t.Errorf("ValidOnionV3(%q) = %v, want %v", tc.host, got, tc.want)
			}
		})
	}
}

func TestParseLocation(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		allowLocal bool
		want       Location
		wantErr    string // substring of the error; "" means success
	}{
		{"not serving", NotServing, false, Location{}, ""},
		{"not serving local", NotServing, true, Location{}, ""},
		{"maker", makerOnion + ":5222", false, Location{makerOnion, 5222}, ""},
		{"directory", dirOnion + ":5222", false, Location{dirOnion, 5222}, ""},
		{"upper case stored lower", strings.ToUpper(makerOnion) + ":5222", false, Location{makerOnion, 5222}, ""},
		{"port 1", dirOnion + ":1", false, Location{dirOnion, 1}, ""},
		{"port 65535", dirOnion + ":65535", false, Location{dirOnion, 65535}, ""},
		{"onion in local mode", makerOnion + ":5222", true, Location{makerOnion, 5222}, ""},
		{"local ip", "127.0.0.1:5222", true, Location{"127.0.0.1", 5222}, ""},
		{"localhost", "localhost:27183", true, Location{"localhost", 27183}, ""},
		{"LOCALHOST", "LOCALHOST:27183", true, Location{"localhost", 27183}, ""},

		{"empty", "", false, Location{}, "empty location"},
		{"empty local", "", true, Location{}, "empty location"},
		{"lower-case not-serving", "not-serving-onion", false, Location{}, "missing port"},
		{"no colon", makerOnion, false, Location{}, "missing port"},
		{"bare port", "9050", false, Location{}, "missing port"},
		{"empty port", makerOnion + ":", false, Location{}, "missing port"},
		{"empty host", ":5222", false, Location{}, "missing host"},
		{"port 0", makerOnion + ":0", false, Location{}, "port out of range"},
		{"port 65536", makerOnion + ":65536", false, Location{}, "port out of range"},
		{"port 99999", makerOnion + ":99999", false, Location{}, "port out of range"},
		{"port huge", makerOnion + ":99999999999999999999999", false, Location{}, "port out of range"},
		{"port +5", makerOnion + ":+5", false, Location{}, "invalid port"},
		{"port -5", makerOnion + ":-5", false, Location{}, "invalid port"},
		{"port 05", makerOnion + ":05", false, Location{}, "invalid port"},
		{"port 00", makerOnion + ":00", false, Location{}, "invalid port"},
		{"port space", makerOnion + ": 5222", false, Location{}, "invalid port"},
		{"port hex", makerOnion + ":0x50", false, Location{}, "invalid port"},
		{"port unicode digit", makerOnion + ":５222", false, Location{}, "invalid port"},
		{"checksum corrupted", corruptOnion + ":5222", false, Location{}, "not a v3 onion address"},
		{"v2 onion", v2Onion + ":5222", false, Location{}, "v2 onion"},
		{"local ip without local mode", "127.0.0.1:5222", false, Location{}, "not a v3 onion address"},
		{"localhost without local mode", "localhost:5222", false, Location{}, "not a v3 onion address"},
		{"other ip in local mode", "10.0.0.1:5222", true, Location{}, "not a v3 onion address or local host"},
		{"other name", "example.com:5222", false, Location{}, "not a v3 onion address"},
		{"ipv6", "[::1]:5222", true, Location{}, "not a v3 onion address"},
		{"two ports", makerOnion + ":5222:5222", false, Location{}, "not a v3 onion address"},
		{"trailing space", makerOnion + ":5222 ", false, Location{}, "invalid port"},
		{"leading space", " " + makerOnion + ":5222", false, Location{}, "not a v3 onion address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLocation(tc.in, tc.allowLocal)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseLocation(%q, %v) error: %v", tc.in, tc.allowLocal, err)
				}
				if got != tc.want {
					t.Fatalf("ParseLocation(%q, %v) = %+v, want %+v", tc.in, tc.allowLocal, got, tc.want)
				}
				if got.Serving() != (tc.in != NotServing) {
					t.Errorf("Serving() = %v", got.Serving())
				}
				if s := got.String(); s != strings.ToLower(tc.in) && tc.in != NotServing {
					t.Errorf("String() = %q, want %q", s, strings.ToLower(tc.in))
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseLocation(%q, %v) = %+v, want error containing %q", tc.in, tc.allowLocal, got, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseLocation(%q, %v) error %q, want it to contain %q", tc.in, tc.allowLocal, err, tc.wantErr)
			}
			if got != (Location{}) {
				t.Errorf("ParseLocation(%q) returned %+v with an error", tc.in, got)
			}
		})
	}
}

func TestLocationString(t *testing.T) {
	tests := []struct {
		loc  Location
		want string
	}{
		{Location{}, NotServing},
		{Location{Host: makerOnion, Port: 5222}, makerOnion + ":5222"},
		{Location{Host: "127.0.0.1", Port: 80}, "127.0.0.1:80"},
	}
	for _, tc := range tests {
		if got := tc.loc.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.loc, got, tc.want)
		}
	}
}

func TestParseLocationNoAlloc(t *testing.T) {
	for _, s := range []string{
		NotServing, makerOnion + ":5222", "127.0.0.1:5222", "", "garbage",
		corruptOnion + ":5222", v2Onion + ":5222", makerOnion + ":0",
	} {
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseLocation(s, true) }); n != 0 {
			t.Errorf("ParseLocation(%q) allocates %v times", s, n)
		}
	}
}

func BenchmarkParseLocation(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLocation(makerOnion+":5222", false); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseLocationNotServing(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLocation(NotServing, false); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		NotServing, makerOnion + ":5222", dirOnion + ":5222", strings.ToUpper(dirOnion) + ":5222",
		corruptOnion + ":5222", v2Onion + ":5222", "127.0.0.1:5222", "localhost:5222",
		"", "9050", makerOnion + ":0", makerOnion + ":65536", makerOnion + ":+5", makerOnion + ":05",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, allowLocal bool) {
		loc, err := ParseLocation(s, allowLocal)
		if err != nil {
			if loc != (Location{}) {
				t.Fatalf("error with non-zero location %+v", loc)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if !loc.Serving() {
			if s != NotServing || loc != (Location{}) {
				t.Fatalf("ParseLocation(%q) = %+v, not serving", s, loc)
			}
			return
		}
		if loc.Port < 1 || loc.Port > 65535 {
			t.Fatalf("port %d out of range", loc.Port)
		}
		str := loc.String()
		if str != strings.ToLower(s) {
			t.Fatalf("String() = %q, input %q", str, s)
		}
		again, err := ParseLocation(str, allowLocal)
		if err != nil || again != loc {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", str, again, err, loc)
		}
		if !allowLocal || strings.HasSuffix(loc.Host, ".onion") {
			if !ValidOnionV3(loc.Host) || loc.Host != strings.ToLower(loc.Host) {
				t.Fatalf("accepted host %q is not a lower-case v3 onion", loc.Host)
			}
			// Cross-check the checksum with encoding/base32.
			raw, err := base32.StdEncoding.DecodeString(strings.ToUpper(strings.TrimSuffix(loc.Host, ".onion")))
			if err != nil || len(raw) != 35 || raw[34] != 3 {
				t.Fatalf("accepted host %q does not decode: %x %v", loc.Host, raw, err)
			}
			var key [32]byte
			copy(key[:], raw)
			if makeOnion(key, 3) != loc.Host {
				t.Fatalf("accepted host %q has a bad checksum", loc.Host)
			}
		}
	})
}
