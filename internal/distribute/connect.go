package distribute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// connect dials t and runs the SSH handshake and authentication, all within
// opts.Timeout and ctx.
func connect(ctx context.Context, t Target, opts Options) (*ssh.Client, error) {
	d := net.Dialer{Timeout: opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("dial: %w", context.Cause(ctx))
		}
		return nil, dialError(err, opts.Timeout)
	}
	deadline := time.Now().Add(opts.Timeout)
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial: %w", err)
	}
	// The handshake does not watch ctx; closing the connection ends it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	cfg := &ssh.ClientConfig{
		User:            t.User,
		Auth:            opts.Auth,
		HostKeyCallback: opts.HostKeyCallback,
		Timeout:         opts.Timeout,
	}
	if opts.HostKeyAlgorithms != nil {
		cfg.HostKeyAlgorithms = opts.HostKeyAlgorithms(t.Address, conn.RemoteAddr())
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, t.Address, cfg)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ssh handshake: %w", context.Cause(ctx))
		}
		return nil, handshakeError(err, t, cfg, deadline)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("ssh handshake: %w", err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// dialError shortens a net dial error to its cause: "dial: connection
// refused" rather than "dial tcp 10.0.0.2:22: connect: connection refused",
// since the report names the address already.
func dialError(err error, timeout time.Duration) error {
	msg := err.Error()
	var sysErr *os.SyscallError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		msg = dnsErr.Error()
	case errors.As(err, &sysErr):
		msg = sysErr.Err.Error()
	case errors.As(err, &opErr):
		msg = opErr.Err.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		msg = fmt.Sprintf("no answer within %v (%s)", timeout, msg)
	}
	return &shortError{msg: "dial: " + msg, err: err}
}

// shortError is an error shown by a message of its own and still wrapping
// the original.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.err }

// handshakeError explains a failed SSH handshake: a refused host key as it
// is, a failed authentication by the user and methods, a timeout by its
// limit.
func handshakeError(err error, t Target, cfg *ssh.ClientConfig, deadline time.Time) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	var neg *ssh.AlgorithmNegotiationError
	if errors.As(err, &neg) && neg.What == "host key" && len(cfg.HostKeyAlgorithms) > 0 {
		return &HostKeyError{
			Address: t.Address, Changed: true,
			msg: fmt.Sprintf("host key for %s CHANGED: known_hosts has only %s key(s) for it and the host offers none of that type (it offers %s); "+
				"this may be a man-in-the-middle attack, or the host was reinstalled; refusing to connect. If the change is expected, "+
				"verify the new key and replace the old entry (ssh-keygen -R %s)",
				t.Address, strings.Join(neg.SupportedAlgorithms, ", "), strings.Join(neg.RequestedAlgorithms, ", "),
				shellQuote(knownHostsName(t.Address))),
		}
	}
	msg := strings.TrimPrefix(err.Error(), "ssh: handshake failed: ")
	if strings.Contains(msg, "unable to authenticate") {
		return &shortError{msg: fmt.Sprintf("authenticate as %s: no key was accepted (%s)", t.User, strings.TrimPrefix(msg, "ssh: ")), err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || time.Now().After(deadline) {
		return &shortError{msg: fmt.Sprintf("ssh handshake: no answer within %v (%s)", cfg.Timeout, msg), err: err}
	}
	return &shortError{msg: "ssh handshake: " + msg, err: err}
}
