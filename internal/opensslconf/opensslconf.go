// Package opensslconf reads OpenSSL configuration files (openssl.cnf, the
// ca.conf of "Kubernetes the Hard Way") the way OpenSSL's own loader does:
// [section] headers, key = value lines, # and ; comments, quotes,
// backslash escapes, line continuations and $variable expansion. It knows
// nothing of certificates: what a section means is the caller's business.
//
// The input is untrusted. Its size, its lines and what $variables expand to
// are bounded; .include is not followed and $ENV:: references, which name
// the environment of whoever runs openssl, are left as written. Where
// OpenSSL refuses a file (a $variable with no value, an unclosed ${), Parse
// returns an *Error; lines OpenSSL would refuse but whose meaning is plain
// (a malformed line, an unterminated quote) are Diagnostics and the rest of
// the file is still read.
package opensslconf

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of Parse.
const (
	// MaxSize bounds the input; a real openssl config is a few KiB.
	MaxSize = 1 << 20
	// MaxLine bounds a logical line (continuations joined), and so every
	// name and unexpanded value.
	MaxLine = 8 << 10
	// MaxValue bounds an expanded value: OpenSSL's own limit
	// (MAX_CONF_VALUE_LENGTH), past which it refuses the file.
	MaxValue = 64 << 10
	// MaxExpanded bounds the bytes that $variable expansion writes over a
	// whole file, so that values doubling each other line by line stay
	// cheap.
	MaxExpanded = 4 << 20
)

// DefaultSection holds the settings that precede any section header.
// OpenSSL looks a key up there when a section does not have it.
const DefaultSection = "default"

// File is a parsed openssl config.
type File struct {
	// Name is the file's name, as given to Parse; errors start with it.
	Name     string
	order    []*Section
	sections map[string]*Section
	folded   map[string]*Section
}

// Section is one [section]. A repeated header adds to it.
type Section struct {
	Name string
	// Line is the line of its first header, 0 for the default section
	// or one created by a section::key setting.
	Line    int
	entries []*Entry
	keys    map[string]*Entry
	folded  map[string]*Entry
}

// Entry is one key = value. A repeated key overwrites the earlier value,
// as in OpenSSL.
type Entry struct {
	Section string
	Key     string
	// Value is unquoted, unescaped and expanded.
	Value string
	// Line is where the value was set (the first line of a continued one).
	Line int
	// Unexpanded is set when Value holds a $ENV:: reference as written.
	Unexpanded bool
}

// Diagnostic is a line OpenSSL would read differently or refuse, which
// Parse skipped or read in the one plain way.
type Diagnostic struct {
	Line    int
	Message string
}

func (d Diagnostic) String() string { return fmt.Sprintf("line %d: %s", d.Line, d.Message) }

// Error is a file OpenSSL refuses, located by line (0 for the whole file).
type Error struct {
	File    string
	Line    int
	Message string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Message
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message)
}

// Sections returns the sections in order of first appearance; the default
// section is first.
func (f *File) Sections() []*Section { return f.order }

// Section finds a section by its exact name, as OpenSSL does; nil if there
// is none.
func (f *File) Section(name string) *Section { return f.sections[name] }

// SectionFold finds a section ignoring case when no name matches exactly.
// OpenSSL's names are case-sensitive: use it for hints, not for meaning.
func (f *File) SectionFold(name string) *Section {
	if s := f.sections[name]; s != nil {
		return s
	}
	return f.folded[strings.ToLower(name)]
}

// Default returns the default section (never nil).
func (f *File) Default() *Section { return f.sections[DefaultSection] }

// Lookup finds key in s and then, as OpenSSL's NCONF_get_string does, in
// the default section. s may be nil.
func (f *File) Lookup(s *Section, key string) *Entry {
	if e := s.Get(key); e != nil {
		return e
	}
	return f.Default().Get(key)
}

// Entries returns the section's settings in order of first appearance.
func (s *Section) Entries() []*Entry {
	if s == nil {
		return nil
	}
	return s.entries
}

// Get finds a key by its exact name; s may be nil.
func (s *Section) Get(key string) *Entry {
	if s == nil {
		return nil
	}
	return s.keys[key]
}

// GetFold finds a key ignoring case when no key matches exactly; s may be
// nil.
func (s *Section) GetFold(key string) *Entry {
	if e := s.Get(key); e != nil || s == nil {
		return e
	}
	return s.folded[strings.ToLower(key)]
}

func (f *File) section(name string, line int) *Section {
	if s := f.sections[name]; s != nil {
		if s.Line == 0 {
			s.Line = line
		}
		return s
	}
	s := &Section{Name: name, Line: line, keys: map[string]*Entry{}, folded: map[string]*Entry{}}
	f.sections[name] = s
	f.order = append(f.order, s)
	if _, ok := f.folded[strings.ToLower(name)]; !ok {
		f.folded[strings.ToLower(name)] = s
	}
	return s
}

