package wire

import (
	"bytes"
	"errors"
	"io"
)

// ErrLineTooLong is returned by LineReader.ReadLine when a line exceeds the limit.
var ErrLineTooLong = errors.New("wire: line too long")

// initialReadBuf is the buffer a LineReader starts with and shrinks back to: idle peers
// should cost little memory, busy ones grow as needed.
const initialReadBuf = 512

// LineReader splits a byte stream into lines terminated by LF or CRLF, with a bound on
// line length. bufio.Reader would need a buffer as large as the longest allowed line for
// every connection; this one grows on demand and shrinks back when drained.
type LineReader struct {
	r          io.Reader
	buf        []byte
	start, end int // unread data is buf[start:end]
	scanned    int // buf[start:scanned] holds no '\n'
	max        int
}

// NewLineReader returns a reader of lines of at most max content bytes (terminator excluded).
func NewLineReader(r io.Reader, max int) *LineReader {
	return &LineReader{r: r, max: max}
}

// SetMax changes the longest line ReadLine accepts, from the next call on; what is
// buffered stays. The directory raises it once a handshake shows that the peer speaks
// long lines (wire.MaxLineNG).
func (lr *LineReader) SetMax(max int) { lr.max = max }

// Max is the longest line, in content bytes, ReadLine accepts.
func (lr *LineReader) Max() int { return lr.max }

// Buffered is the number of bytes read from the stream and not yet returned in a line.
func (lr *LineReader) Buffered() int { return lr.end - lr.start }

// SetReader makes later reads come from r; what is buffered stays.
func (lr *LineReader) SetReader(r io.Reader) { lr.r = r }

// ReadLine returns the next line without its terminator (a trailing CR before the LF is
// removed). The slice is valid until the next call. A final unterminated line at EOF is
// discarded and io.EOF returned: every complete message ends with a newline.
func (lr *LineReader) ReadLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.scanned:lr.end], '\n'); i >= 0 {
			nl := lr.scanned + i
			line := lr.buf[lr.start:nl]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			lr.start = nl + 1
			lr.scanned = lr.start
			if len(line) > lr.max {
				return nil, ErrLineTooLong
			}
			return line, nil
		}
		lr.scanned = lr.end
		// A line may hold max content bytes plus a CR before its LF.
		if lr.end-lr.start > lr.max+1 {
			return nil, ErrLineTooLong
		}
		lr.fill()
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		if n > 0 {
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
}

// fill makes room for at least one more byte at buf[end:], compacting or growing the
// buffer, and shrinking it back when it is empty and large.
func (lr *LineReader) fill() {
	if lr.start == lr.end {
		lr.start, lr.end, lr.scanned = 0, 0, 0
		if len(lr.buf) > 4*initialReadBuf {
			lr.buf = nil
		}
	}
	if lr.buf == nil {
		lr.buf = make([]byte, initialReadBuf)
		return
	}
	if lr.end < len(lr.buf) {
		return
	}
	if lr.start > 0 {
		n := copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.scanned -= lr.start
		lr.start, lr.end = 0, n
		if lr.end < len(lr.buf) {
			return
		}
	}
	size := 2 * len(lr.buf)
	if limit := lr.max + 2; size > limit {
		size = limit
	}
	if size <= len(lr.buf) {
		size = len(lr.buf) + 1
	}
	nb := make([]byte, size)
	copy(nb, lr.buf[:lr.end])
	lr.buf = nb
}
