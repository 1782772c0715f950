package jm

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/mr-tron/base58"
)

// nickVectors are docs/protocol.md §4.1 and the §11 example identities.
var nickVectors = []struct {
	name, priv, pub, nick string
}{
	{"§4.1 32x0x11", strings.Repeat("11", 32), "034f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa", "J52N8GdNkKtMA6TW"},
	{"§4.1 padded", "8ed56e249c0ece73931d47f624de4cf5fed7b6250eccd1b9e13202ba81015878", "02975fb752bee6f38875d7ae7594a90913ba9af3c862bb2a3dbd83371a7c2d2f07", "J5oM7Gg7dGBixDQO"},
	{"§11 REF maker", "b96e977550e28e754e585d7fc1f22347c2a0de3386ce2d80d23fa2117a06af59", "032e5e37acc15778839c3cb6533585f2af6e682f2c3d8410d4d24ac078a9059d9e", "J59EiPRQrQkXMk5d"},
	{"§11 REF taker", "173bdf427dfc17dd4624edea64bcbd32cd2f7078ffe56aa2ae66fe857712af3c", "0207b5dbd0f7a1b511aa621dad5a5c8acaa87876edaffa20f671beff44c0101c75", "J5ADox6oD453KSSf"},
	{"§11 directory", "449595ee8c1b7bfe7689a8fe2602f868af66c7b1f1b1269ab09a23960321a1ab", "02860bea5b55782998a15a0987120573e45806c575294c304a4c63f8a989dc7de2", "J58qZTosNQ6beAwN"},
	{"§11 NG taker", "e3d92522718783748586db170627e0151c640ab9e6c523ee747fd672d6a8c4ea", "02bc4d0182a33c15469e581cf42fb1a2c9fcebab1651aa3158a23e10af59c18bd0", "J554XN9CktYtikWE"},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestNickFromPubKey(t *testing.T) {
	for _, tc := range nickVectors {
		t.Run(tc.name, func(t *testing.T) {
			key := secp256k1.PrivKeyFromBytes(mustHex(t, tc.priv))
			pub := key.PubKey().SerializeCompressed()
			if want := mustHex(t, tc.pub); !bytes.Equal(pub, want) {
				t.Fatalf("pubkey = %x, want %x", pub, want)
			}
			if got := NickFromPubKey(pub); got != tc.nick {
				t.Errorf("NickFromPubKey = %q, want %q", got, tc.nick)
			}
			if !ValidNick(tc.nick) {
				t.Errorf("ValidNick(%q) = false", tc.nick)
			}
		})
	}
}

// TestNickFromPubKeyRandomValid checks that nicks of random keys (including
// ones whose base58 part is shorter than 14 and needs padding) are valid.
func TestNickFromPubKeyRandomValid(t *testing.T) {
	for i := 0; i < 200; i++ {
		key, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		n := NickFromPubKey(key.PubKey().SerializeCompressed())
		if len(n) != 16 || !ValidNick(n) {
			t.Fatalf("derived nick %q is not valid", n)
		}
	}
}

func TestValidNick(t *testing.T) {
	max10 := base58.Encode(bytes.Repeat([]byte{0xff}, 10))         // 2^80-1: largest 10-byte value
	min11 := base58.Encode(append([]byte{1}, make([]byte, 10)...)) // 2^80: smallest 11-byte value
	if len(max10) != 14 || len(min11) != 14 {
		t.Fatalf("boundary encodings have unexpected lengths %d, %d", len(max10), len(min11))
	}
	tests := []struct {
		name string
		nick string
		want bool
	}{
		{"fixture 1", "J59xfsUewpdmrbuM", true},
		{"fixture 2", "J58w4tpYN3zRBwC9", true},
		{"fixture 3", "J55uwMUczBgZV44z", true},
		{"fixture 4", "J5CHzCDv77erayr2", true},
		{"fixture 5", "J5At3hY5smi9vYfE", true},
		{"§4.1 padded", "J5oM7Gg7dGBixDQO", true},
		{"single digit padded", "J52OOOOOOOOOOOOO", true},
		{"ten zero bytes", "J51111111111OOOO", true},
		{"max 10-byte value", "J5" + max10, true},

		{"empty", "", false},
		{"too short", "J52N8GdNkKtMA6T", false},
		{"too long", "J52N8GdNkKtMA6TWx", false},
		{"prefix J4", "J42N8GdNkKtMA6TW", false},
		{"prefix j5", "j52N8GdNkKtMA6TW", false},
		{"prefix K5", "K52N8GdNkKtMA6TW", false},
		{"char 0", "J52N8GdNkKtMA60W", false},
		{"char I", "J52N8GdNkKtMA6IW", false},
		{"char l", "J52N8GdNkKtMA6lW", false},
		{"char +", "J52N8GdNkKtMA6+W", false},
		{"non-ascii", "J52N8GdNkKtMA\xc3\xa9W", false},
		{"O in the middle", "J5oM7Gg7dGBiOxDQ", false},
		{"O then non-O at end", "J5oM7Gg7dGBixDOQ", false},
		{"all O padding", "J5OOOOOOOOOOOOOO", false},
		{"eleven zero bytes", "J511111111111OOO", false},
		{"fourteen zero bytes", "J511111111111111", false},
		{"min 11-byte value", "J5" + min11, false},
		{"all z", "J5zzzzzzzzzzzzzz", false},
		{"space padding", "J52N8GdNkKtMA6T ", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidNick(tc.nick); got != tc.want {
				t.Errorf("ValidNick(%q) = %v, want %v", tc.nick, got, tc.want)
			}
			if ref := refValidNick(tc.nick); ref != tc.want {
				t.Errorf("reference ValidNick(%q) = %v, want %v (bad test vector?)", tc.nick, ref, tc.want)
			}
		})
	}
}

