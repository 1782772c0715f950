package tortest

import (
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// TestHashPassword checks hashPassword against tor's own --hash-password: same salt,
// same result.
func TestHashPassword(t *testing.T) {
	tor := testkit.NeedTool(t, "tor")
	out, err := exec.Command(tor, "--quiet", "--hash-password", "s3cret pass").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(out))
	raw, err := hex.DecodeString(strings.TrimPrefix(want, "16:"))
	if err != nil || len(raw) != 8+1+20 {
		t.Fatalf("tor printed %q", want)
	}
	if got := hashPassword("s3cret pass", raw[:8]); got != want {
		t.Fatalf("hashPassword = %s, tor says %s", got, want)
	}
}

func TestUsableRouters(t *testing.T) {
	ns := "r auth0 AAAA BBBB 2025-01-01 00:00:00 127.0.0.1 5000 0\n" +
		"s Authority Exit Fast Guard HSDir Running Stable V2Dir Valid\n" +
		"w Bandwidth=0\n" +
		"r relay0 CCCC DDDD 2025-01-01 00:00:00 127.0.0.1 5001 0\n" +
		"s Exit Fast Guard HSDir Running V2Dir Valid\n"
	usable, lacking := usableRouters(ns)
	if usable != 1 || len(lacking) != 1 || lacking[0] != "relay0 lacks Stable" {
		t.Fatalf("usableRouters = %d %q", usable, lacking)
	}
}
