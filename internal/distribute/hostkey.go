package distribute

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// KnownHosts checks host keys against known_hosts files. There is no trust
// on first use: a host that is not on file is refused, and so is one whose
// key differs from the one on file.
type KnownHosts struct {
	files   []string
	missing []string
	check   ssh.HostKeyCallback
}

// LoadKnownHosts reads known_hosts files. A file that does not exist counts
// as empty (every host is then unknown, and the error says how to add it).
func LoadKnownHosts(files ...string) (*KnownHosts, error) {
	if len(files) == 0 {
		return nil, errors.New("known_hosts: no file given")
	}
	k := &KnownHosts{files: files}
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			k.missing = append(k.missing, f)
			continue
		}
		existing = append(existing, f)
	}
	check, err := knownhosts.New(existing...)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	k.check = check
	return k, nil
}

// HostKeyCallback checks the key a host offers, for ssh.ClientConfig. A
// refusal is a *HostKeyError that says what to do about it.
func (k *KnownHosts) HostKeyCallback(hostname string, remote net.Addr, key ssh.PublicKey) error {
	err := k.check(hostname, remote, key)
	if err == nil {
		return nil
	}
	offered := fmt.Sprintf("%s %s", key.Type(), ssh.FingerprintSHA256(key))
	name := knownHostsName(hostname)
	file := k.files[0]
	var keyErr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	switch {
	case errors.As(err, &revoked):
		return &HostKeyError{Address: hostname, Revoked: true, msg: fmt.Sprintf(
			"host key for %s is revoked: %s:%d marks %s as @revoked; refusing to connect",
			hostname, revoked.Revoked.Filename, revoked.Revoked.Line, offered)}
	case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
		where := strings.Join(k.files, ", ")
		if len(k.missing) > 0 {
			where += " (" + strings.Join(k.missing, ", ") + " does not exist)"
		}
		host, port := splitHostPort(hostname)
		return &HostKeyError{Address: hostname, Unknown: true, msg: fmt.Sprintf(
			"host key for %s is unknown: %s is not in %s, and kubepki never trusts a key on first use. "+
				"The host offered %s; check it against the node's own key (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on its console), "+
				"then add it with: ssh-keyscan -p %s %s >> %s",
			hostname, name, where, offered, port, quoteIfNeeded(host), quoteIfNeeded(file))}
	case errors.As(err, &keyErr):
		var known []string
		for _, w := range keyErr.Want {
			known = append(known, fmt.Sprintf("%s:%d has %s %s", w.Filename, w.Line, w.Key.Type(), ssh.FingerprintSHA256(w.Key)))
		}
		host, port := splitHostPort(hostname)
		return &HostKeyError{Address: hostname, Changed: true, msg: fmt.Sprintf(
			"host key for %s CHANGED: %s, but the host offered %s. "+
				"This may be a man-in-the-middle attack, or the host was reinstalled; refusing to connect. "+
				"If the change is expected, verify the new key, remove the old one with ssh-keygen -R %s -f %s "+
				"and add the new one with ssh-keyscan -p %s %s >> %s",
			hostname, strings.Join(known, "; "), offered, quoteIfNeeded(name), quoteIfNeeded(file),
			port, quoteIfNeeded(host), quoteIfNeeded(file))}
	}
	return &HostKeyError{Address: hostname, msg: fmt.Sprintf("host key for %s: %v", hostname, err)}
}

// Algorithms returns the host key algorithms of the keys on file for
// address, so that a host with several host keys offers one we know (and a
// mismatch is a changed key, not a key of another type); nil if none are
// on file.
func (k *KnownHosts) Algorithms(address string, remote net.Addr) []string {
	// Probe with a key no host has: the mismatch lists the keys on file.
	probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
	if err != nil {
		return nil
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(k.check(address, remote, probe), &keyErr) {
		return nil
	}
	var algs []string
	add := func(a ...string) {
		for _, x := range a {
			if !contains(algs, x) {
				algs = append(algs, x)
			}
		}
	}
	for _, w := range keyErr.Want {
		if t := w.Key.Type(); t == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(t)
		}
	}
	return algs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// HostKeyError is a refused host key.
type HostKeyError struct {
	// Address is the host:port dialled.
	Address string
	// Unknown: no key on file for the host. Changed: keys on file, none of
	// them the one offered. Revoked: the key is marked @revoked.
	Unknown, Changed, Revoked bool
	msg                       string
}

func (e *HostKeyError) Error() string { return e.msg }

// knownHostsName is how known_hosts spells host:port: "host" for port 22,
// else "[host]:port".
func knownHostsName(address string) string { return knownhosts.Normalize(address) }

func splitHostPort(address string) (host, port string) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return address, DefaultPort
	}
	return host, port
}
