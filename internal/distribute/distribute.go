// Package distribute installs node bundles on their nodes over SSH.
//
// It speaks plain SSH (golang.org/x/crypto/ssh) and runs only POSIX sh
// commands in exec sessions, so a node needs nothing but an sshd and a
// POSIX userland (sh, id, ls, wc, od, dd, mkdir, chmod, chown, mv, rm, sync):
// no sftp subsystem, no agent, no Python.
//
// For each node, Push
//
//  1. connects, checking the host key against known_hosts: an unknown host
//     or a changed key is refused, there is no trust on first use;
//  2. reads every target file back in one session (its type, mode, owner
//     and content) and compares it with the bundle;
//  3. installs the new and changed files in one more session, atomically
//     each: the contents go over stdin into temporary files beside their
//     targets, which are chowned (when the SSH user is root), chmodded and
//     synced; only when all are in place are they renamed over their
//     targets, the bundle's manifest (at ManifestPath) last.
//
// Unchanged files are not touched. With DryRun nothing is written.
package distribute

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"kubepki.dev/kubepki/internal/bundle"
	"kubepki.dev/kubepki/internal/cluster"
)

// ManifestPath is where Push installs the bundle's manifest (bundle.Manifest:
// every file's path, mode, owner and SHA-256) on the node, below the remote
// root. It is written last, so it describes a completed push.
const ManifestPath = "/etc/kubepki/manifest.json"

// Defaults of Options.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultCommandTimeout = 2 * time.Minute
	DefaultParallel       = 4
	// DefaultPort is the SSH port of an address without one.
	DefaultPort = "22"
	// DefaultUser is the SSH user of a node without one: the files go to
	// root-owned paths.
	DefaultUser = "root"
)

// maxRemoteFile bounds how much of an existing remote file is read back
// for the comparison; a larger file is simply replaced.
const maxRemoteFile = 1 << 20

// Target is one node's SSH destination.
type Target struct {
	// Node is the node's name, used in reports and errors and to expand
	// "{node}" in Options.RemoteRoot.
	Node string `json:"node"`
	// Address is host:port.
	Address string `json:"address"`
	// User is the SSH login.
	User string `json:"user"`
}

// TargetFor returns the SSH destination of a node: its ssh.address (host or
// host:port), else its first IP, on port 22 unless the address names one;
// its ssh.user, else root.
func TargetFor(n cluster.Node) (Target, error) {
	addr := n.SSH.Address
	if addr == "" {
		if len(n.IPs) == 0 {
			return Target{}, fmt.Errorf("node %s: no ssh.address and no IPs to reach it by", n.Name)
		}
		addr = n.IPs[0]
	}
	hostport, err := normalizeAddress(addr)
	if err != nil {
		return Target{}, fmt.Errorf("node %s: ssh.address %q: %w", n.Name, addr, err)
	}
	user := n.SSH.User
	if user == "" {
		user = DefaultUser
	}
	return Target{Node: n.Name, Address: hostport, User: user}, nil
}

