package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/handshake"
	"github.com/jm-directory/jm-directory-server/internal/wire"
)

// peer is one simulated JoinMarket client connection. Its read side is used by one
// goroutine at a time; writes are the caller's business (each scenario writes a given
// peer from one goroutine only).
type peer struct {
	id       identity
	location string
	conn     net.Conn

	buf  []byte // read buffer; unread data is buf[r:w]
	r, w int

	cut atomic.Bool // the connection ended before we closed it
}

// maxBuf bounds read-buffer growth: a line is at most 40000 bytes of content.
const maxBuf = 128 << 10

// readChunk does one Read and calls fn for every complete line now buffered (terminator
// stripped). fn must not keep the slice. It returns the Read error, after handling the
// lines that arrived with it.
func (p *peer) readChunk(fn func(line []byte)) error {
	if p.r > 0 && len(p.buf)-p.w < len(p.buf)/4 {
		// Little room left: move the partial line to the front so reads stay large.
		p.w = copy(p.buf, p.buf[p.r:p.w])
		p.r = 0
	}
	if p.w == len(p.buf) {
		if p.r > 0 {
			p.w = copy(p.buf, p.buf[p.r:p.w])
			p.r = 0
		} else {
			n := min(2*len(p.buf), maxBuf)
			if n <= len(p.buf) {
				return errors.New("line longer than the read buffer")
			}
			nb := make([]byte, n)
			copy(nb, p.buf[:p.w])
			p.buf = nb
		}
	}
	n, err := p.conn.Read(p.buf[p.w:])
	p.w += n
	data := p.buf[p.r:p.w]
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := data[:i]
		if i > 0 && line[i-1] == '\r' {
			line = line[:i-1]
		}
		fn(line)
		data = data[i+1:]
	}
	p.r = p.w - len(data)
	if p.r == p.w {
		p.r, p.w = 0, 0
	}
	return err
}

// readLine returns the next complete line (a copy), reading as needed.
func (p *peer) readLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(p.buf[p.r:p.w], '\n'); i >= 0 {
			line := bytes.TrimSuffix(p.buf[p.r:p.r+i], []byte{'\r'})
			out := append([]byte(nil), line...)
			p.r += i + 1
			return out, nil
		}
		if p.w == len(p.buf) {
			if p.r > 0 {
				p.w = copy(p.buf, p.buf[p.r:p.w])
				p.r = 0
			} else if len(p.buf) < maxBuf {
				nb := make([]byte, min(2*len(p.buf), maxBuf))
				copy(nb, p.buf[:p.w])
				p.buf = nb
			} else {
				return nil, errors.New("line longer than the read buffer")
			}
		}
		n, err := p.conn.Read(p.buf[p.w:])
		p.w += n
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

// write writes b with a deadline.
func (p *peer) write(b []byte, timeout time.Duration) (int, error) {
	_ = p.conn.SetWriteDeadline(time.Now().Add(timeout))
	return p.conn.Write(b)
}

// dialer makes peers: TCP connect (optionally from a given loopback source address) and
// the reference-client handshake.
type dialer struct {
	addr    string
	network string
	source  net.IP        // nil: let the kernel choose (127.0.0.1 for a loopback target)
	timeout time.Duration // for connect + handshake together
	bufSize int           // initial read buffer per peer
	rcvbuf  int           // SO_RCVBUF for every socket; 0 = kernel default (autotuning)
}

// hsError is a failed join with a short, stable reason used to group failures.
type hsError struct {
	reason string
	err    error
}

func (e *hsError) Error() string {
	if e.err == nil {
		return e.reason
	}
	return e.reason + ": " + e.err.Error()
}

func (e *hsError) Unwrap() error { return e.err }

// failReason is the grouping key of a join error.
func failReason(err error) string {
	var he *hsError
	if errors.As(err, &he) {
		return he.reason
	}
	return "error: " + err.Error()
}

// errClass names the common socket errors briefly.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return "closed by server"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset by server"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no source port available"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "out of file descriptors"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}

// join connects and handshakes one peer. The returned peer has seen its 795 accepted.
func (d *dialer) join(ctx context.Context, id identity, location string) (*peer, error) {
	p, _, err := d.joinWith(ctx, id, location, nil)
	return p, err
}

// joinWith is join announcing features (join announces {}, as the reference client),
// and returns the directory's 795 line too (valid until the peer's next read).
func (d *dialer) joinWith(ctx context.Context, id identity, location string, features map[string]bool) (*peer, []byte, error) {
	deadline := time.Now().Add(d.timeout)
	nd := net.Dialer{Deadline: deadline, KeepAlive: -1}
	if d.source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: d.source}
	}
	if d.source != nil || d.rcvbuf > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			if d.source != nil {
				if err := bindNoPort(c); err != nil {
					return err
				}
			}
			if d.rcvbuf > 0 {
				return setRcvbuf(c, d.rcvbuf)
			}
			return nil
		}
	}
	c, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, nil, &hsError{reason: "dial: " + errClass(err), err: err}
	}
	p := &peer{id: id, location: location, conn: c, buf: make([]byte, max(d.bufSize, 1024))}
	_ = p.conn.SetDeadline(deadline)
	hello := handshake.ClientHello{Nick: id.nick, Location: location, Network: d.network, Features: features}.Line()
	if _, err := p.conn.Write(appendEnvelope(nil, wire.TypeHandshake, hello)); err != nil {
		p.conn.Close()
		return nil, nil, &hsError{reason: "send 793: " + errClass(err), err: err}
	}
	line, err := p.readLine()
	if err != nil {
		p.conn.Close()
		return nil, nil, &hsError{reason: "no 795: " + errClass(err), err: err}
	}
	_ = p.conn.SetDeadline(time.Time{})
	if err := checkDNHandshake(line); err != nil {
		p.conn.Close()
		return nil, nil, err
	}
	return p, line, nil
}