func (s *Section) set(e *Entry) {
	e.Section = s.Name
	if old := s.keys[e.Key]; old != nil {
		*old = *e
		return
	}
	s.keys[e.Key] = e
	s.entries = append(s.entries, e)
	if _, ok := s.folded[strings.ToLower(e.Key)]; !ok {
		s.folded[strings.ToLower(e.Key)] = e
	}
}

// Parse reads an openssl config. name names the file in errors.
func Parse(data []byte, name string) (*File, []Diagnostic, error) {
	if len(data) > MaxSize {
		return nil, nil, &Error{File: name, Message: fmt.Sprintf("%d bytes is over the %d-byte limit for an openssl config", len(data), MaxSize)}
	}
	if err := checkText(data, name); err != nil {
		return nil, nil, err
	}
	p := &parser{f: &File{Name: name, sections: map[string]*Section{}, folded: map[string]*Section{}}, budget: MaxExpanded}
	cur := p.f.section(DefaultSection, 0)
	lines := strings.Split(strings.TrimPrefix(string(data), "\ufeff"), "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		s := strings.TrimLeft(logicalLine(lines, &i), " \t")
		switch {
		case len(s) > MaxLine:
			p.diag(n, "line longer than %d bytes; ignored", MaxLine)
		case strings.TrimSpace(s) == "" || s[0] == '#' || s[0] == ';':
		case s[0] == '[':
			sec, rest, ok := strings.Cut(s[1:], "]")
			sec, rest = strings.TrimSpace(sec), strings.TrimSpace(rest)
			if !ok || sec == "" || rest != "" && rest[0] != '#' && rest[0] != ';' {
				p.diag(n, "malformed section header %q; ignored", clip(s))
				continue
			}
			cur = p.f.section(sec, n)
		case isDirective(s, ".include"):
			p.diag(n, ".include is not followed: settings in the included file are not read")
		case isDirective(s, ".pragma"):
			// Parser options (dollarid, abspath, includedir): they change
			// only what this parser does not do.
		default:
			key, raw, ok := strings.Cut(s, "=")
			key = strings.TrimSpace(key)
			if !ok || key == "" || strings.ContainsAny(key, " \t\"'#;") {
				p.diag(n, "malformed line: want [section], key = value or a # comment; ignored")
				continue
			}
			target := cur
			if sec, k, ok := strings.Cut(key, "::"); ok && sec != "" && k != "" {
				if strings.Contains(k, "::") {
					p.diag(n, "malformed key %q: one section::key at most; ignored", clip(key))
					continue
				}
				target, key = p.f.section(sec, 0), k
			}
			e := &Entry{Key: key, Line: n}
			var err error
			if e.Value, e.Unexpanded, err = p.value(raw, target.Name, n); err != nil {
				return nil, nil, err
			}
			target.set(e)
		}
	}
	return p.f, p.diags, nil
}

type parser struct {
	f      *File
	diags  []Diagnostic
	budget int // bytes $variable expansion may still write
}

func (p *parser) diag(line int, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{Line: line, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) fail(line int, format string, args ...any) error {
	return &Error{File: p.f.Name, Line: line, Message: fmt.Sprintf(format, args...)}
}

// checkText rejects binary data: a NUL byte or invalid UTF-8.
func checkText(data []byte, file string) error {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == 0 || r == utf8.RuneError && size == 1 {
			return &Error{File: file, Line: 1 + bytes.Count(data[:i], []byte("\n")),
				Message: fmt.Sprintf("binary data (a NUL byte or invalid UTF-8 at byte %d), not an openssl config", i)}
		}
		i += size
	}
	return nil
}

// logicalLine returns lines[*i] joined with the lines that trailing
// backslashes continue it onto, advancing *i past them. It stops joining
// once the line is over MaxLine, which the caller then refuses.
func logicalLine(lines []string, i *int) string {
	line := strings.TrimSuffix(lines[*i], "\r")
	if !continued(line) {
		return line
	}
	var b strings.Builder
	for continued(line) && *i+1 < len(lines) {
		b.WriteString(line[:len(line)-1])
		*i++
		line = strings.TrimSuffix(lines[*i], "\r")
	}
	if continued(line) {
		line = line[:len(line)-1]
	}
	b.WriteString(line)
	return b.String()
}

// continued reports whether a line ends in an unescaped backslash.
func continued(line string) bool {
	n := len(line) - len(strings.TrimRight(line, `\`))
	return n%2 == 1
}

func isDirective(s, d string) bool {
	rest, ok := strings.CutPrefix(s, d)
	return ok && (rest == "" || strings.ContainsRune(" \t=", rune(rest[0])))
}

// clip shortens text quoted in a diagnostic.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "…"
}
