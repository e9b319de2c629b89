package opensslconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kubepki.dev/kubepki/internal/openssltest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, conf, section, key, want string
	}{
		{"plain", "[a]\nk = v\n", "a", "k", "v"},
		{"before any section", "k = v\n[a]\n", "default", "k", "v"},
		{"spaced header", "[  a b  ]  # note\nk=v\n", "a b", "k", "v"},
		{"trailing # comment", "[a]\nk = v # note\n", "a", "k", "v"},
		{"trailing ; comment", "[a]\nk = v ; note\n", "a", "k", "v"},
		{"full-line comments", "[a]\n# k = no\n  ; k = no\nk = v\n", "a", "k", "v"},
		{"double quotes", "[a]\nk = \"  v # not a comment; \\\"q\\\"  \"  \n", "a", "k", `  v # not a comment; "q"  `},
		{"single quotes", "[a]\nk = 'it'\"'\"'s'\n", "a", "k", "it's"},
		{"quoted part", "[a]\nk = Node \"0\" cert\n", "a", "k", "Node 0 cert"},
		{"escapes", "[a]\nk = a\\#b\\;c\\\\d\\ \n", "a", "k", `a#b;c\d `},
		{"control escapes", "[a]\nk = a\\tb\\nc\n", "a", "k", "a\tb\nc"},
		{"continuation", "[a]\nk = DNS:a, \\\n  DNS:b\n", "a", "k", "DNS:a,   DNS:b"},
		{"continued comment", "[a]\n# note \\\nk = no\nk2 = v\n", "a", "k2", "v"},
		{"escaped backslash is no continuation", "[a]\nk = v\\\\\nk2 = w\n", "a", "k2", "w"},
		{"CRLF", "[a]\r\nk = v\r\n", "a", "k", "v"},
		{"BOM", "\ufeff[a]\nk = v\n", "a", "k", "v"},
		{"duplicate key, last wins", "[a]\nk = 1\nk = 2\n", "a", "k", "2"},
		{"repeated section merges", "[a]\nk = 1\n[b]\n[a]\nk2 = 2\n", "a", "k", "1"},
		{"other section's key", "[a]\nb::k = v\n", "b", "k", "v"},
		{"empty value", "[a]\nk =\n", "a", "k", ""},
		{"unterminated quote", "[a]\nk = \"v  \n", "a", "k", "v"},
		// $variables, as OpenSSL's str_copy expands them.
		{"$name", "[a]\nd = /etc\nk = $d/x\n", "a", "k", "/etc/x"},
		{"${name} and $(name)", "[a]\nd = x\nk = ${d}y$(d)\n", "a", "k", "xyx"},
		{"$name from the default section", "d = x\n[a]\nk = $d\n", "a", "k", "x"},
		{"$section::name", "[b]\nd = x\n[a]\nk = $b::d ${b::d}\n", "a", "k", "x x"},
		{"name stops at punctuation", "[a]\nd = x\nk = $d.0\n", "a", "k", "x.0"},
		{"earlier value only", "[a]\nk = 1\nk = $k$k\n", "a", "k", "11"},
		{"expanded value keeps its spaces", "[a]\nd = \" x \"\nk = $d\n", "a", "k", " x "},
		{"no expansion in quotes", "[a]\nk = \"$nothing\"\n", "a", "k", "$nothing"},
		{"escaped dollar", "[a]\nk = \\$5\n", "a", "k", "$5"},
		{"$ENV:: left as written", "[a]\nk = $ENV::HOME/.rnd\n", "a", "k", "$ENV::HOME/.rnd"},
		{"$ENV:: set in the file", "[ENV]\nHOME = /root\n[a]\nk = $ENV::HOME\n", "a", "k", "/root"},
		{"b::k expands in b", "[b]\nd = inb\n[a]\nd = ina\nb::k = $d\n", "b", "k", "inb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _, err := Parse([]byte(tt.conf), "ca.conf")
			if err != nil {
				t.Fatal(err)
			}
			e := f.Section(tt.section).Get(tt.key)
			if e == nil {
				t.Fatalf("[%s] %s not found", tt.section, tt.key)
			}
			if e.Value != tt.want {
				t.Errorf("[%s] %s = %q, want %q", tt.section, tt.key, e.Value, tt.want)
			}
			if e.Section != tt.section {
				t.Errorf("entry says section %q, want %q", e.Section, tt.section)
			}
			if want := strings.Contains(tt.want, "$ENV::"); e.Unexpanded != want {
				t.Errorf("Unexpanded = %v, want %v", e.Unexpanded, want)
			}
		})
	}
}

