package main

import (
	"io"
	"net"
	"strings"
	"testing"
)

// TestReadChunk feeds lines split at awkward places, CRLF and LF, and a line longer than
// the initial buffer; every line comes out whole, terminator stripped.
func TestReadChunk(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	long := strings.Repeat("x", 5000)
	parts := []string{"one\r", "\ntw", "o\nthree\r\nfo", "ur", "\r\n", long[:1000], long[1000:] + "\n", "five\n", "tail-without-newline"}
	go func() {
		for _, s := range parts {
			_, _ = io.WriteString(b, s)
		}
		b.Close()
	}()
	p := &peer{conn: a, buf: make([]byte, 1024)}
	var got []string
	var err error
	for err == nil {
		err = p.readChunk(func(line []byte) { got = append(got, string(line)) })
	}
	if err != io.EOF {
		t.Fatal(err)
	}
	want := []string{"one", "two", "three", "four", long, "five"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
}

// TestReadLineKeepsRest: the handshake reader leaves what follows the first line for
// readChunk.
func TestReadLineKeepsRest(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		_, _ = io.WriteString(b, "first\r\nsecond\r\nthi")
		_, _ = io.WriteString(b, "rd\n")
		b.Close()
	}()
	p := &peer{conn: a, buf: make([]byte, 8)}
	line, err := p.readLine()
	if err != nil || string(line) != "first" {
		t.Fatalf("%q %v", line, err)
	}
	var got []string
	for err == nil {
		err = p.readChunk(func(line []byte) { got = append(got, string(line)) })
	}
	if strings.Join(got, "|") != "second|third" {
		t.Fatalf("got %q", got)
	}
}