// normalizeAddress turns host, host:port, an IPv6 literal or [v6]:port into
// host:port.
func normalizeAddress(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a host name, an IPv4 address, or a (bracketed) IPv6 one.
		host, port = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), DefaultPort
		if strings.Contains(host, ":") && net.ParseIP(host) == nil {
			return "", errors.New("not a host, host:port or IP address")
		}
	}
	if host == "" {
		return "", errors.New("empty host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

// Options say how Push connects and what it does.
type Options struct {
	// HostKeyCallback checks the node's host key; required. KnownHosts
	// makes one from a known_hosts file.
	HostKeyCallback ssh.HostKeyCallback
	// HostKeyAlgorithms, if set, returns the host key algorithms to accept
	// for an address (KnownHosts supplies those of the keys on file, so a
	// host that has several keys offers the one we know).
	HostKeyAlgorithms func(address string, remote net.Addr) []string
	// Auth are the client's credentials; required (see LoadCredentials).
	Auth []ssh.AuthMethod
	// Timeout bounds connecting to a node: the TCP dial, the SSH handshake
	// and authentication. Default DefaultTimeout.
	Timeout time.Duration
	// CommandTimeout bounds each remote command. Default
	// DefaultCommandTimeout.
	CommandTimeout time.Duration
	// RemoteRoot, if set, is an absolute directory prefixed to every remote
	// path, as if it were the node's "/" (a chroot, or a test directory).
	// "{node}" in it is replaced by the node's name.
	RemoteRoot string
	// DryRun connects and compares, and writes nothing.
	DryRun bool
	// Parallel bounds how many nodes PushAll handles at once. Default
	// DefaultParallel.
	Parallel int
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	return o
}

// Action is what Push did, or with DryRun would do, with one file.
type Action string

// Actions.
const (
	// Unchanged: the node's file has the bundle's content, mode and owner.
	Unchanged Action = "unchanged"
	// Created: the file did not exist.
	Created Action = "created"
	// Updated: the file's content, mode, owner or type differed; it was
	// replaced as a whole.
	Updated Action = "updated"
)

// FileResult is the outcome for one file.
type FileResult struct {
	// Path is the path on the node, without the remote root.
	Path   string `json:"path"`
	Action Action `json:"action"`
	// SHA256 is the hex SHA-256 of the bundle's content.
	SHA256 string `json:"sha256"`
	// Mode is the bundle's mode, as octal text.
	Mode string `json:"mode"`
	// Detail says what differed, for updated files.
	Detail string `json:"detail,omitempty"`
}

// Report is the outcome for one node.
type Report struct {
	Node    string `json:"node"`
	Address string `json:"address"`
	User    string `json:"user"`
	// RemoteRoot is the expanded Options.RemoteRoot, if any.
	RemoteRoot string `json:"remoteRoot,omitempty"`
	// DryRun: the actions are what a push would do; nothing was written.
	DryRun bool `json:"dryRun,omitempty"`
	// Error is why the node failed, without the node's name; empty if it
	// succeeded.
	Error string `json:"error,omitempty"`
	// Notes are remarks that are not errors (e.g. owners left alone
	// because the SSH user is not root).
	Notes []string `json:"notes,omitempty"`
	// Files are the bundle's files and the manifest, in bundle order, the
	// manifest last; empty on an error (an install fails before it renames
	// anything, unless a rename itself fails, which the error names).
	Files []FileResult `json:"files"`
}

// Count returns how many files got action a.
func (r Report) Count(a Action) int {
	n := 0
	for _, f := range r.Files {
		if f.Action == a {
			n++
		}
	}
	return n
}

// NodeError is the error of one node: "node-1 (10.0.0.2:22): dial:
// connection refused".
type NodeError struct {
	Node    string
	Address string
	Err     error
}

func (e *NodeError) Error() string { return fmt.Sprintf("%s (%s): %v", e.Node, e.Address, e.Err) }
func (e *NodeError) Unwrap() error { return e.Err }

// Job is one node to push to.
type Job struct {
	Target Target
	Bundle *bundle.Bundle
}

// PushAll pushes every job, at most opts.Parallel at a time, and returns
// their reports in the jobs' order; a failed node has its Report.Error set
// and does not stop the others.
func PushAll(ctx context.Context, jobs []Job, opts Options) []Report {
	opts = opts.withDefaults()
	reports := make([]Report, len(jobs))
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				reports[i] = newReport(j.Target, opts)
				reports[i].Error = context.Cause(ctx).Error()
				return
			}
			r, err := Push(ctx, j.Target, j.Bundle, opts)
			if err != nil {
				var ne *NodeError
				if errors.As(err, &ne) {
					err = ne.Err
				}
				r.Error = err.Error()
			}
			reports[i] = r
		})
	}
	wg.Wait()
	return reports
}

func newReport(t Target, opts Options) Report {
	return Report{
		Node: t.Node, Address: t.Address, User: t.User,
		RemoteRoot: expandRoot(opts.RemoteRoot, t.Node), DryRun: opts.DryRun,
		Files: []FileResult{},
	}
}

func expandRoot(root, node string) string { return strings.ReplaceAll(root, "{node}", node) }