func TestParseStructure(t *testing.T) {
	f, diags, err := Parse([]byte("top = 1\n[b]\nx = 1\n[a]\nb::y = 2\nx = 3\nx = 4\n[Alt]\n"), "ca.conf")
	if err != nil || len(diags) > 0 {
		t.Fatalf("err %v, diagnostics %v", err, diags)
	}
	var names []string
	for _, s := range f.Sections() {
		names = append(names, fmt.Sprintf("%s@%d", s.Name, s.Line))
	}
	if got, want := strings.Join(names, " "), "default@0 b@2 a@4 Alt@8"; got != want {
		t.Errorf("sections %q, want %q", got, want)
	}
	var keys []string
	for _, e := range f.Section("b").Entries() {
		keys = append(keys, fmt.Sprintf("%s=%s@%d", e.Key, e.Value, e.Line))
	}
	if got, want := strings.Join(keys, " "), "x=1@3 y=2@5"; got != want {
		t.Errorf("[b] entries %q, want %q", got, want)
	}
	if e := f.Section("a").Get("x"); e.Value != "4" || e.Line != 7 {
		t.Errorf("[a] x = %+v, want the last setting (4, line 7)", e)
	}
	if f.Section("alt") != nil || f.SectionFold("alt") != f.Section("Alt") {
		t.Error("Section must match exactly and SectionFold ignoring case")
	}
	if f.Lookup(f.Section("a"), "top").Value != "1" || f.Lookup(nil, "top") == nil || f.Lookup(f.Section("a"), "nope") != nil {
		t.Error("Lookup must fall back to the default section")
	}
	if f.Section("a").GetFold("X") == nil || f.Section("a").Get("X") != nil {
		t.Error("Get must match exactly and GetFold ignoring case")
	}
}

