package torctl

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/testkit"
)

// startTor runs a network-less tor with a cookie-authenticated control port and
// returns its control address.
func startTor(t *testing.T) (addr string) {
	t.Helper()
	bin := testkit.NeedTool(t, "tor")
	dir := t.TempDir()
	torrc := filepath.Join(dir, "torrc")
	portFile := filepath.Join(dir, "control-port")
	conf := fmt.Sprintf("DataDirectory %s\nSocksPort 0\nControlPort auto\nControlPortWriteToFile %s\nCookieAuthentication 1\nCookieAuthFile %s\nDisableNetwork 1\nLog notice file %s\n__OwningControllerProcess %d\n",
		filepath.Join(dir, "data"), portFile, filepath.Join(dir, "cookie"), filepath.Join(dir, "tor.log"), os.Getpid())
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", torrc)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var port string
	if !testkit.Poll(testkit.Timeout, func() bool {
		b, err := os.ReadFile(portFile)
		port = strings.TrimSpace(strings.TrimPrefix(string(b), "PORT="))
		return err == nil && strings.HasPrefix(string(b), "PORT=") && strings.HasSuffix(string(b), "\n")
	}) {
		log, _ := os.ReadFile(filepath.Join(dir, "tor.log"))
		t.Fatalf("tor did not open its control port within %v:\n%s", testkit.Timeout, log)
	}
	return port
}

// TestRealTor speaks to the real tor: safe-cookie authentication, GETINFO, ADD_ONION
// with proof-of-work defences, DEL_ONION.
func TestRealTor(t *testing.T) {
	addr := startTor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pi, err := c.Authenticate(Auth{})
	if err != nil {
		t.Fatalf("authenticate: %v (methods %v)", err, pi.Methods)
	}
	info, err := c.GetInfo("version")
	if err != nil || !strings.HasPrefix(info["version"], pi.Version) {
		t.Fatalf("GETINFO version: %q %v (PROTOCOLINFO said %q)", info, err, pi.Version)
	}
	id, err := c.AddOnion(Onion{KeyBlob: "NEW:ED25519-V3", VirtualPort: 5222, Target: "127.0.0.1:1", PoW: true})
	if err != nil {
		t.Fatalf("ADD_ONION with PoW on tor %s: %v", pi.Version, err)
	}
	if len(id) != 56 {
		t.Fatalf("service id %q", id)
	}
	cur, err := c.GetInfo("onions/current")
	if err != nil || !strings.Contains(cur["onions/current"], id) {
		t.Fatalf("onions/current = %q (%v), want %s", cur, err, id)
	}
	if err := c.DelOnion(id); err != nil {
		t.Fatal(err)
	}
	// An unauthenticated second connection is refused commands.
	c2, err := Dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.GetInfo("version"); err == nil {
		t.Fatal("GETINFO without authentication succeeded")
	}
}
