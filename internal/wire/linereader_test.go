package wire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readAll(t *testing.T, lr *LineReader) ([]string, error) {
	t.Helper()
	var out []string
	for {
		l, err := lr.ReadLine()
		if err != nil {
			return out, err
		}
		out = append(out, string(l))
	}
}

func TestLineReaderFraming(t *testing.T) {
	in := "a\r\nb\nc\r\r\n\r\n\nlast-unterminated"
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		got, err := readAll(t, NewLineReader(r, 100))
		if err != io.EOF {
			t.Fatalf("err = %v", err)
		}
		want := []string{"a", "b", "c\r", "", ""}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("got %q want %q", got, want)
		}
	}
}

func TestLineReaderLimit(t *testing.T) {
	const max = 40000
	ok := strings.Repeat("x", max)
	// Exactly max content bytes with CRLF or LF is fine.
	for _, term := range []string{"\r\n", "\n"} {
		got, err := readAll(t, NewLineReader(strings.NewReader(ok+term+"y\n"), max))
		if err != io.EOF || len(got) != 2 || len(got[0]) != max || got[1] != "y" {
			t.Fatalf("at limit (%q): %v %d", term, err, len(got))
		}
	}
	// One more byte is too long, terminated or not.
	for _, in := range []string{ok + "x\r\n", ok + "x\n", ok + "xxxxxxxxx"} {
		_, err := readAll(t, NewLineReader(strings.NewReader(in), max))
		if !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("len %d: err = %v", len(in), err)
		}
	}
	// A stream without newlines is cut once it passes the limit, not buffered forever.
	lr := NewLineReader(io.MultiReader(strings.NewReader(strings.Repeat("z", 3*max)), neverReader{}), max)
	if _, err := lr.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("endless line: %v", err)
	}
}

type neverReader struct{}

func (neverReader) Read([]byte) (int, error) { select {} }

func TestLineReaderShrinks(t *testing.T) {
	big := strings.Repeat("b", 30000)
	lr := NewLineReader(strings.NewReader(big+"\nsmall\n"), 40000)
	l, err := lr.ReadLine()
	if err != nil || len(l) != 30000 {
		t.Fatal(err)
	}
	if _, err := lr.ReadLine(); err != nil {
		t.Fatal(err)
	}
	if _, err := lr.ReadLine(); err != io.EOF {
		t.Fatal(err)
	}
	if cap(lr.buf) > 4*initialReadBuf {
		t.Fatalf("buffer not released: %d", cap(lr.buf))
	}
}

func TestLineReaderManyLines(t *testing.T) {
	var b bytes.Buffer
	for i := 0; i < 5000; i++ {
		b.WriteString(strings.Repeat("q", i%700))
		b.WriteString("\r\n")
	}
	got, err := readAll(t, NewLineReader(&b, 40000))
	if err != io.EOF || len(got) != 5000 {
		t.Fatalf("%v %d", err, len(got))
	}
	for i, l := range got {
		if len(l) != i%700 {
			t.Fatalf("line %d has %d bytes", i, len(l))
		}
	}
}

// TestLineReaderSetMax: the limit can be raised between lines (after a handshake), and
// applies to what was already buffered before it was raised.
func TestLineReaderSetMax(t *testing.T) {
	const small, large = 100, MaxLineNG
	hello := strings.Repeat("h", small)
	atLarge := strings.Repeat("l", large)
	in := hello + "\r\n" + atLarge + "\r\n" + atLarge + "\n" + atLarge + "x\r\n"
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(in),
		"one byte": iotest.OneByteReader(strings.NewReader(in)),
	} {
		t.Run(name, func(t *testing.T) {
			lr := NewLineReader(r, small)
			l, err := lr.ReadLine()
			if err != nil || string(l) != hello {
				t.Fatalf("first line: %d bytes, %v", len(l), err)
			}
			lr.SetMax(large)
			if lr.Max() != large {
				t.Fatalf("Max = %d, want %d", lr.Max(), large)
			}
			for i := range 2 {
				l, err := lr.ReadLine()
				if err != nil || len(l) != large {
					t.Fatalf("line %d at the raised limit: %d bytes, %v", i+2, len(l), err)
				}
			}
			if _, err := lr.ReadLine(); !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("one byte over the raised limit: %v", err)
			}
		})
	}
	// Without raising it, the second line is too long.
	lr := NewLineReader(strings.NewReader(in), small)
	if _, err := lr.ReadLine(); err != nil {
		t.Fatal(err)
	}
	if _, err := lr.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line at the small limit: %v", err)
	}
	// An endless line is still cut at the raised limit.
	lr = NewLineReader(io.MultiReader(strings.NewReader(hello+"\n"+strings.Repeat("z", 2*large)), neverReader{}), small)
	if _, err := lr.ReadLine(); err != nil {
		t.Fatal(err)
	}
	lr.SetMax(large)
	if _, err := lr.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("endless line: %v", err)
	}
}