// refValidNick is a straightforward implementation of the RS rule using the
// base58 library, used to cross-check ValidNick.
func refValidNick(s string) bool {
	if len(s) != 16 || !strings.HasPrefix(s, "J5") {
		return false
	}
	e := strings.TrimRight(s[2:], "O")
	if e == "" {
		return false
	}
	b, err := base58.Decode(e)
	return err == nil && len(b) <= 10
}

func TestValidNickNoAlloc(t *testing.T) {
	for _, s := range []string{"J59xfsUewpdmrbuM", "J5oM7Gg7dGBixDQO", "J5zzzzzzzzzzzzzz", "x"} {
		if n := testing.AllocsPerRun(100, func() { ValidNick(s) }); n != 0 {
			t.Errorf("ValidNick(%q) allocates %v times", s, n)
		}
	}
}

func BenchmarkValidNick(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		ValidNick("J59xfsUewpdmrbuM")
	}
}

func FuzzValidNick(f *testing.F) {
	for _, s := range []string{
		"J52N8GdNkKtMA6TW", "J5oM7Gg7dGBixDQO", "J59EiPRQrQkXMk5d", "J5ADox6oD453KSSf",
		"J58qZTosNQ6beAwN", "J554XN9CktYtikWE", "J59xfsUewpdmrbuM", "J58w4tpYN3zRBwC9",
		"J55uwMUczBgZV44z", "J5CHzCDv77erayr2", "J5At3hY5smi9vYfE",
		"", "J42N8GdNkKtMA6TW", "j52N8GdNkKtMA6TW", "J52N8GdNkKtMA60W", "J5oM7Gg7dGBiOxDQ",
		"J5OOOOOOOOOOOOOO", "J511111111111OOO", "J5zzzzzzzzzzzzzz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ValidNick(s)
		if ref := refValidNick(s); got != ref {
			t.Fatalf("ValidNick(%q) = %v, reference says %v", s, got, ref)
		}
	})
}

// FuzzNickFromPubKey checks that every derived nick is valid.
func FuzzNickFromPubKey(f *testing.F) {
	f.Add([]byte{2, 1, 2, 3})
	f.Add(bytes.Repeat([]byte{0x11}, 33))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := NickFromPubKey(b); !ValidNick(n) {
			t.Fatalf("NickFromPubKey(%x) = %q is not valid", b, n)
		}
	})
}
