package probe_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/dirtest"
	"github.com/jm-directory/jm-directory-server/internal/probe"
	"github.com/jm-directory/jm-directory-server/internal/testkit"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

func TestProbeAccepted(t *testing.T) {
	d := dirtest.Start(t, nil, nil)
	tg := d.Target()
	m1, m2 := tg.Join(t, dirtest.RefMaker), tg.Join(t, dirtest.NGMaker)
	tg.Join(t, dirtest.RefTaker)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	res, err := probe.Probe(ctx, d.Addr, probe.Options{Network: d.Network, Quiet: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Accepted || res.Rejection != "" {
		t.Fatalf("not accepted: %+v", res)
	}
	if res.Nick != d.Srv.Nick() || res.Network != d.Network || res.Location != d.Srv.Location() {
		t.Errorf("identity %q %q %q; want %q %q %q", res.Nick, res.Network, res.Location, d.Srv.Nick(), d.Network, d.Srv.Location())
	}
	if res.MOTD != d.Srv.MOTD() || !strings.HasPrefix(res.Version, "jm-directory-server version: ") {
		t.Errorf("motd %q, version %q", res.MOTD, res.Version)
	}
	if strings.Join(res.Features, ",") != "peerlist_features,ping" {
		t.Errorf("features %v", res.Features)
	}
	if res.Makers != 2 || res.PeerlistLines != 1 {
		t.Errorf("%d makers in %d lines, want 2 (%s, %s) in 1", res.Makers, res.PeerlistLines, m1.Nick, m2.Nick)
	}
	// The probe was a peer only while it probed: it has left.
	testkit.Eventually(t, "the probe gone", func() bool { return d.Srv.Status(false).Peers == 3 })
}

func TestProbeRejected(t *testing.T) {
	d := dirtest.Start(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	res, err := probe.Probe(ctx, d.Addr, probe.Options{Network: "mainnet"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted || !strings.HasPrefix(res.Rejection, "Rejected: network") || res.Network != d.Network || res.Makers != -1 {
		t.Fatalf("a probe naming the wrong network: %+v", res)
	}
}

func TestProbeUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	if _, err := probe.Probe(ctx, addr, probe.Options{Network: "regtest"}); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Fatalf("a closed port: %v", err)
	}
	// A listener that accepts and never answers: the context bounds the probe.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 4096))
			<-ctx.Done()
		}
	}()
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := probe.Probe(short, ln.Addr().String(), probe.Options{Network: "regtest"}); err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("a silent listener: %v", err)
	}
}

// A departure notice arriving among the answer's lines is not part of the peerlist.
func TestProbeSkipsDepartures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const dn = "J5DirectoryOOOOO"
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err != nil { // the 793
			return
		}
		hello := `{"accepted": true, "nick": "` + dn + `", "network": "regtest", "motd": "m", "features": {}}`
		_, _ = c.Write(wire.AppendEnvelope(nil, wire.TypeDNHandshake, hello))
		if _, err := r.ReadString('\n'); err != nil { // the 791
			return
		}
		_, _ = c.Write(wire.AppendEnvelope(nil, wire.TypePeerlist, "J5GoneOOOOOOOOOO;NOT-SERVING-ONION;D,"+dn+";127.0.0.1:1"))
		_, _ = c.Write(wire.AppendEnvelope(nil, wire.TypePeerlist, dn+";127.0.0.1:1,J5MakerOOOOOOOOO;127.0.0.1:2"))
		_, _ = r.ReadString('\n') // until the probe hangs up
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	res, err := probe.Probe(ctx, ln.Addr().String(), probe.Options{Network: "regtest", Quiet: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Accepted || res.PeerlistLines != 1 || res.Makers != 1 {
		t.Fatalf("%+v; want 1 peerlist line with 1 maker, the departure set aside", res)
	}
}
