package wire

import (
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The envelope decoder is written by hand: it must capture the raw bytes of the "line"
// string token (so relays are byte-faithful), accept only JSON integers for "type", match
// keys exactly (encoding/json matches struct fields case-insensitively), reject lone UTF-16
// surrogate escapes instead of silently replacing them, reject duplicate keys, and bound
// nesting — a combination no reachable module offers.

// MaxNesting is the deepest nesting of arrays/objects accepted inside an envelope (below
// the top-level object), as joinmarket-ng's max_json_nesting_depth.
const MaxNesting = 10

// DecodeError is a typed reason why a line is not a valid envelope.
type DecodeError struct {
	Reason string // short, lower-case, stable: used in logs and close reasons
	Offset int    // byte offset where the problem was found
}

func (e *DecodeError) Error() string {
	return "malformed envelope: " + e.Reason + " at byte " + strconv.Itoa(e.Offset)
}

// Decode reasons.
var (
	errNotObject  = "not a JSON object"
	errSyntax     = "invalid JSON"
	errTypeNotInt = "type is not a non-negative integer"
	errLineNotStr = "line is not a string"
	errNoType     = "missing type"
	errNoLine     = "missing line"
	errDupKey     = "duplicate key"
	errDepth      = "nesting too deep"
	errUTF8       = "invalid UTF-8"
	errEscape     = "invalid string escape"
	errCtrl       = "control character in string"
	errTrailing   = "data after the object"
)

// Envelope is one decoded line.
type Envelope struct {
	Type int
	// Line is the decoded "line" string.
	Line string
	// raw is the "line" value exactly as it appeared on the wire, quotes included. It
	// aliases the input buffer.
	raw []byte
}

// RawLine returns the "line" value exactly as it appeared on the wire, quotes included.
// It aliases the buffer passed to Decode.
func (e *Envelope) RawLine() []byte { return e.raw }

// Decode parses one line (without its terminator) as an envelope. The returned Envelope's
// RawLine aliases b; Line does not.
func Decode(b []byte) (Envelope, error) {
	var env Envelope
	if !utf8.Valid(b) {
		return env, &DecodeError{Reason: errUTF8}
	}
	d := scanner{b: b}
	d.ws()
	if !d.eat('{') {
		return env, d.fail(errNotObject)
	}
	haveType, haveLine := false, false
	d.ws()
	if d.eat('}') {
		return env, d.fail(errNoType)
	}
	for {
		d.ws()
		kstart := d.i
		esc, err := d.str()
		if err != nil {
			return env, err
		}
		key := d.b[kstart+1 : d.i-1]
		if esc {
			key = unescape(nil, key)
		}
		d.ws()
		if !d.eat(':') {
			return env, d.fail(errSyntax)
		}
		d.ws()
		switch string(key) {
		case "type":
			if haveType {
				return env, d.fail(errDupKey)
			}
			haveType = true
			t, err := d.uint()
			if err != nil {
				return env, err
			}
			env.Type = t
		case "line":
			if haveLine {
				return env, d.fail(errDupKey)
			}
			haveLine = true
			if d.peek() != '"' {
				return env, d.fail(errLineNotStr)
			}
			vstart := d.i
			esc, err := d.str()
			if err != nil {
				return env, err
			}
			env.raw = d.b[vstart:d.i]
			if esc {
				env.Line = string(unescape(make([]byte, 0, len(env.raw)), env.raw[1:len(env.raw)-1]))
			} else {
				env.Line = string(env.raw[1 : len(env.raw)-1])
			}
		default:
			if err := d.value(0); err != nil {
				return env, err
			}
		}
		d.ws()
		if d.eat(',') {
			continue
		}
		if d.eat('}') {
			break
		}
		return env, d.fail(errSyntax)
	}
	d.ws()
	if d.i != len(d.b) {
		return env, d.fail(errTrailing)
	}
	if !haveType {
		return env, &DecodeError{Reason: errNoType, Offset: len(b)}
	}
	if !haveLine {
		return env, &DecodeError{Reason: errNoLine, Offset: len(b)}
	}
	return env, nil
}

type scanner struct {
	b []byte
	i int
}

func (d *scanner) fail(reason string) error { return &DecodeError{Reason: reason, Offset: d.i} }

func (d *scanner) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *scanner) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *scanner) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// str scans a JSON string starting at '"'. It reports whether the string contains escapes.
func (d *scanner) str() (escaped bool, err error) {
	if !d.eat('"') {
		return false, d.fail(errSyntax)
	}
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return escaped, nil
		case c < 0x20:
			return false, d.fail(errCtrl)
		case c == '\\':
			escaped = true
			if err := d.escape(); err != nil {
				return false, err
			}
		default:
			d.i++
		}
	}
	return false, d.fail(errSyntax)
}

