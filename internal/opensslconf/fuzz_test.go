package opensslconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must not panic; it returns
// either an *Error naming the file or a File within the limits whose every
// entry and section is where it says it is; and a File written back out
// (format) parses to the same sections, keys and values, so a value never
// holds a $reference that expansion resolved: an unresolved one would be
// expanded again, or refused, on the second reading.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../cluster/testdata/caconf/*.conf")
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"[a]\nk = \"unterminated\n",
		"a::b::c = \\\n\\\n",
		"d = x\n[a]\nk = $d${d}$(d)$a::k\\$d \"$d\" '$d' # $d\n",
		"[ENV]\nX = 1\n[a]\nk = $ENV::X $ENV::HOME\nk2 = $k\n",
		"v = xxxxxxxx\nv = $v$v\nv = $v$v\nv = $v$v\nv = $v$v\n",
		"[a]\nk = ${\nk = $(x}\nk = $::\n",
		"\ufeff[ a b ] ; c\r\n::k = v\r\nk:: = v\\\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, diags, err := Parse(data, "fuzz.conf")
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || perr.File != "fuzz.conf" || !strings.HasPrefix(err.Error(), "fuzz.conf") {
				t.Fatalf("error %q (%T) does not name the file", err, err)
			}
			if file != nil || diags != nil {
				t.Fatal("a file or diagnostics with the error")
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, d := range diags {
			if d.Line < 1 || d.Line > lines || d.Message == "" || strings.ContainsAny(d.Message, "\n\r") {
				t.Fatalf("malformed diagnostic %#v", d)
			}
		}
		if file.Sections()[0] != file.Default() {
			t.Fatal("the default section is not first")
		}
		for _, s := range file.Sections() {
			if file.Section(s.Name) != s || s.Line < 0 || s.Line > lines {
				t.Fatalf("section %q misplaced (line %d)", s.Name, s.Line)
			}
			for _, e := range s.Entries() {
				if s.Get(e.Key) != e || e.Section != s.Name || e.Line < 1 || e.Line > lines {
					t.Fatalf("entry %#v misplaced in [%s]", e, s.Name)
				}
				if len(e.Value) > MaxValue {
					t.Fatalf("value of %d bytes", len(e.Value))
				}
				if !e.Unexpanded && strings.Contains(e.Value, "$ENV::") && !strings.Contains(string(data), `\$`) && !strings.ContainsAny(string(data), `"'`) {
					t.Fatalf("[%s] %s = %q holds a reference but is not marked Unexpanded", s.Name, e.Key, e.Value)
				}
			}
		}
		out, ok := format(file)
		if !ok {
			return // a value too long to write on one line
		}
		again, _, err := Parse(out, "fuzz.conf")
		if err != nil {
			t.Fatalf("formatted file does not parse: %v\n%s", err, out)
		}
		if a, b := dump(file), dump(again); a != b {
			t.Fatalf("formatted file reads differently:\n%s\nwant\n%s\nformatted:\n%s", b, a, out)
		}
	})
}

// format writes a File back as an openssl config in which every value is
// escaped, so it holds no quote, comment or $reference. It reports false
// when a line would be over MaxLine.
func format(f *File) ([]byte, bool) {
	var b strings.Builder
	for _, s := range f.Sections() {
		b.WriteString("[" + s.Name + "]\n")
		for _, e := range s.Entries() {
			line := e.Key + " = " + escape(e.Value)
			if len(line) > MaxLine {
				return nil, false
			}
			b.WriteString(line + "\n")
		}
	}
	return []byte(b.String()), true
}

func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\b':
			b.WriteString(`\b`)
		case c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
			b.WriteByte(c)
		default:
			b.WriteByte('\\')
			b.WriteByte(c)
		}
	}
	return b.String()
}

// dump lists sections, keys and values in order.
func dump(f *File) string {
	var b strings.Builder
	for _, s := range f.Sections() {
		b.WriteString("[" + s.Name + "]\n")
		for _, e := range s.Entries() {
			b.WriteString(e.Key + "=" + escape(e.Value) + "\n")
		}
	}
	return b.String()
}
