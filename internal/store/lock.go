package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ErrLocked is returned by Lock when another kubepki holds the directory.
var ErrLocked = errors.New("another kubepki command is using the directory; try again when it has finished")

// Lock takes an advisory lock (flock(2)) on Dir: exclusive for a command
// that writes, shared for one that only reads. It never waits. The kernel
// drops the lock when the process dies, even by SIGKILL, so a killed
// kubepki never leaves the directory locked. A Dir that does not exist yet
// needs no lock (the release function is then a no-op).
func (s Store) Lock(exclusive bool) (release func(), err error) {
	d, err := os.Open(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", s.Dir, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(d.Fd()), how|syscall.LOCK_NB); err != nil {
		d.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", s.Dir, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", s.Dir, err)
	}
	return func() { d.Close() }, nil
}
