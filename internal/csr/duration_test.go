package csr

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestLifetime(t *testing.T) {
	const max = 8760 * time.Hour
	tests := []struct {
		name string
		exp  *int32
		want time.Duration
	}{
		{"unset: the signer's maximum", nil, max},
		{"within range", seconds(24 * time.Hour), 24 * time.Hour},
		{"exactly the floor", seconds(10 * time.Minute), 10 * time.Minute},
		{"below the floor is raised", seconds(time.Minute), MinDuration},
		{"zero is raised", seconds(0), MinDuration},
		{"exactly the maximum", seconds(max), max},
		{"ten years is capped, not refused", seconds(10 * 365 * 24 * time.Hour), max},
		{"int32 max is capped", func() *int32 { v := int32(math.MaxInt32); return &v }(), max},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lifetime(tc.exp, max); got != tc.want {
				t.Fatalf("Lifetime = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExpirationSeconds(t *testing.T) {
	if ExpirationSeconds(0) != nil || ExpirationSeconds(-time.Second) != nil {
		t.Error("zero or negative should leave expirationSeconds unset")
	}
	if got := *ExpirationSeconds(24 * time.Hour); got != 86400 {
		t.Errorf("24h = %d", got)
	}
	if got := *ExpirationSeconds(1500 * time.Millisecond); got != 2 {
		t.Errorf("1.5s rounds up to %d, want 2", got)
	}
	if got := *ExpirationSeconds(100 * 365 * 24 * time.Hour); got != math.MaxInt32 {
		t.Errorf("100 years = %d, want MaxInt32", got)
	}
}

func TestValidity(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	far := now.Add(10 * 365 * 24 * time.Hour)
	tests := []struct {
		name       string
		ttl        time.Duration
		caNotAfter time.Time
		nb, na     time.Time
		wantErr    string
	}{
		{"short-lived: end not back-dated", time.Hour, far, now.Add(-5 * time.Minute), now.Add(time.Hour), ""},
		{"the floor", 10 * time.Minute, far, now.Add(-5 * time.Minute), now.Add(10 * time.Minute), ""},
		{"just under 8h", 8*time.Hour - time.Second, far, now.Add(-5 * time.Minute), now.Add(8*time.Hour - time.Second), ""},
		{"8h: lifetime exactly ttl", 8 * time.Hour, far, now.Add(-5 * time.Minute), now.Add(8*time.Hour - 5*time.Minute), ""},
		{"a year", 8760 * time.Hour, far, now.Add(-5 * time.Minute), now.Add(8760*time.Hour - 5*time.Minute), ""},
		{"capped at the CA", 8760 * time.Hour, now.Add(time.Hour), now.Add(-5 * time.Minute), now.Add(time.Hour), ""},
		{"CA expires at now", time.Hour, now, time.Time{}, time.Time{}, "expired"},
		{"CA expired", time.Hour, now.Add(-time.Hour), time.Time{}, time.Time{}, "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nb, na, err := Validity(now, tc.ttl, tc.caNotAfter)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !nb.Equal(tc.nb) || !na.Equal(tc.na) {
				t.Fatalf("Validity = %v .. %v, want %v .. %v", nb, na, tc.nb, tc.na)
			}
			if na.After(tc.caNotAfter) {
				t.Fatalf("NotAfter %v past the CA's %v", na, tc.caNotAfter)
			}
		})
	}
}
