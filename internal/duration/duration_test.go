package duration

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "8760h0m0s", want: 365 * day},
		{in: "87600h", want: 3650 * day},
		{in: "90m", want: 90 * time.Minute},
		{in: "0", want: 0},
		{in: "365d", want: 365 * day},
		{in: "1d12h", want: 36 * time.Hour},
		{in: "0d", want: 0},
		{in: "-1d", want: -day},
		{in: "+2d", want: 2 * day},
		{in: "d", wantErr: "whole number"},
		{in: "1.5d", wantErr: "whole number"},
		{in: "10y", wantErr: "Go duration (8760h) or days (365d)"},
		{in: "1d-1h", wantErr: "sign only goes first"},
		{in: "1dx", wantErr: `"x" after the days`},
		{in: "1d1d", wantErr: `"1d" after the days`},
		{in: "99999999999999d", wantErr: "out of range"},
		{in: "106751d23h47m16.854775808s", wantErr: "out of range"},
		{in: "", wantErr: "Go duration"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %v, %v; want error with %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestAcceptDays: a command's duration flag, wrapped, takes days, keeps
// its default and help text, and leaves other flags alone.
func TestAcceptDays(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	ttl := fs.Duration("ttl", 720*time.Hour, "validity")
	name := fs.String("name", "", "a string that looks like days")
	AcceptDays(fs)
	AcceptDays(fs) // idempotent: not wrapped twice
	if _, twice := fs.Lookup("ttl").Value.(Value).Value.(Value); twice {
		t.Fatal("AcceptDays wrapped a flag twice")
	}
	if got := fs.Lookup("ttl").DefValue; got != "720h0m0s" {
		t.Errorf("default shown as %q", got)
	}
	if err := fs.Parse([]string{"--ttl", "30d", "--name", "30d"}); err != nil {
		t.Fatal(err)
	}
	if *ttl != 30*day || *name != "30d" {
		t.Errorf("ttl %v name %q, want 720h and 30d", *ttl, *name)
	}
	if err := fs.Parse([]string{"--ttl", "30days"}); err == nil || !strings.Contains(err.Error(), "invalid duration") {
		t.Errorf("--ttl 30days: %v", err)
	}
}

// FuzzParse: any input parses or fails with an error, never panics, and
// a result printed the Go way parses back to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"365d", "1d12h", "8760h0m0s", "-3d", "9223372036854775807d", "1d-", "dd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(d.String())
		if err != nil || back != d {
			t.Fatalf("Parse(%q) = %v, which parses back as %v, %v", s, d, back, err)
		}
	})
}
