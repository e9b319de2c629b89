package distribute

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// agentDialTimeout bounds connecting to the ssh-agent socket.
const agentDialTimeout = 5 * time.Second

// Credentials are the client keys Push authenticates with: an identity
// file, the keys of an ssh-agent, or both (the identity file first).
type Credentials struct {
	identity []ssh.Signer
	agent    agent.ExtendedAgent
	conn     net.Conn
}

// LoadCredentials reads identityFile (an unencrypted private key in any
// format ssh.ParsePrivateKey reads: OpenSSH, PKCS#1, PKCS#8, SEC 1) and
// connects to the ssh-agent at agentSocket (usually $SSH_AUTH_SOCK). Either
// may be empty, not both. An agent that cannot be reached is an error only
// if there is no identity file.
func LoadCredentials(identityFile, agentSocket string) (*Credentials, error) {
	c := &Credentials{}
	if identityFile != "" {
		s, err := readIdentity(identityFile)
		if err != nil {
			return nil, err
		}
		c.identity = append(c.identity, s)
	}
	if agentSocket != "" {
		conn, err := net.DialTimeout("unix", agentSocket, agentDialTimeout)
		switch {
		case err == nil:
			c.conn, c.agent = conn, agent.NewClient(conn)
		case len(c.identity) == 0:
			return nil, fmt.Errorf("ssh-agent at %s (SSH_AUTH_SOCK): %w", agentSocket, err)
		}
	}
	if c.agent != nil && len(c.identity) == 0 {
		keys, err := c.agent.List()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("ssh-agent at %s: list keys: %w", agentSocket, err)
		}
		if len(keys) == 0 {
			c.Close()
			return nil, fmt.Errorf("ssh-agent at %s holds no keys: add one with ssh-add, or give an identity file (--identity)", agentSocket)
		}
	}
	if len(c.identity) == 0 && c.agent == nil {
		return nil, errors.New("no SSH credentials: give an identity file (--identity FILE) or run ssh-agent with your key and set SSH_AUTH_SOCK")
	}
	return c, nil
}

func readIdentity(file string) (ssh.Signer, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(data)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("identity %s is encrypted with a passphrase, and kubepki does not ask for passphrases: "+
			"load it into ssh-agent (ssh-add %s) and run without --identity, with SSH_AUTH_SOCK set", file, quoteIfNeeded(file))
	case err != nil:
		if _, _, _, _, perr := ssh.ParseAuthorizedKey(data); perr == nil {
			return nil, fmt.Errorf("identity %s is a public key; give the private key file", file)
		}
		return nil, fmt.Errorf("identity %s: %w", file, err)
	}
	return s, nil
}

// AuthMethods returns the credentials as SSH auth methods: one public-key
// method that offers the identity file's key, then the agent's keys. (The
// SSH client tries each method name once, so the keys must share one.)
func (c *Credentials) AuthMethods() []ssh.AuthMethod {
	return []ssh.AuthMethod{ssh.PublicKeysCallback(c.signers)}
}

func (c *Credentials) signers() ([]ssh.Signer, error) {
	signers := append([]ssh.Signer(nil), c.identity...)
	if c.agent != nil {
		as, err := c.agent.Signers()
		if err != nil && len(signers) == 0 {
			return nil, fmt.Errorf("ssh-agent: %w", err)
		}
		signers = append(signers, as...)
	}
	return signers, nil
}

// Close disconnects from the agent.
func (c *Credentials) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}