func TestParseDiagnostics(t *testing.T) {
	tests := []struct {
		name, conf string
		line       int
		phrase     string
	}{
		{"malformed line", "[a]\nthis is not a setting\n", 2, "malformed line"},
		{"key with spaces", "[a]\ncommon name = x\n", 2, "malformed line"},
		{"malformed section header", "[a]\n[b\n", 2, "malformed section header"},
		{"text after a header", "[a] b\n", 1, "malformed section header"},
		{"two section prefixes", "a::b::c = v\n", 1, "one section::key at most"},
		{".include", ".include /etc/ssl/more.cnf\n", 1, ".include is not followed"},
		{"unterminated quote", "[a]\nk = \"v\n", 2, "unterminated quote"},
		{"overlong line", "[a]\nk = " + strings.Repeat("v", MaxLine) + "\n", 2, "line longer than"},
		{"overlong continued line", "[a]\n" + strings.Repeat("k\\\n", MaxLine+1) + "\n", 2, "line longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags, err := Parse([]byte(tt.conf), "ca.conf")
			if err != nil {
				t.Fatal(err)
			}
			if len(diags) != 1 || diags[0].Line != tt.line || !strings.Contains(diags[0].Message, tt.phrase) {
				t.Errorf("diagnostics %v, want one at line %d saying %q", diags, tt.line, tt.phrase)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{"NUL byte", "[a]\nk = \x00\n", "ca.conf:2: binary data"},
		{"invalid UTF-8", "[a]\n\nk = \xff\xfe\n", "ca.conf:3: binary data"},
		{"over the size limit", strings.Repeat("# padding\n", MaxSize/10+1), "ca.conf: 1048580 bytes is over the 1048576-byte limit"},
		{"variable with no value", "[a]\nk = $nope\n", "ca.conf:2: $nope has no value: no nope set in [a] or [default] before this line (openssl refuses such a file)"},
		{"variable set later", "[a]\nk = $d\nd = x\n", "ca.conf:2: $d has no value"},
		{"section variable with no value", "[b]\n[a]\nk = ${b::x}\n", "ca.conf:3: ${b::x} has no value"},
		{"lone dollar", "[a]\nk = cost 5$\n", `ca.conf:2: "$" names no variable: write \$ for a dollar sign`},
		{"unclosed brace", "[a]\nd = x\nk = ${d\n", `ca.conf:3: "${d" has no closing '}'`},
		{"unclosed parenthesis", "[a]\nd = x\nk = $(d}\n", `ca.conf:3: "$(d}" has no closing ')'`},
		{"expansion too long", "[a]\nk = " + strings.Repeat("x", 4096) + "\n" + expandTimes("k", 5) + "k2 = $k$k$k\n", "expanding $k makes the value longer than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, diags, err := Parse([]byte(tt.conf), "ca.conf")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
			var perr *Error
			if !errors.As(err, &perr) || perr.File != "ca.conf" {
				t.Errorf("err %T does not name the file", err)
			}
			if f != nil || diags != nil {
				t.Error("a file or diagnostics with the error")
			}
		})
	}
}

// expandTimes doubles key n times: k = $k$k, n lines.
func expandTimes(key string, n int) string {
	return strings.Repeat(key+" = $"+key+"$"+key+"\n", n)
}

// Hostile inputs are refused or read within the limits, whatever they
// expand to.
func TestParseBounds(t *testing.T) {
	var doubling strings.Builder
	doubling.WriteString("v0 = " + strings.Repeat("x", 60) + "\n")
	for i := 1; i < 5000; i++ {
		fmt.Fprintf(&doubling, "v%d = $v%d$v%d\n", i, i-1, i-1)
	}
	var wide strings.Builder
	// v is 32000 bytes, built by doubling since a line holds at most MaxLine.
	wide.WriteString("v = " + strings.Repeat("x", 4000) + "\n" + expandTimes("v", 3))
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&wide, "w%d = $v$v\n", i)
	}
	tests := []struct {
		name, conf, want string
	}{
		{"values doubling each line", doubling.String(), "longer than 65536 bytes"},
		{"many large expansions", wide.String(), fmt.Sprintf("more than %d bytes over the file", MaxExpanded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.conf) > MaxSize {
				t.Fatalf("input of %d bytes is over the limit", len(tt.conf))
			}
			_, _, err := Parse([]byte(tt.conf), "ca.conf")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// The real openssl reads values as Parse does, and refuses what Parse
// refuses: each value is put into a certificate request's CN.
func TestParseAgreesWithOpenSSL(t *testing.T) {
	dir := t.TempDir()
	openssltest.Run(t, dir, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "k.key")
	tests := []struct {
		name, head, cn, want string // want "" means both refuse the file
	}{
		{"plain", "", "plain", "plain"},
		{"quotes and escapes", "", `"quoted" 'it''s' a\#b`, `quoted its a#b`},
		{"comment", "", "value # comment", "value"},
		{"$name from the default section", "d = hello\n", "$d-${d}-$(d)", "hello-hello-hello"},
		{"$section::name", "[o]\nx = 1\n", "$o::x ${o::x}", "1 1"},
		{"no expansion in quotes", "", `"a $b"`, "a $b"},
		{"escaped dollar", "", `a\$b`, "a$b"},
		{"no value", "", "$undefined", ""},
		{"lone dollar", "", "a$", ""},
		{"unclosed brace", "d = x\n", "${d", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := tt.head + "[s]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = " + tt.cn + "\n"
			path := filepath.Join(dir, "c.conf")
			if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, opensslErr := openssltest.Try(t, dir, "req", "-new", "-key", "k.key", "-config", "c.conf", "-section", "s", "-noout", "-subject")
			f, _, err := Parse([]byte(conf), "c.conf")
			if tt.want == "" {
				if opensslErr == nil || err == nil {
					t.Fatalf("want both to refuse: openssl %v (%s), Parse %v", opensslErr, out, err)
				}
				return
			}
			if opensslErr != nil || err != nil {
				t.Fatalf("openssl: %v %s; Parse: %v", opensslErr, errOut, err)
			}
			if got := f.Section("dn").Get("CN").Value; got != tt.want {
				t.Errorf("Parse: CN = %q, want %q", got, tt.want)
			}
			if got := strings.TrimSpace(out); got != "subject=CN = "+tt.want {
				t.Errorf("openssl: %q, want CN = %q", got, tt.want)
			}
		})
	}
}
