package config

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// FileSection is the config.toml section that holds this server's settings.
const FileSection = sectionDS

// FileKey names one key of config.toml: [Section] Key.
type FileKey struct{ Section, Key string }

// String renders the key as "section.key".
func (k FileKey) String() string { return k.Section + "." + k.Key }

// FileSetting is one setting as config.toml holds it.
type FileSetting struct {
	Key    string    // the setting's key in [directory_server] (e.g. "network")
	Names  []FileKey // every key Load reads it from, highest priority first ([directory_server] first)
	Secret bool      // never print the value (ops_token, tor_control_password)
}

// FileSettings returns every setting config.toml can hold, in the order Describe lists
// them. data_dir is not one of them: it locates the file.
func FileSettings() []FileSetting {
	var out []FileSetting
	for _, s := range settingsTable() {
		if len(s.toml) == 0 {
			continue
		}
		fs := FileSetting{Key: s.key, Secret: s.secret}
		for _, tk := range s.toml {
			fs.Names = append(fs.Names, FileKey{Section: tk.section, Key: tk.key})
		}
		out = append(out, fs)
	}
	return out
}

// FileValue is one setting to write with EncodeFile: its [directory_server] key and its
// value as a TOML decoder gives it (string, int64 or int, float64, bool).
type FileValue struct {
	Key   string
	Value any
}

// EncodeFile renders values as a config.toml: the comment lines of header (each
// prefixed with "# "), then [directory_server] with one "key = value" line per value,
// in the given order. A value of another type is an error; so is a key that is not a
// plain TOML bare key.
func EncodeFile(header []string, values []FileValue) ([]byte, error) {
	var b strings.Builder
	for _, h := range header {
		for line := range strings.SplitSeq(h, "\n") {
			b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
	}
	if len(header) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("[" + FileSection + "]\n")
	for _, v := range values {
		if !bareKey(v.Key) {
			return nil, fmt.Errorf("config: %q is not a bare TOML key", v.Key)
		}
		text, err := EncodeValue(v.Value)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", v.Key, err)
		}
		b.WriteString(v.Key + " = " + text + "\n")
	}
	return []byte(b.String()), nil
}

// EncodeValue renders one TOML value: a basic string (control characters, quotes and
// backslashes escaped), an integer, a float (always with a decimal point or exponent, so
// that it reads back as a float) or a boolean.
func EncodeValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		if !utf8.ValidString(v) {
			return "", fmt.Errorf("string %q is not valid UTF-8", v)
		}
		return tomlString(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		switch {
		case math.IsNaN(v):
			return "nan", nil
		case math.IsInf(v, 1):
			return "inf", nil
		case math.IsInf(v, -1):
			return "-inf", nil
		}
		s := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s, nil
	case bool:
		return strconv.FormatBool(v), nil
	}
	return "", fmt.Errorf("unsupported value type %T", v)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// bareKey reports whether k can be written unquoted: A-Za-z0-9, _ and -.
func bareKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// LoadFile loads and validates the config file at path alone, with Load: no flags, no
// environment, no .env. The data dir is the file's directory. Load's errors name the
// key as written in the file; IgnoredKeys lists its unknown [directory_server] keys.
func LoadFile(path string) (Config, error) {
	return Load(Options{
		Args:    []string{"--data-dir", filepath.Dir(path)},
		Environ: []string{"JOINMARKET_CONFIG_FILE=" + path},
	})
}
