package onionkey

import (
	"bytes"
	"testing"
)

// FuzzParseSecretFile: whatever the input, the parser does not panic, and what it
// accepts is exactly what SecretFile writes back.
func FuzzParseSecretFile(f *testing.F) {
	k := rfcKey(f)
	good := k.SecretFile()
	f.Add(good)
	f.Add(good[:95])
	f.Add(append(bytes.Clone(good), 0))
	f.Add(k.PublicFile())
	f.Add([]byte(k.ControlBlob()))
	f.Add(make([]byte, SecretFileSize))
	f.Fuzz(func(t *testing.T, in []byte) {
		k, err := ParseSecretFile(in)
		if err != nil {
			if !k.IsZero() {
				t.Fatal("a key with an error")
			}
			return
		}
		if !bytes.Equal(k.SecretFile(), in) {
			t.Fatalf("accepted %x, writes back %x", in, k.SecretFile())
		}
		if len(k.Onion()) != AddressLen {
			t.Fatalf("address %q", k.Onion())
		}
		k2, err := ParseControlBlob(k.ControlBlob())
		if err != nil || !k2.Equal(k) || !bytes.Equal(k2.PublicKey(), k.PublicKey()) {
			t.Fatalf("control blob round trip: %v", err)
		}
	})
}

// FuzzParseControlBlob: the same for control-port blobs.
func FuzzParseControlBlob(f *testing.F) {
	k := rfcKey(f)
	good := k.ControlBlob()
	f.Add(good)
	f.Add(good + "\n")
	f.Add(good[:len(good)-1])
	f.Add("ED25519-V3:")
	f.Add("RSA1024:" + good[11:])
	f.Add(good[:50] + "\r" + good[51:])
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseControlBlob(in)
		if err != nil {
			if !k.IsZero() {
				t.Fatal("a key with an error")
			}
			return
		}
		if k.ControlBlob() != in {
			t.Fatalf("accepted %q, writes back %q", in, k.ControlBlob())
		}
		k2, err := ParseSecretFile(k.SecretFile())
		if err != nil || !k2.Equal(k) {
			t.Fatalf("secret file round trip: %v", err)
		}
	})
}
