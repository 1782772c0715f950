package nickauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"unicode/utf8"
)

// composite stands for an object or array member value in the map returned by
// parseStrictObject: its contents were checked (no duplicate keys) but are not
// returned, since no nick-auth payload field may be a container.
type composite struct{}

// objFrame is one open container while walking the token stream: an object
// (keys non-nil) or an array (keys nil).
type objFrame struct {
	keys      map[string]struct{}
	expectKey bool
}

// parseStrictObject parses data as exactly one JSON object, the way NG's
// parse_strict_json_object does (docs/protocol.md §5.3): the text must be valid
// UTF-8 JSON, its top-level value an object, no object at any depth may repeat a key
// (keys are compared after unescaping), and nothing but whitespace may follow. It
// returns the top-level members: string, bool, json.Number, nil (JSON null) or
// composite.
//
// Non-finite numbers: NG rejects the NaN/Infinity/-Infinity literals that Python's
// json module would otherwise accept; they are not JSON, so encoding/json's scanner
// rejects them here as syntax errors.
//
// The duplicate-key walk is hand-written on encoding/json's Decoder token stream:
// encoding/json's Unmarshal silently keeps the last duplicate, and nothing this
// package may depend on (the standard library without experiments, dcrd's secp256k1,
// internal/jm) rejects duplicates. (encoding/json/v2 does, but only under
// GOEXPERIMENT=jsonv2; github.com/go-json-experiment/json is only an indirect test
// dependency, via chromedp, with no stable API.) The walk is iterative (an explicit
// stack), so deeply nested input cannot exhaust the goroutine stack.
func parseStrictObject(data []byte) (map[string]any, error) {
	if !utf8.Valid(data) {
		return nil, errors.New("JSON text is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New("invalid JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("JSON payload is not an object")
	}
	top := make(map[string]any)
	stack := []*objFrame{{keys: make(map[string]struct{}), expectKey: true}}
	var curKey string // the pending top-level key, when stack depth is 1
	// value records a value (scalar or container) in the innermost container.
	value := func(v any) {
		f := stack[len(stack)-1]
		if f.keys == nil {
			return // array element
		}
		if len(stack) == 1 {
			top[curKey] = v
		}
		f.expectKey = true
	}
	for len(stack) > 0 {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("invalid JSON")
		}
		f := stack[len(stack)-1]
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				value(composite{})
				stack = append(stack, &objFrame{keys: make(map[string]struct{}), expectKey: true})
			case '[':
				value(composite{})
				stack = append(stack, &objFrame{})
			case '}', ']':
				// The Decoder has checked that the delimiter closes f.
				stack = stack[:len(stack)-1]
			}
		case string:
			if f.keys != nil && f.expectKey {
				if _, dup := f.keys[t]; dup {
					return nil, errors.New("duplicate JSON key")
				}
				f.keys[t] = struct{}{}
				f.expectKey = false
				if len(stack) == 1 {
					curKey = t
				}
				continue
			}
			value(t)
		default: // bool, json.Number, nil
			value(t)
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after JSON object")
	}
	return top, nil
}

// stringFields checks that obj has exactly the keys names, each with a JSON string
// value (no coercion), and returns the values in the order of names.
func stringFields(obj map[string]any, names ...string) ([]string, error) {
	if len(obj) != len(names) {
		return nil, errors.New("payload must have exactly the fields " + joinNames(names))
	}
	out := make([]string, len(names))
	for i, n := range names {
		v, ok := obj[n]
		if !ok {
			return nil, errors.New("payload must have exactly the fields " + joinNames(names))
		}
		s, ok := v.(string)
		if !ok {
			return nil, errors.New("field " + n + " must be a JSON string")
		}
		out[i] = s
	}
	return out, nil
}

func joinNames(names []string) string {
	var b []byte
	for i, n := range names {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, n...)
	}
	return string(b)
}

// appendJSONString appends s as a JSON string literal without HTML escaping. Every
// value the package emits (hex, base64, directory-ids, result codes) is plain ASCII
// that needs no escaping; anything else is still encoded as valid JSON.
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
