package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (Linux ≥ 4.2, include/uapi/linux/in.h).
// With it, binding a source address defers the choice of the source port to connect(),
// which can then reuse a port as long as the 4-tuple is unique (and reuse TIME_WAIT ports
// on loopback), instead of reserving a port per address at bind() time.
const ipBindAddressNoPort = 24

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT on a socket about to be bound and connected.
func bindNoPort(c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// raiseNofile raises the soft limit on open files to the hard limit and returns the
// resulting soft limit.
func raiseNofile() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, err
		}
		rl = want
	}
	return rl.Cur, nil
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tcpCounters reads the host's TCP counters that reveal kernel trouble on loopback:
// retransmitted segments (Tcp RetransSegs in /proc/net/snmp) and, from /proc/net/netstat,
// TCP memory-pressure events and receive-queue prunes/drops. Host-wide: they include the
// directory's side of every connection (and anything else running).
func tcpCounters() map[string]int64 {
	out := map[string]int64{}
	for _, f := range []struct{ path, prefix string }{{"/proc/net/snmp", "Tcp:"}, {"/proc/net/netstat", "TcpExt:"}} {
		b, err := os.ReadFile(f.path)
		if err != nil {
			continue
		}
		var header []string
		for line := range strings.SplitSeq(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 || fields[0] != f.prefix {
				continue
			}
			if header == nil {
				header = fields
				continue
			}
			for i := 1; i < len(fields) && i < len(header); i++ {
				if v, err := strconv.ParseInt(fields[i], 10, 64); err == nil {
					out[header[i]] = v
				}
			}
			break
		}
	}
	return out
}

// setRcvbuf sets SO_RCVBUF before connect (so the advertised window matches).
func setRcvbuf(c syscall.RawConn, n int) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
	})
	if err != nil {
		return err
	}
	return serr
}