// escape validates one escape sequence at d.i ('\\'), rejecting lone surrogates.
func (d *scanner) escape() error {
	if d.i+1 >= len(d.b) {
		return d.fail(errEscape)
	}
	switch d.b[d.i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		d.i += 2
		return nil
	case 'u':
		r, ok := hex4(d.b, d.i+2)
		if !ok {
			return d.fail(errEscape)
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return d.fail(errEscape) // low surrogate without a high one
		case r >= 0xD800 && r <= 0xDBFF:
			j := d.i + 6
			if j+1 >= len(d.b) || d.b[j] != '\\' || d.b[j+1] != 'u' {
				return d.fail(errEscape)
			}
			r2, ok := hex4(d.b, j+2)
			if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
				return d.fail(errEscape)
			}
			d.i += 12
		default:
			d.i += 6
		}
		return nil
	}
	return d.fail(errEscape)
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// uint scans the value of "type": a JSON integer without sign, fraction or exponent.
func (d *scanner) uint() (int, error) {
	start := d.i
	n := 0
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		if d.i-start >= 9 { // keep well inside int32
			return 0, d.fail(errTypeNotInt)
		}
		n = n*10 + int(d.b[d.i]-'0')
		d.i++
	}
	if d.i == start || (d.b[start] == '0' && d.i-start > 1) {
		return 0, d.fail(errTypeNotInt)
	}
	switch d.peek() {
	case '.', 'e', 'E':
		return 0, d.fail(errTypeNotInt)
	}
	return n, nil
}

// value skips any JSON value, bounding nesting.
func (d *scanner) value(depth int) error {
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{' || c == '[':
		if depth >= MaxNesting {
			return d.fail(errDepth)
		}
		d.i++
		closeC := byte('}')
		if c == '[' {
			closeC = ']'
		}
		d.ws()
		if d.eat(closeC) {
			return nil
		}
		for {
			d.ws()
			if c == '{' {
				if _, err := d.str(); err != nil {
					return err
				}
				d.ws()
				if !d.eat(':') {
					return d.fail(errSyntax)
				}
				d.ws()
			}
			if err := d.value(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.eat(',') {
				continue
			}
			if d.eat(closeC) {
				return nil
			}
			return d.fail(errSyntax)
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return d.fail(errSyntax)
}

func (d *scanner) literal(s string) error {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return d.fail(errSyntax)
	}
	d.i += len(s)
	return nil
}

func (d *scanner) digits() int {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

func (d *scanner) number() error {
	d.eat('-')
	start := d.i
	n := d.digits()
	if n == 0 || (n > 1 && d.b[start] == '0') {
		return d.fail(errSyntax)
	}
	if d.eat('.') && d.digits() == 0 {
		return d.fail(errSyntax)
	}
	if d.eat('e') || d.eat('E') {
		if !d.eat('+') {
			d.eat('-')
		}
		if d.digits() == 0 {
			return d.fail(errSyntax)
		}
	}
	return nil
}

// unescape appends the decoded form of the (already validated) string body s to dst.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(s, i+2)
			if r >= 0xD800 && r <= 0xDBFF {
				r2, _ := hex4(s, i+8)
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// ErrUnsendable is returned by the encoders for message types the directory must never send.
var ErrUnsendable = errors.New("wire: message type must never be sent")

// AppendEnvelope appends the compact envelope {"type":t,"line":"…"} for line, followed by
// CRLF. The string is escaped minimally (quote, backslash, control characters); HTML
// characters and non-ASCII text are left as they are.
func AppendEnvelope(dst []byte, t int, line string) []byte {
	dst = append(dst, `{"type":`...)
	dst = strconv.AppendInt(dst, int64(t), 10)
	dst = append(dst, `,"line":`...)
	dst = AppendQuoted(dst, line)
	return append(dst, "}\r\n"...)
}

// AppendRelay appends a compact envelope whose "line" is rawLine, a JSON string token
// exactly as received (see Envelope.RawLine), followed by CRLF. The result is never longer
// than the envelope rawLine came from.
func AppendRelay(dst []byte, t int, rawLine []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = strconv.AppendInt(dst, int64(t), 10)
	dst = append(dst, `,"line":`...)
	dst = append(dst, rawLine...)
	return append(dst, "}\r\n"...)
}

const hexDigits = "0123456789abcdef"

// AppendQuoted appends s as a JSON string. Invalid UTF-8 is replaced by U+FFFD.
func AppendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// ContentLen is the length of an encoded line without its CRLF terminator.
func ContentLen(encoded []byte) int {
	n := len(encoded)
	if n >= 2 && encoded[n-2] == '\r' && encoded[n-1] == '\n' {
		return n - 2
	}
	return n
}