// checkDNHandshake checks the directory's answer as a reference client would
// (docs/protocol.md §3.9): a 795 with accepted true, directory true and 5 within the
// version range.
func checkDNHandshake(line []byte) error {
	env, err := wire.Decode(line)
	if err != nil {
		return &hsError{reason: "bad 795: malformed envelope", err: err}
	}
	if env.Type != wire.TypeDNHandshake {
		return &hsError{reason: "bad 795: type " + strconv.Itoa(env.Type)}
	}
	var dh struct {
		Accepted  *bool  `json:"accepted"`
		Directory bool   `json:"directory"`
		Min       int    `json:"proto-ver-min"`
		Max       int    `json:"proto-ver-max"`
		MOTD      string `json:"motd"`
	}
	if err := json.Unmarshal([]byte(env.Line), &dh); err != nil || dh.Accepted == nil {
		return &hsError{reason: "bad 795: invalid JSON", err: err}
	}
	if !*dh.Accepted {
		motd := dh.MOTD
		if len(motd) > 60 {
			motd = motd[:60] + "…"
		}
		return &hsError{reason: "rejected: " + motd}
	}
	if !dh.Directory || dh.Min > 5 || dh.Max < 5 {
		return &hsError{reason: "bad 795: not a protocol-5 directory"}
	}
	return nil
}

// makerLocation is the regtest location of the i-th simulated maker.
func makerLocation(i int) string {
	return "127.0.0.1:" + strconv.Itoa(1024+i%64000)
}

// spec describes one peer to create: identity and location.
type spec struct {
	id       identity
	location string
}

// makeSpecs creates n identities; the first round(n*makers) are makers (serving
// 127.0.0.1:<port>, ports numbered from base), the rest takers.
func makeSpecs(n int, makers float64, base int) []spec {
	nm := int(float64(n)*makers + 0.5)
	out := make([]spec, n)
	var wg sync.WaitGroup
	const chunk = 256
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				out[i].id = newIdentity()
				if i < nm {
					out[i].location = makerLocation(base + i)
				} else {
					out[i].location = wire.NotServing
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// joinAll connects and handshakes every spec with at most conc joins in flight. peers[i]
// is nil when spec i failed; failures counts them by reason. onJoin (optional) is called
// after every attempt.
func joinAll(ctx context.Context, d *dialer, specs []spec, conc int, onJoin func(ok bool)) (peers []*peer, failures map[string]int64, last time.Time) {
	peers = make([]*peer, len(specs))
	failures = map[string]int64{}
	var mu sync.Mutex
	sem := make(chan struct{}, max(conc, 1))
	var wg sync.WaitGroup
	for i := range specs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p, err := d.join(ctx, specs[i].id, specs[i].location)
			now := time.Now()
			mu.Lock()
			if err != nil {
				failures[failReason(err)]++
			} else {
				peers[i] = p
				if now.After(last) {
					last = now
				}
			}
			mu.Unlock()
			if onJoin != nil {
				onJoin(err == nil)
			}
		}()
	}
	wg.Wait()
	return peers, failures, last
}

// joinEvery joins every spec with "joining <what>k/n" on the scenario's progress line,
// for scenarios that need every peer: unless all join, it closes those that did and
// returns setupError's error.
func joinEvery(ctx context.Context, progress io.Writer, scenario, what string, d *dialer, specs []spec, conc int) ([]*peer, error) {
	var joined atomic.Int64
	pr := startProgress(progress, scenario, func() string { return fmt.Sprintf("joining %s%d/%d", what, joined.Load(), len(specs)) })
	peers, failures, _ := joinAll(ctx, d, specs, conc, func(ok bool) {
		if ok {
			joined.Add(1)
		}
	})
	pr.stop()
	if err := setupError(failures, len(specs)); err != nil {
		closeAll(peers)
		return nil, err
	}
	return peers, nil
}

// setupError turns join failures into one error for scenarios that need every peer.
func setupError(failures map[string]int64, n int) error {
	var total int64
	for _, v := range failures {
		total += v
	}
	if total == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d peers failed to join: %s", total, n, formatCounts(failures))
}

// closeAll closes every non-nil peer's connection.
func closeAll(peers []*peer) {
	for _, p := range peers {
		if p != nil {
			p.conn.Close()
		}
	}
}
