package csr

import (
	"fmt"
	"math"
	"time"

	"kubepki.dev/kubepki/internal/pki"
)

// Expiration rules, the same numbers kube-controller-manager's signer uses
// (pkg/controller/certificates/signer).
const (
	// MinDuration is the floor for spec.expirationSeconds: twice the
	// backdate, so a certificate is never valid for less time after it is
	// issued than before.
	MinDuration = 10 * time.Minute
	// shortLived certificates do not have the backdate taken off their end:
	// five minutes is a large part of a short lifetime, about 1% of 8h.
	shortLived = 8 * time.Hour
)

// Lifetime is the lifetime a signer gives a certificate: spec.expirationSeconds
// when set, raised to MinDuration and capped at max (the signer's
// --max-duration, kube-controller-manager's --cluster-signing-duration);
// max when unset. Asking for longer is not an error: expirationSeconds is a
// request the signer may shorten (KEP-2784), and clients read the
// certificate's NotAfter, not what they asked for.
func Lifetime(expirationSeconds *int32, max time.Duration) time.Duration {
	if expirationSeconds == nil {
		return max
	}
	d := time.Duration(*expirationSeconds) * time.Second
	switch {
	case d > max:
		return max
	case d < MinDuration:
		return MinDuration
	}
	return d
}

// ExpirationSeconds converts a requested lifetime to spec.expirationSeconds,
// rounded up to a whole second; zero or less means "signer's default" (nil).
func ExpirationSeconds(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxInt32 {
		s = math.MaxInt32
	}
	v := int32(s)
	return &v
}

// Validity is the NotBefore and NotAfter of a certificate issued at now for
// ttl by a CA that expires at caNotAfter: NotBefore is back-dated by
// pki.Backdate for clocks running behind; a long-lived certificate's end is
// back-dated too, so its lifetime is exactly ttl; and NotAfter never passes
// the CA's. A CA that has expired issues nothing.
func Validity(now time.Time, ttl time.Duration, caNotAfter time.Time) (notBefore, notAfter time.Time, err error) {
	if !now.Before(caNotAfter) {
		return time.Time{}, time.Time{}, fmt.Errorf("the CA expired at %s", caNotAfter.UTC().Format(time.RFC3339))
	}
	notBefore = now.Add(-pki.Backdate)
	if ttl < shortLived {
		notAfter = now.Add(ttl)
	} else {
		notAfter = now.Add(ttl - pki.Backdate)
	}
	if notAfter.After(caNotAfter) {
		notAfter = caNotAfter
	}
	return notBefore.UTC(), notAfter.UTC(), nil
}
