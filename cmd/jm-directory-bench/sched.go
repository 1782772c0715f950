package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// schedClass names a goroutine by a function on its stack. The first match wins; the
// server's read loops, per-peer writers and flushing goroutines are what the latency
// analysis needs told apart.
var schedClasses = []struct{ name, fn string }{
	{"read_loop", "internal/server.(*Server).readLoop"},
	{"writer", "internal/peer.(*Peer).writeLoop"},
	{"flusher", "internal/peer.(*Flusher).run"},
}

// runSched reads a Go runtime execution trace (from the directory's
// /debug/pprof/trace?seconds=N) and reports, per kind of goroutine, how long goroutines
// waited between becoming runnable and running: the scheduling latency a privmsg's read
// loop pays before it can relay anything.
//
// golang.org/x/exp/trace is the Go team's parser for the trace format; the summary on
// top of it is ours.
func runSched(path string) (*report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return schedReport(f)
}

func schedReport(r io.Reader) (*report, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a Go execution trace: %w", err)
	}
	class := map[trace.GoID]string{}
	runnable := map[trace.GoID]trace.Time{}
	waits := map[string][]time.Duration{}
	events := 0
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the trace: %w", err)
		}
		events++
		if ev.Kind() != trace.EventStateTransition {
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		if _, known := class[id]; !known {
			if c := classify(st.Stack, ev.Stack()); c != "" {
				class[id] = c
			}
		}
		_, to := st.Goroutine()
		switch to {
		case trace.GoRunnable:
			runnable[id] = ev.Time()
		case trace.GoRunning:
			if t, ok := runnable[id]; ok {
				c := class[id]
				if c == "" {
					c = "other"
				}
				waits[c] = append(waits[c], ev.Time().Sub(t))
				delete(runnable, id)
			}
		}
	}
	if events == 0 {
		return nil, errors.New("the trace holds no events")
	}
	rep := newReport("sched")
	names := []string{}
	for _, c := range schedClasses {
		names = append(names, c.name)
	}
	for _, c := range append(names, "other") {
		d := waits[c]
		over := 0
		for _, w := range d {
			if w > time.Millisecond {
				over++
			}
		}
		rep.addLatencies(c+"_wait", d)
		rep.add(c+"_waits_over_1ms", over, "")
	}
	return rep, nil
}

// classify names a goroutine from the stacks of one of its events.
func classify(stacks ...trace.Stack) string {
	for _, s := range stacks {
		for fr := range s.Frames() {
			for _, c := range schedClasses {
				if strings.HasSuffix(fr.Func, c.fn) {
					return c.name
				}
			}
		}
	}
	return ""
}
