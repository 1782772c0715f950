// Package torctl is a small, strict client for Tor's control protocol: PROTOCOLINFO,
// AUTHCHALLENGE/AUTHENTICATE (SAFECOOKIE, COOKIE, password, none), GETINFO, ADD_ONION
// and DEL_ONION — what a directory node needs to publish its own onion service.
//
// Written by hand: no Go module reachable from this project's module proxy implements
// the control protocol (the well-known ones pull in a whole Tor client or are not
// served), and the subset needed here is small. The reply parser is strict (CRLF line
// ends, three-digit codes, one code per reply, bounded line length and count) and
// fuzzed.
package torctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits on what the parser accepts from tor.
const (
	MaxLineBytes  = 64 << 10 // one reply line
	MaxReplyLines = 4096     // lines in one reply, data lines included
)

// Line is one line of a reply: "250-key=value" is {Code: 250, Text: "key=value"}. A data
// line ("250+key=" followed by a dot-terminated block) carries the block in Data.
type Line struct {
	Code int
	Text string
	Data []string // the data block's lines, dot-unstuffed; nil when there is none
}

// Reply is one complete reply; its status is the code of the final line.
type Reply struct {
	Code  int
	Lines []Line
}

// OK reports a 2xx status.
func (r Reply) OK() bool { return r.Code >= 200 && r.Code < 300 }

// Err returns nil for a 2xx reply and an *Error otherwise.
func (r Reply) Err() error {
	if r.OK() {
		return nil
	}
	msg := ""
	if n := len(r.Lines); n > 0 {
		msg = r.Lines[n-1].Text
	}
	return &Error{Code: r.Code, Msg: msg}
}

// Error is a non-2xx reply from tor.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("tor: %d %s", e.Code, e.Msg) }

// ErrProtocol marks a reply that does not follow the control protocol.
var ErrProtocol = errors.New("tor control protocol violation")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// readLine reads one CRLF-terminated line of at most MaxLineBytes, without the CRLF.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > MaxLineBytes+2 {
			return "", protoErr("line longer than %d bytes", MaxLineBytes)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if len(buf) < 2 || buf[len(buf)-2] != '\r' {
		return "", protoErr("line not terminated by CRLF")
	}
	line := buf[:len(buf)-2]
	if bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, 0) >= 0 {
		return "", protoErr("stray CR or NUL in a line")
	}
	return string(line), nil
}

// ReadReply reads one reply. Asynchronous event replies (code 650) are returned like
// any other; callers that did not subscribe to events treat one as a protocol error.
func ReadReply(r *bufio.Reader) (Reply, error) {
	var rep Reply
	count := 0
	for {
		s, err := readLine(r)
		if err != nil {
			return Reply{}, err
		}
		count++
		if count > MaxReplyLines {
			return Reply{}, protoErr("reply longer than %d lines", MaxReplyLines)
		}
		if len(s) < 4 {
			return Reply{}, protoErr("short reply line %q", s)
		}
		code, err := strconv.Atoi(s[:3])
		if err != nil || s[0] < '1' || s[0] > '6' || !isDigits(s[:3]) {
			return Reply{}, protoErr("bad status code in %q", s)
		}
		if len(rep.Lines) > 0 && code != rep.Code {
			return Reply{}, protoErr("status code changed within a reply (%d, then %d)", rep.Code, code)
		}
		rep.Code = code
		l := Line{Code: code, Text: s[4:]}
		switch s[3] {
		case ' ':
			rep.Lines = append(rep.Lines, l)
			return rep, nil
		case '-':
			rep.Lines = append(rep.Lines, l)
		case '+':
			l.Data = []string{}
			for {
				d, err := readLine(r)
				if err != nil {
					return Reply{}, err
				}
				count++
				if count > MaxReplyLines {
					return Reply{}, protoErr("reply longer than %d lines", MaxReplyLines)
				}
				if d == "." {
					break
				}
				l.Data = append(l.Data, strings.TrimPrefix(d, "."))
			}
			rep.Lines = append(rep.Lines, l)
		default:
			return Reply{}, protoErr("bad separator %q in %q", s[3], s)
		}
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// KeyValues parses "K1=V1 K2="quoted value" …" into a map. Values may be quoted
// strings (with backslash escapes) or bare words. Bare words without "=" are returned
// with an empty value under their own name.
func KeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for s = strings.TrimLeft(s, " "); s != ""; s = strings.TrimLeft(s, " ") {
		end := strings.IndexAny(s, "= ")
		if end < 0 || s[end] == ' ' {
			if end < 0 {
				end = len(s)
			}
			out[s[:end]] = ""
			s = s[end:]
			continue
		}
		key := s[:end]
		if key == "" {
			return nil, protoErr("empty key in %q", s)
		}
		s = s[end+1:]
		if strings.HasPrefix(s, `"`) {
			v, rest, err := Unquote(s)
			if err != nil {
				return nil, err
			}
			out[key], s = v, rest
			continue
		}
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			sp = len(s)
		}
		out[key], s = s[:sp], s[sp:]
	}
	return out, nil
}

// Unquote reads a control-protocol QuotedString at the start of s and returns its value
// and the rest of s.
func Unquote(s string) (val, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, protoErr("expected a quoted string in %q", s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return "", "", protoErr("unterminated escape")
			}
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(e)
			}
		case '"':
			return b.String(), s[i+1:], nil
		default:
			b.WriteByte(c)
		}
	}
	return "", "", protoErr("unterminated quoted string")
}

// Quote renders s as a control-protocol QuotedString.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
