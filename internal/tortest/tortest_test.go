package tortest_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/jm-directory/jm-directory-server/internal/onionkey"
	"github.com/jm-directory/jm-directory-server/internal/torctl"
	"github.com/jm-directory/jm-directory-server/internal/tortest"
)

// TestNetwork starts a network, publishes an onion with ADD_ONION on the onion host in
// front of a local echo listener, echoes a line through the client's SOCKS port, then
// restarts the whole network, publishes the same key again and echoes again.
func TestNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Tor network (10-20 s)")
	}
	t0 := time.Now()
	n := tortest.Start(t, tortest.Relays(3), tortest.Timeout(2*time.Minute))
	t.Logf("start → ready: %v", time.Since(t0).Round(time.Millisecond))
	target := echoServer(t)
	key, err := onionkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	want := key.Onion() + ".onion:80"

	publish := func() {
		t.Helper()
		c, err := n.Control(tortest.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		id, err := c.AddOnion(torctl.Onion{KeyBlob: key.ControlBlob(), VirtualPort: 80, Target: target, Detach: true})
		if err != nil {
			t.Fatalf("ADD_ONION: %v", err)
		}
		if id+".onion:80" != want {
			t.Fatalf("ADD_ONION published %s, want %s", id, want)
		}
	}
	publish()
	echo(t, n, want, "hello through a private tor network")

	t2 := time.Now()
	n.Restart()
	t.Logf("restart → ready: %v", time.Since(t2).Round(time.Millisecond))
	publish()
	echo(t, n, want, "hello again after a restart")
}

// echo sends a line to addr through the client and expects it back, retrying while
// the descriptor propagates.
func echo(t *testing.T, n *tortest.Network, addr, line string) {
	t.Helper()
	t0 := time.Now()
	if err := n.WaitOnion(addr, time.Minute); err != nil {
		t.Fatalf("%v\nhost:\n%s", err, n.LogTail(tortest.Host, 20))
	}
	t1 := time.Now()
	d, err := proxy.SOCKS5("tcp", n.SOCKSAddr(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		t.Logf("published after %v, echoed after %v more", t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	}()
	err = n.Retry(90*time.Second, func() error {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			return err
		}
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if got != line+"\n" {
			return fmt.Errorf("echoed %q, want %q", got, line)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("echo through %s: %v\nclient:\n%s\nhost:\n%s", addr, err,
			n.LogTail(tortest.Client, 20), n.LogTail(tortest.Host, 20))
	}
}

// echoServer listens on loopback and echoes every connection; it returns host:port.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}
