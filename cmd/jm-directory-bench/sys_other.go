//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

// bindNoPort does nothing outside Linux.
func bindNoPort(syscall.RawConn) error { return nil }

// tcpCounters is only implemented on Linux.
func tcpCounters() map[string]int64 { return nil }

// setRcvbuf does nothing outside Linux.
func setRcvbuf(syscall.RawConn, int) error { return nil }

// raiseNofile is only implemented on Linux.
func raiseNofile() (uint64, error) { return 0, errors.New("not supported on this OS") }

// cpuTime is only implemented on Linux.
func cpuTime() time.Duration { return 0 }
