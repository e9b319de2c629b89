package distribute

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseInspect feeds what a (possibly compromised) node could send back
// to the inspect script: parseInspect must not panic, must hold no file
// content over maxRemoteFile nor more bytes than it was sent, must answer
// for exactly the files it was asked about, and must fail with one short
// line.
func FuzzParseInspect(f *testing.F) {
	for _, seed := range []string{
		"motd noise\n" + inspectMarker + "\nU 0\nF 0\nT missing\n",
		inspectMarker + "\nU 1000\nF 0\nT file\nM -rw------- 1 root root 4 Jan  1 00:00 /x\nD\n 6b 65 79\n 0a\nE\n",
		inspectMarker + "\nU 0\nF 0\nT file\nM -rwsr-sr-t 1 root wheel 0 Jan  1 00:00 /y\nD\nE\nF 1\nT link\n",
		inspectMarker + "\nU 0\nF 0\nT file\nM -rw-r--r-- 1 root root 9999999 Jan  1 00:00 /z\nB\nF 1\nT other\n",
		inspectMarker + "\nU 0\nF 0\nT file\nM -rw------- 1 root root 4 x\nD\n 6b\n",
		inspectMarker + "\nU 0\nF 0\nT file\nM -rw------- 1 root root 4 x\nD\n zz fff -1 +1 0x1\nE\n",
		inspectMarker + "\nU 0; rm -rf /\nF 0\nT fifo\n",
		inspectMarker + "\nU 0\nF 0\nT file\nM total 0\nD\nE\n",
		inspectMarker + "\nU 0\nF 0\nT file\nM -rw------- 1 " + strings.Repeat("u", 200) + " g 4 x\nB\n",
		inspectMarker + "\nU 0\nF 0\nT file\nM -rw-------\nB\n",
		inspectMarker + "\r\nU 0\r\nF 0\r\nT missing\r\n",
		inspectMarker + "\nU 0\n" + strings.Repeat("F 0\nT missing\n", 40),
		"\xff\xfe" + inspectMarker + "\n",
		"",
	} {
		f.Add([]byte(seed), uint8(1))
		f.Add([]byte(seed), uint8(2))
	}
	f.Fuzz(func(t *testing.T, out []byte, files uint8) {
		n := int(files % 8)
		st, err := parseInspect(out, n)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") || utf8.RuneCountInString(msg) > 300 {
				t.Fatalf("error is not one short line (%d runes): %q", utf8.RuneCountInString(msg), msg)
			}
			return
		}
		if len(st.files) != n {
			t.Fatalf("%d files parsed, %d asked for", len(st.files), n)
		}
		if !isUID(st.uid) || st.root != (st.uid == "0") {
			t.Fatalf("uid %q root %v", st.uid, st.root)
		}
		total := 0
		for i, rf := range st.files {
			if len(rf.data) > maxRemoteFile {
				t.Fatalf("file %d: %d bytes, over maxRemoteFile", i, len(rf.data))
			}
			if rf.kind != kindFile && (rf.data != nil || rf.perm != 0 || rf.tooBig) {
				t.Fatalf("file %d: a %s with content or mode", i, rf.kind)
			}
			if rf.perm > 0o7777 || len(rf.user) > maxQuoted || len(rf.group) > maxQuoted {
				t.Fatalf("file %d: perm %o owner %q:%q", i, rf.perm, rf.user, rf.group)
			}
			total += len(rf.data)
		}
		// Each byte is two hex digits and a separator at least.
		if total > len(out)/2 {
			t.Fatalf("%d bytes of content from %d bytes of output", total, len(out))
		}
	})
}