// Push installs bundle b on the node t: files whose content, mode or owner
// differ from the bundle are replaced atomically, the others are left
// alone, and the manifest is installed last at ManifestPath. With
// opts.DryRun it only compares. The error, a *NodeError, names the node
// (and the file, when one is at fault); the report then lists no files.
// Cancelling ctx closes the connection and ends the push at once.
func Push(ctx context.Context, t Target, b *bundle.Bundle, opts Options) (Report, error) {
	opts = opts.withDefaults()
	r := newReport(t, opts)
	fail := func(err error) (Report, error) {
		r.Files = []FileResult{}
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			// Whatever broke when the connection was closed under it.
			err = fmt.Errorf("%w (%v)", cause, err)
		}
		return r, &NodeError{Node: t.Node, Address: t.Address, Err: err}
	}
	items, err := planItems(b, r.RemoteRoot)
	if err != nil {
		return fail(err)
	}
	if opts.HostKeyCallback == nil {
		return fail(errors.New("no host key callback: refusing to connect without checking the host key"))
	}
	if len(opts.Auth) == 0 {
		return fail(errors.New("no SSH credentials"))
	}

	client, err := connect(ctx, t, opts)
	if err != nil {
		return fail(err)
	}
	defer client.Close()
	// Cancelling ctx aborts whatever is in flight.
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	s := &remote{client: client, timeout: opts.CommandTimeout}

	state, err := s.inspect(ctx, items)
	if err != nil {
		return fail(fmt.Errorf("read the node's files: %w", err))
	}
	if !state.root {
		r.Notes = append(r.Notes, fmt.Sprintf("%s is not root on the node (uid %s): owners are not checked or set", t.User, state.uid))
	}
	var changed []item
	for i, it := range items {
		action, detail, err := compare(it, state.files[i], state.root)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", it.path, err))
		}
		if action != Unchanged {
			changed = append(changed, it)
		}
		r.Files = append(r.Files, FileResult{
			Path: it.path, Action: action, SHA256: it.sum,
			Mode: fmt.Sprintf("%04o", it.mode), Detail: detail,
		})
	}
	if len(changed) > 0 && !opts.DryRun {
		if err := s.install(ctx, changed, state.root); err != nil {
			return fail(fmt.Errorf("install %d of %d files: %w", len(changed), len(r.Files), err))
		}
	}
	return r, nil
}

// item is one file to install.
type item struct {
	// path is the path on the node; remote is where it is written (below
	// the remote root).
	path, remote string
	mode         fs.FileMode
	// user and group own the file, when the SSH user is root.
	user, group string
	data        []byte
	sum         string
	// dirMode is the mode of the file's directory if it has to be made.
	dirMode fs.FileMode
}

// planItems turns a bundle and its manifest into the files to install,
// checking every path, mode and owner.
func planItems(b *bundle.Bundle, root string) ([]item, error) {
	if b == nil {
		return nil, errors.New("no bundle")
	}
	if root != "" {
		if err := checkPath(root); err != nil {
			return nil, fmt.Errorf("remote root %q: %w", root, err)
		}
	}
	manifest, err := b.Manifest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	files := append(append([]bundle.File(nil), b.Files...), bundle.File{
		Path: ManifestPath, Mode: 0o644, Owner: "root:root", Data: manifest,
	})
	// A directory that holds a private key (any file others may not
	// read) is made 0700, any other 0755.
	private := map[string]bool{}
	for _, f := range files {
		if f.Mode.Perm()&0o044 == 0 {
			private[path.Dir(f.Path)] = true
		}
	}
	seen := map[string]bool{}
	items := make([]item, 0, len(files))
	for _, f := range files {
		if err := checkPath(f.Path); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("%s: twice in the bundle", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&^fs.ModePerm != 0 {
			return nil, fmt.Errorf("%s: mode %v: only permission bits can be installed", f.Path, f.Mode)
		}
		user, group, err := parseOwner(f.Owner)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		it := item{
			path: f.Path, remote: f.Path, mode: f.Mode.Perm(), user: user, group: group,
			data: f.Data, sum: sha256Hex(f.Data), dirMode: 0o755,
		}
		if root != "" {
			it.remote = path.Join(root, f.Path)
		}
		if private[path.Dir(f.Path)] {
			it.dirMode = 0o700
		}
		items = append(items, it)
	}
	return items, nil
}
