// Package duration parses the durations kubepki reads from flags and specs:
// Go durations ("8760h0m0s", as kubeadm's v1beta4 validity fields are
// written) and whole days ("365d", as openssl's -days and most people count
// certificate lifetimes), alone or followed by a Go duration ("1d12h").
package duration

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

const day = 24 * time.Hour

// Parse reads a Go duration, or a whole number of days followed by "d"
// and optionally by a Go duration: "365d", "1d12h", "-1d".
func Parse(s string) (time.Duration, error) {
	i := strings.IndexByte(s, 'd')
	if i < 0 {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a Go duration (8760h) or days (365d)", s)
		}
		return d, nil
	}
	num, rest := s[:i], s[i+1:]
	neg := strings.HasPrefix(num, "-")
	num = strings.TrimPrefix(strings.TrimPrefix(num, "-"), "+")
	days, err := strconv.ParseUint(num, 10, 64)
	if err != nil || num == "" || num[0] == '+' {
		return 0, fmt.Errorf("invalid duration %q: days must be a whole number (365d)", s)
	}
	if days > uint64(math.MaxInt64/int64(day)) {
		return 0, fmt.Errorf("invalid duration %q: out of range", s)
	}
	d := time.Duration(days) * day
	if rest != "" {
		if strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
			return 0, fmt.Errorf("invalid duration %q: a sign only goes first", s)
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: %q after the days is not a Go duration", s, rest)
		}
		if d > math.MaxInt64-r {
			return 0, fmt.Errorf("invalid duration %q: out of range", s)
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// Value is a flag value of type duration that also takes days. It wraps
// the flag's own value (pflag's duration), so the default, the variable
// the command reads and the help text stay as they were.
type Value struct{ pflag.Value }

// Set parses s with Parse and hands the Go spelling to the wrapped value.
func (v Value) Set(s string) error {
	d, err := Parse(s)
	if err != nil {
		return err
	}
	return v.Value.Set(d.String())
}

// AcceptDays makes every duration flag of fs take days as well. Flags of
// another type are left alone.
func AcceptDays(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if _, done := f.Value.(Value); !done && f.Value.Type() == "duration" {
			f.Value = Value{f.Value}
		}
	})
}
