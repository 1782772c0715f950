package wire

import "strings"

// Public is the recipient field of a pubmsg.
const Public = "PUBLIC"

// SplitJM splits the text of a 685/687 message, "from!to!rest", at its first two '!'.
// rest may contain further '!' (chained commands). ok is false when there are fewer than
// two separators, so a relayed line always contains the '!' a reference client needs.
func SplitJM(line string) (from, to, rest string, ok bool) {
	i := strings.IndexByte(line, '!')
	if i < 0 {
		return "", "", "", false
	}
	j := strings.IndexByte(line[i+1:], '!')
	if j < 0 {
		return "", "", "", false
	}
	j += i + 1
	return line[:i], line[i+1 : j], line[j+1:], true
}

// FirstCommand returns the first command of a message body "cmd args…!cmd2 …" — the text
// up to the first space or '!' — with a leading '!' removed.
func FirstCommand(rest string) string {
	rest = strings.TrimPrefix(rest, "!")
	if i := strings.IndexAny(rest, " !"); i >= 0 {
		return rest[:i]
	}
	return rest
}

// AppendEntry appends one peerlist entry (docs/protocol.md §6.6): "nick;location", with ";D"
// when the peer has left, or ";F:a+b" with the peer's true features (sorted) when features
// is non-empty. D and F are never combined.
func AppendEntry(dst []byte, nick, location string, left bool, features []string) []byte {
	dst = append(dst, nick...)
	dst = append(dst, ';')
	dst = append(dst, location...)
	if left {
		return append(dst, ";D"...)
	}
	if len(features) > 0 {
		dst = append(dst, ";F:"...)
		for i, f := range features {
			if i > 0 {
				dst = append(dst, '+')
			}
			dst = append(dst, f...)
		}
	}
	return dst
}
