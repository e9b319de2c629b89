package opensslconf

import "strings"

// value reads a value as OpenSSL's loader does: "..." and '...' quote (a
// backslash in quotes takes the next character as it is), a backslash
// outside quotes escapes the next character (\n, \r, \t and \b are control
// characters), # or ; outside quotes starts a comment, unquoted white
// space around the value is dropped, and $name, ${name}, $(name) and
// $section::name outside quotes are replaced by a value set earlier in the
// file: in section (or the named one), else in the default section.
//
// It reports whether a $ENV:: reference was left as written. A reference
// with no value, an unclosed ${ or $(, or an expansion over MaxValue is an
// *Error: OpenSSL refuses the file.
func (p *parser) value(raw, section string, line int) (value string, unexpanded bool, err error) {
	raw = strings.TrimLeft(raw, " \t")
	var b strings.Builder
	keep := 0 // b's length up to the last quoted, escaped or expanded byte
	for i := 0; i < len(raw); i++ {
		switch ch := raw[i]; {
		case ch == '#' || ch == ';':
			i = len(raw)
		case ch == '\\' && i+1 < len(raw):
			i++
			b.WriteByte(unescape(raw[i]))
			keep = b.Len()
		case ch == '"' || ch == '\'':
			end := i + 1
			for end < len(raw) && raw[end] != ch {
				if raw[end] == '\\' && end+1 < len(raw) {
					end++
				}
				b.WriteByte(raw[end])
				end++
			}
			if end == len(raw) {
				p.diag(line, "unterminated quote; the value runs to the end of the line")
				return strings.TrimRight(b.String(), " \t"), unexpanded, nil
			}
			i, keep = end, b.Len()
		case ch == '$':
			next, env, err := p.expand(&b, raw, i, section, line)
			if err != nil {
				return "", false, err
			}
			unexpanded = unexpanded || env
			i, keep = next-1, b.Len()
		default:
			b.WriteByte(ch)
		}
	}
	v := b.String()
	return v[:keep] + strings.TrimRight(v[keep:], " \t"), unexpanded, nil
}

// expand writes the value of the reference at raw[dollar] to b and
// returns the index after the reference. A $ENV:: reference that the file
// does not define is written as it is, and reported.
func (p *parser) expand(b *strings.Builder, raw string, dollar int, section string, line int) (next int, env bool, err error) {
	i := dollar + 1
	var closing byte
	if i < len(raw) && (raw[i] == '{' || raw[i] == '(') {
		closing = map[byte]byte{'{': '}', '(': ')'}[raw[i]]
		i++
	}
	name := nameAt(raw, i)
	i += len(name)
	if strings.HasPrefix(raw[i:], "::") {
		section = name
		name = nameAt(raw, i+2)
		i += 2 + len(name)
	}
	if closing != 0 {
		if i >= len(raw) || raw[i] != closing {
			return 0, false, p.fail(line, "%q has no closing %q (openssl refuses such a file)", clip(raw[dollar:]), closing)
		}
		i++
	}
	ref := raw[dollar:i]
	if name == "" {
		return 0, false, p.fail(line, "%q names no variable: write \\$ for a dollar sign (openssl refuses such a file)", clip(ref))
	}
	e := p.f.sections[section].Get(name)
	if e == nil && section == "ENV" {
		// The environment of whoever runs openssl: unknown here, and not
		// this process's to read.
		b.WriteString(ref)
		return i, true, nil
	}
	if e == nil {
		e = p.f.Default().Get(name)
	}
	if e == nil {
		return 0, false, p.fail(line, "%s has no value: no %s set in [%s] or [%s] before this line (openssl refuses such a file)", clip(ref), clip(name), clip(section), DefaultSection)
	}
	if b.Len()+len(e.Value) > MaxValue {
		return 0, false, p.fail(line, "expanding %s makes the value longer than %d bytes (openssl refuses such a file)", clip(ref), MaxValue)
	}
	if p.budget -= len(e.Value); p.budget < 0 {
		return 0, false, p.fail(line, "$variable expansion writes more than %d bytes over the file", MaxExpanded)
	}
	b.WriteString(e.Value)
	return i, e.Unexpanded, nil
}

// nameAt returns the run of name characters (letters, digits, _) at s[i:].
func nameAt(s string, i int) string {
	j := i
	for j < len(s) && (s[j] == '_' || 'a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z' || '0' <= s[j] && s[j] <= '9') {
		j++
	}
	return s[i:j]
}

func unescape(ch byte) byte {
	switch ch {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	}
	return ch
}
