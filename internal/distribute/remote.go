package distribute

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// remote runs POSIX sh scripts on a node, one exec session each.
type remote struct {
	client  *ssh.Client
	timeout time.Duration
}

// maxStderr bounds how much of a command's stderr is kept for its error.
const maxStderr = 4 << 10

// run runs script under /bin/sh on the node, with stdin (if not nil) as its
// standard input, and returns its standard output, at most maxOut bytes. A
// failure carries the script's stderr.
func (s *remote) run(ctx context.Context, script string, stdin []byte, maxOut int) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sess, err := s.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	defer sess.Close()
	stop := context.AfterFunc(cctx, func() { sess.Close() })
	defer stop()

	stdout := &cappedBuffer{max: maxOut}
	stderr := &cappedBuffer{max: maxStderr, truncate: true}
	sess.Stdout, sess.Stderr = stdout, stderr
	if stdin != nil {
		sess.Stdin = bytes.NewReader(stdin)
	}
	// The login shell only starts /bin/sh: the script is POSIX sh whatever
	// the user's shell is.
	err = sess.Run("/bin/sh -c " + shellQuote(script))
	switch {
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case cctx.Err() != nil:
		return nil, fmt.Errorf("remote command took longer than %v", s.timeout)
	case err != nil:
		msg := oneLine(stderr.String())
		var exit *ssh.ExitError
		if errors.As(err, &exit) && msg != "" {
			return nil, fmt.Errorf("%s (exit status %d)", msg, exit.ExitStatus())
		}
		if msg != "" {
			return nil, fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	return stdout.Bytes(), nil
}

// oneLine joins the non-empty lines of s with "; ".
func oneLine(s string) string {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// cappedBuffer is a bytes.Buffer that holds at most max bytes: beyond that
// it fails the write, or with truncate drops the rest.
type cappedBuffer struct {
	bytes.Buffer
	max      int
	truncate bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		if !b.truncate {
			return 0, fmt.Errorf("remote output larger than %d bytes", b.max)
		}
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// inspectMarker starts the inspect script's output, so that whatever a
// login script prints before it is ignored.
const inspectMarker = "KUBEPKI-INSPECT-1"

// remoteKind is what a remote path is.
type remoteKind string

const (
	kindMissing remoteKind = "missing"
	kindFile    remoteKind = "file"
	kindLink    remoteKind = "link"
	kindOther   remoteKind = "other"
)

// remoteFile is what inspect found at one path.
type remoteFile struct {
	kind remoteKind
	// perm is the permission bits, with setuid, setgid and sticky as
	// 04000, 02000 and 01000; user and group are the owner's names.
	perm        uint32
	user, group string
	// data is the content, unless tooBig.
	data   []byte
	tooBig bool
}

// nodeState is what inspect found on the node.
type nodeState struct {
	uid   string
	root  bool
	files []remoteFile
}

// inspect reads the type, mode, owner and content of every item's remote
// path in one session. The content is read with od, which every POSIX
// system has (unlike sha256sum), as hex.
func (s *remote) inspect(ctx context.Context, items []item) (nodeState, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `LC_ALL=C
export LC_ALL
echo %s
printf 'U %%s\n' "$(id -u)"
i() {
	printf 'F %%s\n' "$1"
	if [ -L "$2" ]; then echo 'T link'; return 0; fi
	if [ ! -e "$2" ]; then echo 'T missing'; return 0; fi
	if [ ! -f "$2" ]; then echo 'T other'; return 0; fi
	echo 'T file'
	m=$(ls -ld -- "$2") || exit 1
	printf 'M %%s\n' "$m"
	n=$(wc -c < "$2") || exit 1
	if [ $n -gt %d ]; then echo B; return 0; fi
	echo D
	od -A n -v -t x1 -- "$2" || exit 1
	echo E
}
`, inspectMarker, maxRemoteFile)
	for n, it := range items {
		fmt.Fprintf(&b, "i %d %s\n", n, shellQuote(it.remote))
	}
	out, err := s.run(ctx, b.String(), nil, len(items)*4*maxRemoteFile+64<<10)
	if err != nil {
		return nodeState{}, err
	}
	return parseInspect(out, len(items))
}

// parseInspect parses the inspect script's output for n files. The output
// comes from the node, which may be compromised: anything but the exact
// shape the script prints is an error, no file's content may exceed
// maxRemoteFile, and error messages quote at most a clipped line.
func parseInspect(out []byte, n int) (nodeState, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var line string
	next := func() bool {
		if !sc.Scan() {
			return false
		}
		line = sc.Text()
		return true
	}
	fail := func(format string, args ...any) (nodeState, error) {
		return nodeState{}, fmt.Errorf("unexpected output from the node: "+format, args...)
	}
	// quote quotes what the node sent and clips the quoted form: a byte
	// that is not UTF-8 quotes to four characters, so clipping before
	// quoting would not bound the error line.
	quote := func(s string) string {
		q := strconv.Quote(s)
		if len(q) > maxQuoted {
			q = q[:maxQuoted] + "…"
		}
		return q
	}
	for {
		if !next() {
			return fail("no %s marker", inspectMarker)
		}
		if line == inspectMarker {
			break
		}
	}
	if !next() || !strings.HasPrefix(line, "U ") {
		return fail("no uid line")
	}
	st := nodeState{uid: strings.TrimSpace(line[2:])}
	if !isUID(st.uid) {
		return fail("uid %s", quote(st.uid))
	}
	st.root = st.uid == "0"
	for i := range n {
		if !next() || line != fmt.Sprintf("F %d", i) {
			return fail("file %d: got %s", i, quote(line))
		}
		if !next() || !strings.HasPrefix(line, "T ") {
			return fail("file %d: no type line", i)
		}
		rf := remoteFile{kind: remoteKind(line[2:])}
		switch rf.kind {
		case kindMissing, kindLink, kindOther:
			st.files = append(st.files, rf)
			continue
		case kindFile:
		default:
			return fail("file %d: type %s", i, quote(string(rf.kind)))
		}
		if !next() || !strings.HasPrefix(line, "M ") {
			return fail("file %d: no ls line", i)
		}
		var err error
		if rf.perm, rf.user, rf.group, err = parseLs(line[2:]); err != nil {
			return fail("file %d: %s", i, quote(err.Error()))
		}
		if !next() {
			return fail("file %d: no content", i)
		}
		switch line {
		case "B":
			rf.tooBig = true
		case "D":
			var data []byte
			for {
				if !next() {
					return fail("file %d: content not terminated", i)
				}
				if line == "E" {
					break
				}
				for _, tok := range strings.Fields(line) {
					v, err := strconv.ParseUint(tok, 16, 8)
					if err != nil {
						return fail("file %d: od output %s", i, quote(tok))
					}
					if len(data) == maxRemoteFile {
						return fail("file %d: more than the %d bytes it may have", i, maxRemoteFile)
					}
					data = append(data, byte(v))
				}
			}
			rf.data = data
		default:
			return fail("file %d: got %s", i, quote(line))
		}
		st.files = append(st.files, rf)
	}
	if err := sc.Err(); err != nil {
		return nodeState{}, err
	}
	return st, nil
}

// maxQuoted bounds how much of a line from the node an error quotes.
const maxQuoted = 80

// isUID reports whether s is what id -u prints: a decimal number.
func isUID(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseLs reads the mode and owner from `ls -ld` output:
// "-rw------- 1 root root 227 Jan  1 00:00 /path".
func parseLs(s string) (perm uint32, user, group string, err error) {
	f := strings.Fields(s)
	if len(f) < 4 || len(f[0]) < 10 {
		return 0, "", "", fmt.Errorf("ls output %q", s)
	}
	m := f[0][1:10]
	for i := range 9 {
		bit := uint32(1) << (8 - i)
		c := m[i]
		switch {
		case c == "rwxrwxrwx"[i]:
			perm |= bit
		case c == '-':
		case i%3 == 2 && (c == 's' || c == 'S' || c == 't' || c == 'T'):
			if c == 's' || c == 't' {
				perm |= bit
			}
			perm |= 0o1000 << (2 - i/3) // s in the user, group, other triplet: setuid, setgid, sticky
		default:
			return 0, "", "", fmt.Errorf("ls mode %q", f[0])
		}
	}
	if len(f[2]) > maxQuoted || len(f[3]) > maxQuoted {
		return 0, "", "", errors.New("ls owner longer than any user or group name")
	}
	return perm, f[2], f[3], nil
}

// compare says what installing it over rf means: Created, Updated (and
// why) or Unchanged. Owners count only when the SSH user is root.
func compare(it item, rf remoteFile, root bool) (Action, string, error) {
	switch rf.kind {
	case kindMissing:
		return Created, "", nil
	case kindLink:
		return Updated, "was a symbolic link", nil
	case kindOther:
		return "", "", errors.New("exists and is not a regular file")
	}
	var why []string
	if rf.tooBig || sha256Hex(rf.data) != it.sum {
		why = append(why, "content")
	}
	if rf.perm != uint32(it.mode) {
		why = append(why, fmt.Sprintf("mode %04o (want %04o)", rf.perm, uint32(it.mode)))
	}
	if root && it.user != "" && (rf.user != it.user || (it.group != "" && rf.group != it.group)) {
		why = append(why, fmt.Sprintf("owner %s:%s (want %s)", rf.user, rf.group, it.owner()))
	}
	if len(why) == 0 {
		return Unchanged, "", nil
	}
	return Updated, strings.Join(why, ", "), nil
}

// install writes items in one session, each atomically, in two phases.
// First every file's content, read from stdin with dd bs=1 (the only POSIX
// way to take an exact number of bytes from a shared pipe), goes to a new
// temporary file beside its target, so the rename stays on one file
// system; each is checked for size, chowned (as root) and chmodded.
// Directories are made as needed, 0700 when they hold private keys. Only
// when all are in place are they synced and renamed over their targets,
// in order (the manifest last): a failure while sending leaves the node's
// files as they were, and a certificate and its key change together.
func (s *remote) install(ctx context.Context, items []item, root bool) error {
	var b, stdin strings.Builder
	tmps := make([]string, len(items))
	var quotedTmps, quotedDirs []string
	for i, it := range items {
		dir := path.Dir(it.remote)
		tmps[i] = path.Join(dir, "."+path.Base(it.remote)+".kubepki-"+rand.Text()[:12]+".tmp")
		quotedTmps = append(quotedTmps, shellQuote(tmps[i]))
		if q := shellQuote(dir); !contains(quotedDirs, q) {
			quotedDirs = append(quotedDirs, q)
		}
	}
	fmt.Fprintf(&b, `set -eu
umask 077
trap 'rm -f -- %s' EXIT
trap 'exit 1' HUP INT TERM
fail() { echo "$1: $2" >&2; exit 1; }
# mkd DIR MODE PATH: make DIR (and its parents, 0755) with MODE if missing.
mkd() {
	[ -d "$1" ] && return 0
	(umask 022 && mkdir -p -- "$1") || fail "$3" "cannot make directory $1"
	chmod "$2" -- "$1" || fail "$3" "cannot chmod directory $1"
}
# put TMP SIZE MODE OWNER PATH: the next SIZE bytes of stdin to a new TMP.
put() {
	set -C
	if [ "$2" -gt 0 ]; then
		dd bs=1 count="$2" 2>/dev/null >"$1" || fail "$5" "cannot write $1"
	else
		: >"$1" || fail "$5" "cannot write $1"
	fi
	set +C
	n=$(wc -c <"$1")
	[ $n -eq "$2" ] || fail "$5" "short write: $n of $2 bytes reached the node"
	if [ -n "$4" ]; then chown -- "$4" "$1" || fail "$5" "cannot chown to $4"; fi
	chmod "$3" -- "$1" || fail "$5" "cannot chmod"
}
# mvf TMP FILE PATH: rename TMP over FILE (replacing a symlink, not its target).
mvf() {
	if [ -d "$2" ] && [ ! -L "$2" ]; then fail "$3" "is a directory"; fi
	if [ -L "$2" ]; then rm -f -- "$2"; fi
	mv -f -- "$1" "$2" || fail "$3" "cannot rename $1"
}
`, strings.Join(quotedTmps, " "))
	for i, it := range items {
		owner := ""
		if root {
			owner = it.owner()
		}
		fmt.Fprintf(&b, "mkd %s %04o %s\n", shellQuote(path.Dir(it.remote)), uint32(it.dirMode), shellQuote(it.path))
		fmt.Fprintf(&b, "put %s %d %04o %s %s\n", shellQuote(tmps[i]), len(it.data), uint32(it.mode), shellQuote(owner), shellQuote(it.path))
		stdin.Write(it.data)
	}
	// sync FILE… is GNU and busybox; elsewhere, sync everything.
	fmt.Fprintf(&b, "sync -- %s 2>/dev/null || sync\n", strings.Join(quotedTmps, " "))
	for i, it := range items {
		fmt.Fprintf(&b, "mvf %s %s %s\n", shellQuote(tmps[i]), shellQuote(it.remote), shellQuote(it.path))
	}
	fmt.Fprintf(&b, "sync -- %s 2>/dev/null || :\n", strings.Join(quotedDirs, " "))
	_, err := s.run(ctx, b.String(), []byte(stdin.String()), 4<<10)
	return err
}

func (it item) owner() string {
	if it.group == "" {
		return it.user
	}
	return it.user + ":" + it.group
}

// shellQuote returns s as a single POSIX sh word: in single quotes, each
// single quote in s closing the quotes, escaped, and reopening them.
// Nothing in it is expanded.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// quoteIfNeeded quotes s for a shell unless it is plainly safe as it is,
// for commands shown to the user.
func quoteIfNeeded(s string) string {
	if s == "" {
		return "''"
	}
	for _, c := range s {
		if !safeChar(c) {
			return shellQuote(s)
		}
	}
	return s
}

func safeChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+@,=:/%-", c)
}

// checkPath accepts a clean absolute path of letters, digits and ._+@,=:-~
// only: catalog paths are, and anything else is a mistake we will not
// hand to a remote shell, quoted or not.
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return errors.New("not an absolute path")
	}
	if path.Clean(p) != p || p == "/" {
		return errors.New("not a clean path to a file (no //, . or .. components, no trailing /)")
	}
	if len(p) > 4096 {
		return errors.New("path too long")
	}
	for _, c := range p {
		if !safeChar(c) && c != '~' {
			return fmt.Errorf("character %q not allowed in a remote path", c)
		}
	}
	return nil
}

// parseOwner splits "user:group" (or "user"), checking both are plain
// names or numeric ids.
func parseOwner(owner string) (user, group string, err error) {
	if owner == "" {
		return "", "", nil
	}
	user, group, hasGroup := strings.Cut(owner, ":")
	if !validName(user) || hasGroup && !validName(group) {
		return "", "", fmt.Errorf("owner %q: not user or user:group", owner)
	}
	return user, group, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
